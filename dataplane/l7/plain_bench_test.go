package l7

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/meshlab/meshlab/dataplane/l7/l7test"
)

// BenchmarkPlainRoute measures a request through the engine on a route with no redirect, rewrite or
// header manipulation (client and backend on loopback, kept-alive connections at both hops), to watch the
// cost those features must not add to routes that do not use them:
//
//	go test -run '^$' -bench PlainRoute -benchmem ./dataplane/l7/
func BenchmarkPlainRoute(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	svc := l7test.Service{FQDN: "reviews.default.svc.cluster.local", VIP: "10.96.0.10", Port: 9080}
	cfg := Config(l7test.Waypoint([]l7test.Service{svc}, nil, map[string][]string{svc.Name(""): {backend.Listener.Addr().String()}}, nil))
	cfg.Routes[0].VirtualHosts[0].Domains = []string{"*"}
	f := newEngineFixture(b, cfg, netip.MustParseAddrPort("10.96.0.10:9080"))
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	do := func() {
		resp, err := c.Get("http://" + f.addr + "/reviews/1")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	for range 50 {
		do()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		do()
	}
}
