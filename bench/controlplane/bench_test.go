package controlplane

import (
	"context"
	"fmt"
	"testing"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
)

// At the scale (c): 1,000 services, 2,000 pods.
//
//	go test ./bench/controlplane -run '^$' -bench . -benchtime 5x
func scaleSnapshot(b *testing.B) *model.Snapshot {
	store, err := ScaleMesh(1000, 2000).Store()
	if err != nil {
		b.Fatal(err)
	}
	return model.Build(store.Objects())
}

func BenchmarkBuildSnapshot(b *testing.B) {
	store, err := ScaleMesh(1000, 2000).Store()
	if err != nil {
		b.Fatal(err)
	}
	objs := store.Objects()
	b.ReportAllocs()
	for b.Loop() {
		model.Build(objs)
	}
}

func BenchmarkGenerateWaypoint(b *testing.B) {
	s := scaleSnapshot(b)
	p := model.Proxy{Kind: model.KindWaypoint, Namespace: NamespaceName(0), Name: WaypointName}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := configgen.Envoy(s, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerateSidecar(b *testing.B) {
	s := scaleSnapshot(b)
	p := model.Proxy{Kind: model.KindSidecar, Namespace: NamespaceName(0), Name: PodName(0, 0)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := configgen.Envoy(s, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerateZtunnel(b *testing.B) {
	s := scaleSnapshot(b)
	node := s.Nodes()[0]
	b.ReportAllocs()
	for b.Loop() {
		configgen.ZtunnelConfig(s, node)
	}
}

// BenchmarkPush is MeasurePush with b.N changes: config change until every simulated sidecar ACKed it.
//
//	go test ./bench/controlplane -run '^$' -bench Push -benchtime 20x
func BenchmarkPush(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("proxies=%d", n), func(b *testing.B) {
			res, err := MeasurePush(context.Background(), PushOptions{Proxies: n, Changes: b.N})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(res.P50.Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99_ms")
		})
	}
}
