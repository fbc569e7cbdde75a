package waypoint

import (
	"io"
	"net/http"
	"sort"
	"testing"
	"time"
)

// BenchmarkWaypoint measures requests through the waypoint over loopback HBONE: client -> HBONE ->
// waypoint (RBAC, fault, route, retry policy) -> HBONE -> upstream. Latency is per request, sequential,
// on kept-alive connections at both hops.
//
//	go test -run '^$' -bench Waypoint -benchtime 2000x ./dataplane/waypoint/
func BenchmarkWaypoint(b *testing.B) {
	f := newFixture(b)
	c := client(b, f.ca, "default", "sleep", f.hboneURL)
	do := func() {
		resp, err := c.Get("http://" + reviewsVIP + "/bench")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	for range 50 {
		do() // warm the connection pools
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		do()
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50_us")
	b.ReportMetric(pct(0.99), "p99_us")
}
