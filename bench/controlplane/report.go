package controlplane

import (
	"context"
	"fmt"
	"time"

	"github.com/meshlab/meshlab/controlplane/model"
)

// Options select what Run measures.
type Options struct {
	// Proxies and Changes drive the push-latency measurement (MeasurePush).
	Proxies, Changes int
	// Model is the proxy model of the push-latency measurement (ModelSidecar or ModelAmbient).
	Model string
	// Services and Pods size the memory and CPU measurement (MeasureScale).
	Services, Pods int
	// Mesh is the mesh of the config-distribution comparison (default IssueMesh).
	Mesh Mesh
	Logf func(format string, args ...any)
}

// Report is what `meshlab bench controlplane -o json` prints. The first seven fields are the issue's.
type Report struct {
	SidecarConfigs  int     `json:"sidecar_configs"`
	WaypointConfigs int     `json:"waypoint_configs"`
	SidecarBytes    int64   `json:"sidecar_bytes"`
	WaypointBytes   int64   `json:"waypoint_bytes"`
	PushP50Ms       float64 `json:"push_p50_ms"`
	PushP99Ms       float64 `json:"push_p99_ms"`
	Proxies         int     `json:"proxies"`
	HeapMB          float64 `json:"heap_mb"`
	RSSMB           float64 `json:"rss_mb"`
	CPUSeconds      float64 `json:"cpu_s"`

	// Details, for the table and the docs.
	Sidecars                   int     `json:"sidecars"`
	WaypointReplicas           int     `json:"waypoint_replicas"`
	SidecarConfigsOwnNamespace int     `json:"sidecar_configs_own_namespace"`
	PushModel                  string  `json:"push_model"`
	PushAffected               int     `json:"push_affected"`
	PushChanges                int     `json:"push_changes"`
	PushMaxMs                  float64 `json:"push_max_ms"`
	PushCacheHits              uint64  `json:"push_cache_hits"`
	PushCacheMisses            uint64  `json:"push_cache_misses"`
	ScaleServices              int     `json:"scale_services"`
	ScalePods                  int     `json:"scale_pods"`
	ScaleProxies               int     `json:"scale_proxies"`
	HeapModelMB                float64 `json:"heap_model_mb"`
	ScaleBuildMs               float64 `json:"scale_build_ms"`
	ScaleGenerateMs            float64 `json:"scale_generate_ms"`
}

// Run measures, in this order so that the memory figures are not inflated by the other runs: memory and
// CPU at scale, the config distribution of the sidecar and waypoint models, and push latency.
func Run(ctx context.Context, opts Options) (Report, error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if opts.Mesh == (Mesh{}) {
		opts.Mesh = IssueMesh
	}
	var r Report
	logf("memory and CPU: %d services, %d pods", opts.Services, opts.Pods)
	sc, err := MeasureScale(opts.Services, opts.Pods)
	if err != nil {
		return Report{}, fmt.Errorf("measuring at scale: %w", err)
	}
	r.HeapMB, r.RSSMB, r.CPUSeconds = round(sc.HeapMB, 1), round(sc.RSSMB, 1), round(sc.CPUSeconds, 2)
	r.ScaleServices, r.ScalePods, r.ScaleProxies = sc.Services, sc.Pods, sc.Proxies
	r.HeapModelMB, r.ScaleBuildMs, r.ScaleGenerateMs = round(sc.HeapModelMB, 1), ms(sc.Build), ms(sc.Generate)

	logf("config distribution: %d namespaces x %d deployments x %d pods, %d waypoint replicas per namespace",
		opts.Mesh.Namespaces, opts.Mesh.ServicesPerNamespace, opts.Mesh.PodsPerService, opts.Mesh.WaypointReplicas)
	store, err := opts.Mesh.Store()
	if err != nil {
		return Report{}, err
	}
	d, err := Distribute(model.Build(store.Objects()))
	if err != nil {
		return Report{}, fmt.Errorf("measuring config distribution: %w", err)
	}
	r.SidecarConfigs, r.WaypointConfigs = d.SidecarConfigs, d.WaypointConfigs
	r.SidecarBytes, r.WaypointBytes = d.SidecarBytes, d.WaypointBytes
	r.Sidecars, r.WaypointReplicas, r.SidecarConfigsOwnNamespace = d.Sidecars, d.WaypointReplicas, d.SidecarConfigsOwnNamespace

	logf("push latency: %d proxies, %d changes", opts.Proxies, opts.Changes)
	p, err := MeasurePush(ctx, PushOptions{Proxies: opts.Proxies, Model: opts.Model, Changes: opts.Changes, Logf: logf})
	if err != nil {
		return Report{}, fmt.Errorf("measuring push latency: %w", err)
	}
	r.Proxies, r.PushChanges, r.PushModel, r.PushAffected = p.Proxies, p.Changes, p.Model, p.Affected
	r.PushP50Ms, r.PushP99Ms, r.PushMaxMs = ms(p.P50), ms(p.P99), ms(p.Max)
	r.PushCacheHits, r.PushCacheMisses = p.CacheHits, p.CacheMisses
	return r, nil
}

func ms(d time.Duration) float64 { return round(float64(d.Microseconds())/1000, 2) }

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}
