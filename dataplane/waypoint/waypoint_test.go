package waypoint

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	mongov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/mongo_proxy/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/dataplane/hbone"
	"github.com/meshlab/meshlab/dataplane/hbone/hbonetest"
	"github.com/meshlab/meshlab/dataplane/l7/l7test"
	"github.com/meshlab/meshlab/dataplane/l7xds"
	"github.com/meshlab/meshlab/dataplane/xdsclient/xdstest"
	"github.com/meshlab/meshlab/identity/ca"
	"github.com/meshlab/meshlab/internal/stats"
)

const (
	reviewsFQDN = "reviews.default.svc.cluster.local"
	reviewsVIP  = "10.96.0.10:9080"
	nodeID      = "waypoint/default/waypoint"
)

// upstream is an application behind its own HBONE server, as a pod behind ztunnel's 15008.
type upstream struct {
	app   string // the application's address: the CONNECT target
	hbone string // its HBONE server
}

func startUpstream(t testing.TB, authority *ca.CA, name string, handler http.HandlerFunc) upstream {
	t.Helper()
	app := httptest.NewServer(handler)
	t.Cleanup(app.Close)
	// The pod's inbound HBONE, as its ztunnel serves it, in front of the app.
	return upstream{app: app.Listener.Addr().String(), hbone: hbonetest.Forwarder(t, authority, "default", "reviews-"+name)}
}

// client is a mesh workload calling through the waypoint over HBONE.
func client(t testing.TB, authority *ca.CA, ns, sa, waypointAddr string) *http.Client {
	t.Helper()
	id, _ := authority.WorkloadID(ns, sa)
	svid, err := authority.Issue(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := hbone.ClientTLSConfig(svid, authority.Bundle(), tlsconfig.AuthorizeMemberOf(authority.TrustDomain()))
	hc := &hbone.Client{}
	t.Cleanup(func() { hc.Close() })
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return hc.Connect(ctx, hbone.Request{ProxyAddr: waypointAddr, Target: addr, TLS: cfg})
		},
		MaxIdleConnsPerHost: 16,
	}, Timeout: 10 * time.Second}
}

type fixture struct {
	xds      *xdstest.Server
	wp       *Waypoint
	hboneURL string
	admin    string
	ca       *ca.CA
	log      *syncBuf
	events   *syncBuf // the waypoint's Logf
	v1, v2   upstream
	flaky    atomic.Int32
	cfg      func() l7test.Config
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// newFixture starts a waypoint on the test config; with hold, the xDS server withholds those types and
// newFixture returns without waiting for the config.
func newFixture(t testing.TB, hold ...string) *fixture {
	t.Helper()
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ca: authority, log: &syncBuf{}, events: &syncBuf{}}
	handler := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/flaky" && f.flaky.Add(1) == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("X-Backend", name)
			fmt.Fprintf(w, "%s request-id=%s", name, r.Header.Get("X-Request-Id"))
		}
	}
	v1 := startUpstream(t, authority, "v1", handler("v1"))
	v2 := startUpstream(t, authority, "v2", handler("v2"))
	f.v1, f.v2 = v1, v2

	svc := l7test.Service{FQDN: reviewsFQDN, VIP: "10.96.0.10", Port: 9080}
	all, c1, c2 := svc.Name(""), svc.Name("v1"), svc.Name("v2")
	svc.Routes = []*routev3.Route{
		l7test.WeightedRoute("split", "/split", []string{c1, c2}, []uint32{90, 10}),
		l7test.PrefixRoute("flaky", "/flaky", c1),
		l7test.WithFault(l7test.PrefixRoute("abort", "/abort", c1), 0, 0, 418, 100),
		l7test.WithFault(l7test.PrefixRoute("delay", "/delay", c1), 0.2, 100, 0, 0),
		l7test.PrefixRoute("default", "/", all),
	}
	sleep := "spiffe://cluster.local/ns/default/sa/sleep"
	svc.Filters = append(svc.Filters,
		l7test.RBACFilter("DENY", map[string]*rbacconfigv3.Policy{"ns[default]-policy[deny-private]-rule[0]": l7test.Policy(
			[]*rbacconfigv3.Principal{{Identifier: &rbacconfigv3.Principal_Any{Any: true}}}, l7test.PathPrefix("/private"))}),
		l7test.RBACFilter("ALLOW", map[string]*rbacconfigv3.Policy{"ns[default]-policy[allow-sleep]-rule[0]": l7test.Policy(
			[]*rbacconfigv3.Principal{l7test.Principal(sleep)})}),
	)
	f.cfg = func() l7test.Config {
		return l7test.Waypoint([]l7test.Service{svc}, []string{c1, c2},
			map[string][]string{all: {v1.app, v2.app}, c1: {v1.app}, c2: {v2.app}},
			map[string]string{v1.app: v1.hbone, v2.app: v2.hbone})
	}
	f.xds = xdstest.Start(t, "")
	f.xds.Hold(hold...)
	f.xds.Set(t, nodeID, "v1", f.cfg())

	wid, _ := authority.WorkloadID("default", "waypoint")
	wsvid, err := authority.Issue(wid, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	seed := rand.New(rand.NewPCG(1, 2))
	f.wp, err = New(Options{RouterOptions: l7xds.RouterOptions{
		XDSAddress: f.xds.Addr, Namespace: "default", Name: "waypoint", IPs: []string{"127.0.0.1"},
		SVID: wsvid, Bundle: authority.Bundle(),
		AdminAddress: "127.0.0.1:0", HealthAddress: "off",
		AccessLog: f.log, Rand: seed.Uint64,
		Logf: func(format string, args ...any) { fmt.Fprintf(f.events, format+"\n", args...) },
	}, HBONEAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.wp.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.wp.Close() })
	addrs := f.wp.Addrs()
	f.hboneURL, f.admin = addrs[0], addrs[1]
	if len(hold) > 0 {
		return f
	}
	deadline := time.Now().Add(5 * time.Second)
	for !f.wp.Ready() || len(f.wp.Engine().Table().Routes) == 0 || len(f.wp.Engine().Table().Clusters[c2].Hosts) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("waypoint did not get its config")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return f
}

func (f *fixture) adminGet(t testing.TB, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + f.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func get(t testing.TB, c *http.Client, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get("http://" + reviewsVIP + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestWaypoint(t *testing.T) {
	f := newFixture(t)
	sleep := client(t, f.ca, "default", "sleep", f.hboneURL)

	t.Run("weighted split fits 90/10", func(t *testing.T) {
		weights := []float64{90, 10}
		n := stats.SampleSize(weights, 50)
		counts := map[string]int{}
		for range n {
			code, _, h := get(t, sleep, "/split")
			if code != 200 {
				t.Fatalf("GET /split = %d", code)
			}
			counts[h.Get("X-Backend")]++
		}
		t.Logf("%d requests: v1=%d v2=%d", n, counts["v1"], counts["v2"])
		if err := stats.GoodnessOfFit([]int{counts["v1"], counts["v2"]}, weights, 0.001); err != nil {
			t.Error(err)
		}
	})

	t.Run("retry on 503", func(t *testing.T) {
		code, body, _ := get(t, sleep, "/flaky")
		if code != 200 || !strings.HasPrefix(body, "v1") {
			t.Errorf("GET /flaky = %d %q, want 200 from v1 after a retry", code, body)
		}
		metrics := f.adminGet(t, "/stats/prometheus")
		want := `envoy_cluster_upstream_rq_retry{envoy_cluster_name="inbound-vip|9080|http/v1|reviews.default.svc.cluster.local"} 1`
		if !strings.Contains(metrics, want) {
			t.Errorf("stats lack %s:\n%s", want, grep(metrics, "retry"))
		}
	})

	t.Run("rbac", func(t *testing.T) {
		other := client(t, f.ca, "other", "curl", f.hboneURL)
		for _, tt := range []struct {
			c    *http.Client
			who  string
			path string
			want int
		}{
			{sleep, "sleep", "/public", 200},
			{sleep, "sleep", "/private/x", 403},
			{other, "other", "/public", 403},
		} {
			code, body, _ := get(t, tt.c, tt.path)
			if code != tt.want || (code == 403 && body != "RBAC: access denied") {
				t.Errorf("%s GET %s = %d %q, want %d", tt.who, tt.path, code, body, tt.want)
			}
		}
		if m := f.adminGet(t, "/stats/prometheus"); !strings.Contains(m, `envoy_http_rbac_denied{envoy_http_conn_manager_prefix="inbound-vip|9080|http|reviews.default.svc.cluster.local"} 2`) {
			t.Errorf("rbac denials not counted:\n%s", grep(m, "rbac"))
		}
	})

	t.Run("fault injection", func(t *testing.T) {
		if code, body, _ := get(t, sleep, "/abort"); code != 418 || body != "fault filter abort" {
			t.Errorf("GET /abort = %d %q, want 418 fault filter abort", code, body)
		}
		start := time.Now()
		code, _, _ := get(t, sleep, "/delay")
		if d := time.Since(start); code != 200 || d < 200*time.Millisecond || d > 2*time.Second {
			t.Errorf("GET /delay = %d after %v, want 200 after about 200ms", code, d)
		}
	})

	t.Run("x-request-id", func(t *testing.T) {
		_, body, _ := get(t, sleep, "/id")
		uuid := regexp.MustCompile(`request-id=[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
		if !uuid.MatchString(body) {
			t.Errorf("upstream saw %q, want a UUIDv4 x-request-id", body)
		}
		req, _ := http.NewRequest("GET", "http://"+reviewsVIP+"/id", nil)
		req.Header.Set("X-Request-Id", "from-client")
		resp, err := sleep.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasSuffix(string(b), "request-id=from-client") {
			t.Errorf("upstream saw %q, want the client's x-request-id kept", b)
		}
	})

	t.Run("unknown target refused", func(t *testing.T) {
		_, err := sleep.Get("http://10.96.0.99:80/")
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("GET to a VIP the waypoint does not serve: %v, want a refused CONNECT", err)
		}
	})

	t.Run("admin", func(t *testing.T) {
		if d := f.adminGet(t, "/config_dump"); !strings.Contains(d, "type.googleapis.com/envoy.admin.v3.ListenersConfigDump") || !strings.Contains(d, "main_internal") {
			t.Errorf("/config_dump:\n%.400s", d)
		}
		want := "inbound-vip|9080|http/v2|reviews.default.svc.cluster.local::envoy://connect_originate/"
		if c := f.adminGet(t, "/clusters"); !strings.Contains(c, want) {
			t.Errorf("/clusters lacks %s:\n%s", want, c)
		}
		if r := f.adminGet(t, "/ready"); r != "LIVE\n" {
			t.Errorf("/ready = %q", r)
		}
		// What istioctl reads: endpoints from /clusters?format=json, secrets and bootstrap from the dump,
		// per-cluster counters in /stats.
		if c := f.adminGet(t, "/clusters?format=json"); !strings.Contains(c, `"server_listener_name": "connect_originate"`) ||
			!strings.Contains(c, `"eds_health_status": "HEALTHY"`) || !strings.Contains(c, `"name": "inbound-vip|9080|http/v2|reviews.default.svc.cluster.local"`) {
			t.Errorf("/clusters?format=json:\n%.800s", c)
		}
		d := f.adminGet(t, "/config_dump")
		for _, want := range []string{`"id": "waypoint/default/waypoint"`, `"name": "default"`, `"name": "ROOTCA"`, `"inline_bytes": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t`, `"last_updated"`} {
			if !strings.Contains(d, want) {
				t.Errorf("/config_dump lacks %s", want)
			}
		}
		if !strings.Contains(d, `"inline_bytes": "W3JlZGFjdGVkXQ=="`) || strings.Contains(d, "UFJJVkFURSBLRV") {
			t.Error("/config_dump does not redact the private key")
		}
		if st := f.adminGet(t, "/stats"); !strings.Contains(st, "cluster.inbound-vip|9080|http/v1|reviews.default.svc.cluster.local.upstream_rq_2xx: ") {
			t.Errorf("/stats lacks v1's upstream_rq_2xx:\n%.800s", st)
		}
		if si := f.adminGet(t, "/server_info"); !strings.Contains(si, `"state": "LIVE"`) {
			t.Errorf("/server_info:\n%s", si)
		}
		if !strings.Contains(f.log.String(), "source_identity=spiffe://cluster.local/ns/default/sa/sleep") ||
			!strings.Contains(f.log.String(), "destination_identity=spiffe://cluster.local/ns/default/sa/reviews-v") {
			t.Errorf("access log lacks identities:\n%.600s", f.log.String())
		}
	})

	t.Run("nack keeps serving", func(t *testing.T) {
		bad := f.cfg()
		for _, l := range bad.Listeners {
			if l.GetName() == "main_internal" {
				l.FilterChains[0].Filters = []*listenerv3.Filter{l7test.NetworkFilter("envoy.filters.network.mongo_proxy", &mongov3.MongoProxy{StatPrefix: "m"})}
			}
		}
		f.xds.Set(t, nodeID, "v2", bad)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		nack, err := f.xds.WaitFor(ctx, func(r *discoveryv3.DiscoveryRequest) bool {
			return r.GetTypeUrl() == xdstype.Listener && r.GetErrorDetail() != nil
		})
		if err != nil {
			t.Fatalf("no NACK: %v", err)
		}
		want := "listener main_internal: filter chain 0: unsupported filter envoy.filters.network.mongo_proxy"
		if got := nack.GetErrorDetail().GetMessage(); got != want {
			t.Errorf("NACK error_detail = %q, want %q", got, want)
		}
		if code, _, _ := get(t, sleep, "/public"); code != 200 {
			t.Errorf("after the NACK: GET = %d, want 200 from the previous config", code)
		}
	})
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The waypoint is not ready on its first xDS response: like Envoy's init manager it waits for listeners
// and clusters and then for the route configurations and endpoints they reference. (It used to report
// ready after the first snapshot, so traffic could arrive before main_internal had its filter chains.)
func TestReadyWaitsForWarming(t *testing.T) {
	f := newFixture(t, xdstype.Listener, xdstype.Route)
	ready := func() string {
		resp, err := http.Get("http://" + f.admin + "/ready")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %v", what, f.wp.XDS().Status())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitUntil("clusters and endpoints applied", func() bool {
		st := f.wp.XDS().Status()
		return st["cds"].Version == "v1" && st["eds"].Version == "v1" && len(f.wp.Engine().Table().Clusters) > 0
	})
	if f.wp.Ready() || ready() != "503 PRE_INITIALIZING" {
		t.Fatalf("with clusters only: Ready() = %v, /ready = %s; want not ready", f.wp.Ready(), ready())
	}
	f.xds.Release(xdstype.Listener)
	waitUntil("listeners applied", func() bool { return f.wp.XDS().Status()["lds"].Version == "v1" })
	if f.wp.Ready() || ready() != "503 PRE_INITIALIZING" {
		t.Fatalf("with routes still warming: Ready() = %v, /ready = %s; want not ready", f.wp.Ready(), ready())
	}
	f.xds.Release(xdstype.Route)
	waitUntil("ready", f.wp.Ready)
	if got := ready(); got != "200 LIVE" {
		t.Errorf("/ready = %s, want 200 LIVE", got)
	}
	if len(f.wp.Engine().Table().Routes) == 0 {
		t.Error("ready without route configurations")
	}
}
