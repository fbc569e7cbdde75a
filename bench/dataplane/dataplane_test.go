package dataplane

import (
	"context"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/meshlab/meshlab/dataplane/netnstest"
)

// proxyEnv, when set, makes the test binary run one proxy from the spec file it names: the benchmark
// re-executes this binary for each proxy process.
const proxyEnv = "MESHLAB_BENCH_PROXY_SPEC"

func TestMain(m *testing.M) {
	if spec := os.Getenv(proxyEnv); spec != "" {
		if err := ServeProxy(spec, os.Stdin, os.Stdout, func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testProxyCommand(spec string) ([]string, []string) {
	return []string{os.Args[0]}, []string{proxyEnv + "=" + spec}
}

func TestRunSmoke(t *testing.T) {
	netnstest.Skip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	results, err := Run(ctx, t, Options{
		Paths: AllPaths, Connections: []int{1, 4}, Duration: 300 * time.Millisecond, MaxRequests: 2000,
		ProxyCommand: testProxyCommand, Logf: t.Logf,
	})
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if want := 2 * len(AllPaths); len(results) != want {
		t.Fatalf("Run() returned %d results, want %d: %+v", len(results), want, results)
	}
	directP50 := map[int]float64{}
	for _, r := range results {
		if r.Path == PathDirect {
			directP50[r.Connections] = r.P50Ms
		}
	}
	for _, r := range results {
		t.Logf("%+v", r)
		switch {
		case r.Path == PathDirect && r.AddedP50Ms != nil:
			t.Errorf("direct/%d: added p50 %v, want none", r.Connections, *r.AddedP50Ms)
		case r.Path != PathDirect && (r.AddedP50Ms == nil || math.Abs(*r.AddedP50Ms-(r.P50Ms-directP50[r.Connections])) > 0.0011):
			t.Errorf("%s/%d: added p50 %v, want p50 %v minus direct's %v", r.Path, r.Connections, r.AddedP50Ms, r.P50Ms, directP50[r.Connections])
		}
		if r.Requests == 0 || r.RPS <= 0 || r.Errors != 0 {
			t.Errorf("%s/%d: %d requests, %.0f rps, %d errors", r.Path, r.Connections, r.Requests, r.RPS, r.Errors)
		}
		if !(r.P50Ms > 0 && r.P50Ms <= r.P90Ms && r.P90Ms <= r.P99Ms) {
			t.Errorf("%s/%d: percentiles out of order: %v %v %v", r.Path, r.Connections, r.P50Ms, r.P90Ms, r.P99Ms)
		}
		wantProxies := map[string]int{PathDirect: 0, PathForwarder: 2, PathZtunnel: 2, PathWaypoint: 3}[r.Path]
		if len(r.RSSMB) != wantProxies || len(r.CPUPer1000) != wantProxies {
			t.Errorf("%s/%d: proxies measured: rss %v, cpu %v; want %d each", r.Path, r.Connections, r.RSSMB, r.CPUPer1000, wantProxies)
		}
		for name, cpu := range r.CPUPer1000 {
			if cpu <= 0 {
				t.Errorf("%s/%d: %s used no CPU: traffic did not go through it", r.Path, r.Connections, name)
			}
		}
		for name, mb := range r.RSSMB {
			if mb <= 1 {
				t.Errorf("%s/%d: %s peak RSS %.1f MB, implausible", r.Path, r.Connections, name, mb)
			}
		}
	}
}

func TestHarnessTurnsFatalIntoError(t *testing.T) {
	h := NewHarness(t.Logf)
	cleaned := false
	err := h.Do(func() error {
		h.Cleanup(func() { cleaned = true })
		h.Fatalf("boom %d", 1)
		return nil
	})
	if err == nil || err.Error() != "boom 1" || !cleaned {
		t.Errorf("Do() = %v, cleaned %t; want boom 1 and cleaned", err, cleaned)
	}
}

func TestLoadResultPercentile(t *testing.T) {
	var r LoadResult
	for i := 1; i <= 1000; i++ {
		r.Latencies = append(r.Latencies, time.Duration(i)*time.Microsecond)
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 500 * time.Microsecond}, {90, 900 * time.Microsecond}, {99, 990 * time.Microsecond}, {100, 1000 * time.Microsecond}} {
		if got := r.Percentile(tt.p); got != tt.want {
			t.Errorf("Percentile(%v) = %s, want %s", tt.p, got, tt.want)
		}
	}
}

// BenchmarkPaths runs each path for a fixed time per iteration and reports the figures.
//
//	sudo go test ./bench/dataplane -run '^$' -bench Paths -benchtime 1x
func BenchmarkPaths(b *testing.B) {
	netnstest.Skip(b)
	for _, path := range AllPaths {
		for _, conns := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/conns=%d", path, conns), func(b *testing.B) {
				var last Result
				for range b.N {
					rs, err := Run(context.Background(), b, Options{Paths: []string{path}, Connections: []int{conns},
						Duration: 2 * time.Second, ProxyCommand: testProxyCommand})
					if err != nil {
						b.Fatal(err)
					}
					last = rs[0]
				}
				b.ReportMetric(last.RPS, "req/s")
				b.ReportMetric(last.P50Ms, "p50_ms")
				b.ReportMetric(last.P99Ms, "p99_ms")
				for name, v := range last.CPUPer1000 {
					b.ReportMetric(v, "cpu_s/1000req/"+name)
				}
			})
		}
	}
}

func TestProxyGOMAXPROCS(t *testing.T) {
	tests := []struct {
		value   string
		want    int
		wantErr bool
	}{
		{"", 0, false},
		{"1", 1, false},
		{"4", 4, false},
		{"0", 0, true},
		{"-1", 0, true},
		{"two", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Setenv(ProxyGOMAXPROCSEnv, tt.value)
			got, err := proxyGOMAXPROCS()
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("proxyGOMAXPROCS() with %q = %d, %v; want %d, error %v", tt.value, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
