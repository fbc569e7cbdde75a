package integration

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"sync"
	"testing"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/dataplane/l7"
)

// seen is what a backend pod reports about the request it got.
type seen struct {
	Version string              `json:"version"`
	Path    string              `json:"path"`
	Host    string              `json:"host"`
	Header  map[string][]string `json:"header"`
}

// generatedWaypoint runs the waypoint config the control plane generates for snap in the L7 engine on a
// loopback listener (each accepted connection is a tunnel to the reviews VIP), with one HTTP backend per
// reviews pod that echoes what it received. Upstream dials to a pod address go to that pod's backend.
// Weighted choices always take the first cluster.
func generatedWaypoint(t *testing.T, snap *model.Snapshot) (addr string) {
	t.Helper()
	return generatedWaypointWith(t, snap, nil)
}

// generatedWaypointWith is generatedWaypoint with a hook that sees every request a backend pod gets first
// (with the pod's version) and answers it itself when it returns true.
func generatedWaypointWith(t *testing.T, snap *model.Snapshot, hook func(version string, w http.ResponseWriter, r *http.Request) bool) (addr string) {
	t.Helper()
	return generatedWaypointRand(t, snap, hook, func() uint64 { return 0 })
}

// generatedWaypointRand is generatedWaypointWith with the engine's random source (nil: math/rand), for
// tests of load balancing.
func generatedWaypointRand(t *testing.T, snap *model.Snapshot, hook func(version string, w http.ResponseWriter, r *http.Request) bool, rnd func() uint64) (addr string) {
	t.Helper()
	reviews := snap.Service("reviews.default.svc.cluster.local")
	backends := map[string]string{} // pod IP -> backend address
	for _, ep := range reviews.Endpoints {
		version := ep.Labels()["version"]
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hook != nil && hook(version, w, r) {
				return
			}
			w.Header().Set("X-Internal", "backend")
			w.Header().Set("X-Resp-Set", "backend")
			w.Header().Set("X-Resp-Add", "backend")
			w.Header().Set("X-Resp-Remove", "backend")
			json.NewEncoder(w).Encode(seen{Version: version, Path: r.URL.Path, Host: r.Host, Header: r.Header})
		}))
		t.Cleanup(srv.Close)
		backends[ep.IP] = srv.Listener.Addr().String()
	}
	return serveWaypoint(t, snap, netip.AddrPortFrom(netip.MustParseAddr(reviews.VIPs[0]), 9080), backends, rnd)
}

// serveWaypoint runs the reviews waypoint's generated config for snap in the L7 engine on a loopback
// listener: each accepted connection is a tunnel to vip from productpage's identity; an upstream dial to a
// pod address goes to backends[pod IP].
func serveWaypoint(t *testing.T, snap *model.Snapshot, vip netip.AddrPort, backends map[string]string, rnd func() uint64) (addr string) {
	t.Helper()
	return serveProxy(t, snap, model.Proxy{Kind: model.KindWaypoint, Namespace: "default", Name: "reviews-waypoint"}, "main_internal", vip, backends, rnd)
}

// serveProxy runs proxy's generated config in the L7 engine as serveWaypoint does, handing each connection
// to the listener named as if it were addressed to vip.
func serveProxy(t *testing.T, snap *model.Snapshot, proxy model.Proxy, listener string, vip netip.AddrPort, backends map[string]string, rnd func() uint64) (addr string) {
	t.Helper()
	cfg, err := configgen.Envoy(snap, proxy)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	e, err := l7.NewEngine(l7.Options{
		Dial: func(ctx context.Context, ep *l7.Endpoint) (net.Conn, error) {
			host, _, err := net.SplitHostPort(ep.Address)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			to, ok := backends[host]
			mu.Unlock()
			if !ok {
				return nil, &net.AddrError{Err: "no backend", Addr: ep.Address}
			}
			return (&net.Dialer{}).DialContext(ctx, "tcp", to)
		},
		Rand: rnd,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(l7.Config{Listeners: cfg.Listeners, Routes: cfg.Routes, Clusters: cfg.Clusters, Endpoints: cfg.Endpoints}); err != nil {
		t.Fatalf("Apply(generated config) = %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				src := netip.MustParseAddrPort(c.RemoteAddr().String())
				if err := e.ServeConn(context.Background(), c, l7.Downstream{Listener: listener, Peer: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage", Source: src, Destination: vip}); err != nil {
					c.Close()
				}
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); e.Close() })
	return l.Addr().String()
}

type exchange struct {
	status int
	header http.Header
	seen   *seen // nil when no backend answered
}

func send(t *testing.T, addr, host, path string, hdr http.Header) exchange {
	t.Helper()
	return sendMethod(t, addr, "GET", host, path, hdr)
}

// sendMethod sends one request to the engine at addr, not following redirects; a 200 with a body is the
// backend's answer (what it saw).
func sendMethod(t *testing.T, addr, method, host, path string, hdr http.Header) exchange {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(method, "http://"+addr+path, nil)
	req.Host = host
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ex := exchange{status: resp.StatusCode, header: resp.Header}
	if len(b) > 0 && resp.StatusCode == 200 {
		ex.seen = &seen{}
		if err := json.Unmarshal(b, ex.seen); err != nil {
			t.Fatalf("%s %s%s: backend answer %q: %v", method, host, path, b, err)
		}
	}
	return ex
}

func checkRedirect(t *testing.T, ex exchange, path string, status int, location string) {
	t.Helper()
	if ex.status != status || ex.header.Get("Location") != location || ex.seen != nil {
		t.Errorf("GET %s = %d Location %q, want %d %q from the proxy", path, ex.status, ex.header.Get("Location"), status, location)
	}
}

func checkSeen(t *testing.T, ex exchange, what string, version, path, host string) {
	t.Helper()
	if ex.seen == nil {
		t.Fatalf("%s: status %d, no backend answer", what, ex.status)
	}
	if ex.seen.Version != version || ex.seen.Path != path || ex.seen.Host != host {
		t.Errorf("%s: backend %s saw path %q host %q, want %s %q %q", what, ex.seen.Version, ex.seen.Path, ex.seen.Host, version, path, host)
	}
}

func checkValues(t *testing.T, what string, h http.Header, name string, want ...string) {
	t.Helper()
	got := h.Values(name)
	if len(want) == 0 && len(got) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: %s = %q, want %q", what, name, got, want)
	}
}

// TestGeneratedRedirectRewriteHeaders sends traffic through the engine running the config generated
// for a VirtualService with redirects, rewrites and header operations.
func TestGeneratedRedirectRewriteHeaders(t *testing.T) {
	addr := generatedWaypoint(t, modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsVSFilters))

	checkRedirect(t, send(t, addr, "reviews:9080", "/old-reviews/1", nil), "/old-reviews/1", 308, "http://reviews.example/reviews")
	checkRedirect(t, send(t, addr, "reviews:9080", "/secure", nil), "/secure", 302, "https://reviews:9080/secure")
	checkRedirect(t, send(t, addr, "reviews", "/here?x=1", nil), "/here", 301, "http://reviews:9080/there?x=1")

	ex := send(t, addr, "reviews:9080", "/api/v2/7", http.Header{"X-Legacy": {"1"}, "X-Trace": {"client"}, "X-Api": {"client"}})
	checkSeen(t, ex, "rewrite", "v2", "/reviews/7", "reviews-v2.internal")
	if ex.seen != nil {
		checkValues(t, "backend", ex.seen.Header, "X-Api", "v2")
		checkValues(t, "backend", ex.seen.Header, "X-Trace", "client", "on")
		checkValues(t, "backend", ex.seen.Header, "X-Legacy")
		checkValues(t, "backend", ex.seen.Header, "X-Subset", "v2")
	}
	checkValues(t, "client", ex.header, "Cache-Control", "no-store")
	checkValues(t, "client", ex.header, "X-Served-By", "v2")
	checkValues(t, "client", ex.header, "X-Internal")

	checkSeen(t, send(t, addr, "reviews:9080", "/v1/reviews/3", nil), "regex rewrite", "v3", "/reviews/3", "reviews:9080")

	ex = send(t, addr, "reviews:9080", "/reviews/1", http.Header{"X-Subset": {"client"}})
	checkSeen(t, ex, "split", "v1", "/reviews/1", "reviews:9080")
	if ex.seen != nil {
		checkValues(t, "backend", ex.seen.Header, "X-Subset", "v1")
	}
	checkValues(t, "client", ex.header, "X-Served-By", "v1")
	checkValues(t, "client", ex.header, "X-Internal", "backend")
}

// TestGeneratedHTTPRouteFilters does the same for HTTPRoute filters, in the shapes of the Gateway API
// mesh conformance tests (redirect, rewrite, request and response header modifiers).
func TestGeneratedHTTPRouteFilters(t *testing.T) {
	addr := generatedWaypoint(t, modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsHTTPRouteFilters))

	checkRedirect(t, send(t, addr, "reviews:9080", "/original-prefix/lemon", nil), "/original-prefix/lemon", 302, "http://reviews:9080/replacement-prefix/lemon")
	checkRedirect(t, send(t, addr, "reviews", "/full", nil), "/full", 301, "http://example.org:9080/full-path")
	checkRedirect(t, send(t, addr, "reviews", "/scheme", nil), "/scheme", 301, "https://reviews/scheme")
	checkRedirect(t, send(t, addr, "reviews", "/port", nil), "/port", 301, "http://reviews:8443/port")

	checkSeen(t, send(t, addr, "reviews", "/prefix/one/two", nil), "prefix rewrite", "v1", "/one/two", "one.example.org")
	checkSeen(t, send(t, addr, "reviews", "/strip-prefix/x", nil), "prefix removed", "v1", "/x", "reviews")
	checkSeen(t, send(t, addr, "reviews", "/strip-prefix", nil), "whole prefix removed", "v1", "/", "reviews")
	checkSeen(t, send(t, addr, "reviews", "/full-rewrite/a/b", nil), "full path rewrite", "v1", "/one", "reviews")

	ex := send(t, addr, "reviews", "/anything", http.Header{"X-Header-Set": {"client"}, "X-Header-Add": {"client"}, "X-Header-Remove": {"client"}})
	checkSeen(t, ex, "header modifiers", "v1", "/anything", "reviews")
	if ex.seen != nil {
		checkValues(t, "backend", ex.seen.Header, "X-Header-Set", "set-overwrites-values")
		checkValues(t, "backend", ex.seen.Header, "X-Header-Add", "client", "add-appends-values")
		checkValues(t, "backend", ex.seen.Header, "X-Header-Remove")
		checkValues(t, "backend", ex.seen.Header, "X-Backend", "v1")
	}
	checkValues(t, "client", ex.header, "X-Resp-Set", "resp-set")
	checkValues(t, "client", ex.header, "X-Resp-Add", "backend", "resp-add")
	checkValues(t, "client", ex.header, "X-Resp-Remove")
}
