package controlplane

import (
	"context"
	"testing"
	"time"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
)

func TestMeshObjects(t *testing.T) {
	tests := []struct {
		name string
		mesh Mesh
		want map[ingest.Kind]int
	}{
		{"issue setup", IssueMesh, map[ingest.Kind]int{
			ingest.KindNamespace: 2, ingest.KindService: 50, ingest.KindPod: 500 + 4,
			ingest.KindServiceAccount: 50 + 2, ingest.KindGateway: 2,
		}},
		{"no waypoints", Mesh{Namespaces: 3, ServicesPerNamespace: 2, PodsPerService: 1}, map[ingest.Kind]int{
			ingest.KindNamespace: 3, ingest.KindService: 6, ingest.KindPod: 6, ingest.KindServiceAccount: 6,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := tt.mesh.Objects()
			if err != nil {
				t.Fatalf("Objects() = %v", err)
			}
			got := map[ingest.Kind]int{}
			for _, o := range objs {
				k, err := ingest.KindOf(o)
				if err != nil {
					t.Fatal(err)
				}
				got[k]++
			}
			for _, k := range ingest.Kinds {
				if got[k] != tt.want[k] {
					t.Errorf("%s objects = %d, want %d", k, got[k], tt.want[k])
				}
			}
		})
	}
}

func TestMeshSnapshot(t *testing.T) {
	store, err := IssueMesh.Store()
	if err != nil {
		t.Fatalf("Store() = %v", err)
	}
	s := model.Build(store.Objects())
	if len(s.Problems) > 0 {
		t.Errorf("Problems = %v, want none", s.Problems)
	}
	if got := len(s.Workloads()); got != 504 {
		t.Errorf("workloads = %d, want 504 (500 pods and 4 waypoint pods)", got)
	}
	if got := len(s.Waypoints()); got != 2 {
		t.Errorf("waypoints = %d, want 2", got)
	}
	for _, svc := range s.Services() {
		if svc.Waypoint == nil || svc.Waypoint.Namespace != svc.Namespace {
			t.Errorf("service %s: waypoint %v, want its namespace's", svc.FQDN, svc.Waypoint)
		}
		if len(svc.Endpoints) != 10 {
			t.Errorf("service %s: %d endpoints, want 10", svc.FQDN, len(svc.Endpoints))
		}
	}
}

func TestScaleMesh(t *testing.T) {
	m := ScaleMesh(1000, 2000)
	if m.Services() != 1000 || m.Pods() != 2000 {
		t.Errorf("ScaleMesh(1000, 2000) has %d services and %d pods", m.Services(), m.Pods())
	}
}

func TestServiceOfCluster(t *testing.T) {
	tests := []struct {
		name, want string
		ok         bool
	}{
		{"outbound|9080||reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local", true},
		{"outbound|9080|v1|reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local", true},
		{"inbound-vip|9080|http/v2|reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local", true},
		{"inbound|9080||", "", false},
		{"connect_originate", "", false},
		{"PassthroughCluster", "", false},
	}
	for _, tt := range tests {
		got, ok := serviceOfCluster(tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("serviceOfCluster(%q) = %q, %t; want %q, %t", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// TestDistribution checks the counting on the issue's setup: every sidecar knows all 50 services (25 of its
// own namespace), every waypoint replica the 25 of its namespace.
func TestDistribution(t *testing.T) {
	store, err := IssueMesh.Store()
	if err != nil {
		t.Fatal(err)
	}
	s := model.Build(store.Objects())
	d, err := Distribute(s)
	if err != nil {
		t.Fatalf("Distribute() = %v", err)
	}
	want := Distribution{Sidecars: 500, WaypointReplicas: 4, SidecarConfigs: 500 * 50, WaypointConfigs: 4 * 25,
		SidecarConfigsOwnNamespace: 500 * 25}
	got := d
	got.SidecarBytes, got.WaypointBytes = 0, 0
	if got != want {
		t.Errorf("Distribute() = %+v, want %+v", got, want)
	}
	// Bytes: the sum of proto sizes of what each proxy receives; each waypoint has two replicas.
	var wantBytes int64
	for _, ns := range []string{"ns-0", "ns-1"} {
		p := model.Proxy{Kind: model.KindWaypoint, Namespace: ns, Name: WaypointName}
		cfg, err := configgen.Envoy(s, p)
		if err != nil {
			t.Fatal(err)
		}
		pc := Measure(p, cfg)
		if pc.Units != 25 || pc.OwnNamespaceUnits != 25 || pc.Bytes == 0 {
			t.Errorf("waypoint %s: %+v; want 25 units, all in its namespace, and some bytes", ns, pc)
		}
		wantBytes += 2 * int64(pc.Bytes)
	}
	if d.WaypointBytes != wantBytes {
		t.Errorf("WaypointBytes = %d, want %d", d.WaypointBytes, wantBytes)
	}
	if d.SidecarBytes <= d.WaypointBytes*50 {
		t.Errorf("SidecarBytes = %d, not even 50x WaypointBytes = %d", d.SidecarBytes, d.WaypointBytes)
	}
}

func TestMeasurePushSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := MeasurePush(ctx, PushOptions{Proxies: 5, Changes: 3, Timeout: 20 * time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatalf("MeasurePush() = %v", err)
	}
	if res.Proxies != 5 || len(res.Samples) != 3 {
		t.Errorf("MeasurePush() = %+v, want 5 proxies and 3 samples", res)
	}
	for i, d := range res.Samples {
		if d <= 0 || d > 20*time.Second {
			t.Errorf("sample %d = %s", i, d)
		}
	}
	if res.P50 > res.P99 || res.P99 > res.Max {
		t.Errorf("p50 %s, p99 %s, max %s out of order", res.P50, res.P99, res.Max)
	}
}

func TestMeasureScaleSmoke(t *testing.T) {
	res, err := MeasureScale(20, 40)
	if err != nil {
		t.Fatalf("MeasureScale() = %v", err)
	}
	if res.Services != 20 || res.Pods != 40 || res.Proxies == 0 {
		t.Errorf("MeasureScale() = %+v", res)
	}
	if res.HeapMB <= 0 || res.RSSMB <= 0 || res.CPUSeconds < 0 {
		t.Errorf("MeasureScale() memory/CPU = %+v", res)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got := Percentile(ds, 50); got != 50*time.Millisecond {
		t.Errorf("p50 = %s", got)
	}
	if got := Percentile(ds, 99); got != 99*time.Millisecond {
		t.Errorf("p99 = %s", got)
	}
	if got := Percentile(ds[:3], 99); got != 3*time.Millisecond {
		t.Errorf("p99 of 3 = %s", got)
	}
}

func TestMeasurePushAmbientSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := MeasurePush(ctx, PushOptions{Proxies: 10, Model: ModelAmbient, Changes: 3, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("MeasurePush() = %v", err)
	}
	// Of 4 waypoint replicas and 6 ztunnels, an HTTPRoute in ns-0 reaches only ns-0's 2 waypoint replicas.
	if res.Affected != 2 || len(res.Samples) != 3 {
		t.Errorf("MeasurePush() = %+v, want 2 affected proxies and 3 samples", res)
	}
}
