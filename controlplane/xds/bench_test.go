package xds

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/meshlab/meshlab/api/xdstype"
)

// BenchmarkConvergence measures issue (a): from a config change to every affected proxy having ACKed
// it, with N simulated proxies on their own real loopback gRPC connections (Delta ADS, CDS with ten
// clusters each, one of which changes). Debounce is off, so the debounce window is excluded. Reported:
// p50/p99 over iterations of the time until the last proxy ACKed (all_acked) and until the server had
// sent the change to the last proxy (all_sent), and p50/p99 of single proxies' convergence (proxy).
//
//	go test ./controlplane/xds -run '^$' -bench Convergence -benchtime 30x
func BenchmarkConvergence(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("proxies=%d", n), func(b *testing.B) { benchConvergence(b, n) })
	}
}

func benchConvergence(b *testing.B, proxies int) {
	gen := newTestGen()
	gen.cache = NewCache()
	gen.noRecord = true
	for i := range 10 {
		gen.setCluster("default", fmt.Sprintf("svc-%d", i), "v0", "10.0.0.1")
	}
	s := NewServer(gen, WithDebounce(0, 0), WithCache(gen.cache))

	var (
		mu      sync.Mutex
		start   time.Time
		acked   int
		perPrx  []time.Duration
		allDone = make(chan time.Duration, 1)
	)
	s.onAck = func(_, _ string, changeStart time.Time) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if !changeStart.Equal(start) {
			return // the initial subscription
		}
		acked++
		perPrx = append(perPrx, now.Sub(start))
		if acked == proxies {
			allDone <- now.Sub(start)
		}
	}
	addr := startServer(b, s)
	for i := range proxies {
		// A lean proxy: one goroutine receives and ACKs at once, as Envoy's main thread would.
		ctx, cancel := context.WithCancel(context.Background())
		b.Cleanup(cancel)
		stream, err := discovery.NewAggregatedDiscoveryServiceClient(dial(b, addr)).DeltaAggregatedResources(ctx)
		if err != nil {
			b.Fatalf("DeltaAggregatedResources() = %v", err)
		}
		err = stream.Send(&discovery.DeltaDiscoveryRequest{Node: node(fmt.Sprintf("sidecar/default/p%d", i)), TypeUrl: xdstype.Cluster})
		if err != nil {
			b.Fatalf("Send() = %v", err)
		}
		go func() {
			for {
				r, err := stream.Recv()
				if err != nil {
					return
				}
				if err := stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce}); err != nil {
					return
				}
			}
		}()
	}
	waitFor(b, "all proxies subscribed", func() bool {
		st := s.SyncStatus()
		if len(st.Proxies) != proxies {
			return false
		}
		for _, p := range st.Proxies {
			if t, ok := p.Type(xdstype.Cluster); !ok || !t.Synced() {
				return false
			}
		}
		return true
	})

	var all, sent []time.Duration
	b.ResetTimer()
	for i := range b.N {
		gen.setCluster("default", "svc-3", fmt.Sprintf("v%d", i+1), "10.0.0.1")
		req := NewPushRequest(true, "config", ConfigKey{"Cluster", "default", "svc-3"})
		mu.Lock()
		start, acked = req.Start, 0
		mu.Unlock()
		s.ConfigUpdate(req)
		select {
		case d := <-allDone:
			all = append(all, d)
			b.StopTimer()
			var last time.Time
			for _, p := range s.SyncStatus().Proxies {
				if t, _ := p.Type(xdstype.Cluster); t.LastPush.After(last) {
					last = t.LastPush
				}
			}
			sent = append(sent, last.Sub(req.Start))
			b.StartTimer()
		case <-time.After(30 * time.Second):
			b.Fatalf("iteration %d: only %d of %d proxies acked in 30s", i, acked, proxies)
		}
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(ms(percentile(all, 50)), "all_acked_p50_ms")
	b.ReportMetric(ms(percentile(all, 99)), "all_acked_p99_ms")
	b.ReportMetric(ms(percentile(sent, 50)), "all_sent_p50_ms")
	b.ReportMetric(ms(percentile(sent, 99)), "all_sent_p99_ms")
	b.ReportMetric(ms(percentile(perPrx, 50)), "proxy_p50_ms")
	b.ReportMetric(ms(percentile(perPrx, 99)), "proxy_p99_ms")
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(i, len(s))-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
