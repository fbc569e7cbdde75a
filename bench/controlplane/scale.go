package controlplane

import (
	"fmt"
	"runtime"
	"syscall"
	"time"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/internal/procstat"
)

// ScaleResult is the cost of holding and generating a large mesh in one process.
type ScaleResult struct {
	Services, Pods int
	// Proxies is how many proxies' config was generated (and kept) for the measurement.
	Proxies int
	// HeapMB is the Go heap in use (runtime.MemStats.HeapInuse) after a forced GC, with the store, the
	// snapshot and every generated config still referenced.
	HeapMB float64
	// HeapModelMB is the heap in use with only the store and the snapshot held (read after a GC before
	// generation; that GC's CPU counts in CPUSeconds).
	HeapModelMB float64
	// RSSMB is the process's peak resident set (VmHWM) so far.
	RSSMB float64
	// CPUSeconds is user+system CPU of the process (getrusage) spent from the start of the measurement.
	CPUSeconds float64
	// Store, Build and Generate time each stage.
	Store, Build, Generate time.Duration
}

// MeasureScale synthesizes ScaleMesh(services, pods) into a store, builds a snapshot, and generates the
// config of a representative set of proxies: every waypoint, every ztunnel (one per node) and one sidecar
// per namespace. Memory and CPU are read in this process, so call it before anything else heavy.
func MeasureScale(services, pods int) (ScaleResult, error) {
	mesh := ScaleMesh(services, pods)
	cpu0 := cpuSeconds()
	t0 := time.Now()
	store, err := mesh.Store()
	if err != nil {
		return ScaleResult{}, err
	}
	t1 := time.Now()
	snap := model.Build(store.Objects())
	t2 := time.Now()
	heapModel := heapInUseMB()
	var kept []any
	proxies := 0
	for _, w := range snap.Waypoints() {
		cfg, err := configgen.Envoy(snap, model.Proxy{Kind: model.KindWaypoint, Namespace: w.Namespace, Name: w.Name})
		if err != nil {
			return ScaleResult{}, fmt.Errorf("generating for waypoint %s/%s: %w", w.Namespace, w.Name, err)
		}
		kept = append(kept, cfg)
		proxies++
	}
	for _, node := range snap.Nodes() {
		wls, svcs, pols := configgen.ZtunnelConfig(snap, node)
		kept = append(kept, wls, svcs, pols)
		proxies++
	}
	for i := range mesh.Namespaces {
		cfg, err := configgen.Envoy(snap, model.Proxy{Kind: model.KindSidecar, Namespace: NamespaceName(i), Name: PodName(0, 0)})
		if err != nil {
			return ScaleResult{}, err
		}
		kept = append(kept, cfg)
		proxies++
	}
	t3 := time.Now()
	res := ScaleResult{
		Services: mesh.Services(), Pods: mesh.Pods(), Proxies: proxies,
		CPUSeconds: cpuSeconds() - cpu0,
		Store:      t1.Sub(t0), Build: t2.Sub(t1), Generate: t3.Sub(t2), HeapModelMB: heapModel,
	}
	res.HeapMB = heapInUseMB()
	runtime.KeepAlive(store)
	runtime.KeepAlive(snap)
	runtime.KeepAlive(kept)
	if kb, err := procstat.StatusKB("self", "VmHWM"); err == nil {
		res.RSSMB = float64(kb) / 1024
	}
	return res, nil
}

// heapInUseMB collects garbage and returns the heap in use.
func heapInUseMB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse) / (1 << 20)
}

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
