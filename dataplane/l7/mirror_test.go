package l7

import (
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlab/meshlab/dataplane/l7/l7test"
)

func TestShadowHost(t *testing.T) {
	for in, want := range map[string]string{
		"reviews":         "reviews-shadow",
		"reviews:9080":    "reviews-shadow:9080",
		"10.0.0.1:80":     "10.0.0.1-shadow:80",
		"[fd00::1]:9080":  "[fd00::1]-shadow:9080",
		"[fd00::1]":       "[fd00::1]-shadow",
		"reviews.default": "reviews.default-shadow",
	} {
		if got := shadowHost(in); got != want {
			t.Errorf("shadowHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func mirrorPolicy100(cluster string, num uint32, den typev3.FractionalPercent_DenominatorType) *routev3.RouteAction_RequestMirrorPolicy {
	return &routev3.RouteAction_RequestMirrorPolicy{Cluster: cluster, TraceSampled: wrapperspb.Bool(false),
		RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: num, Denominator: den}}}
}

// TestEngineMirror: a copy of each request on a mirrored route reaches the mirror cluster with the
// "-shadow" authority, the same path, headers and body; the mirror's slow 500 neither delays nor changes
// the answer; a 0% policy and an unreachable mirror change nothing.
func TestEngineMirror(t *testing.T) {
	type copyOf struct{ method, host, path, header, body string }
	var mu sync.Mutex
	var copies []copyOf
	release := make(chan struct{})
	mirror := echoServer(t, "m", func(w http.ResponseWriter, r *http.Request) bool {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		copies = append(copies, copyOf{r.Method, r.Host, r.URL.RequestURI(), r.Header.Get("X-Set"), string(b)})
		mu.Unlock()
		select { // slow: the main request must not wait for it
		case <-release:
		case <-time.After(2 * time.Second):
		}
		w.WriteHeader(500)
		return true
	})
	t.Cleanup(func() { close(release) }) // before the mirror server's Close, which waits for its handlers
	backend := echoServer(t, "a", func(w http.ResponseWriter, r *http.Request) bool {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "a "+r.Host+" "+r.URL.Path+" "+string(b))
		return true
	})
	svc := l7test.Service{FQDN: "reviews.default.svc.cluster.local", VIP: "10.96.0.10", Port: 9080}
	name := svc.Name("")
	const mirrorCluster, deadCluster = "inbound-vip|9080|http/v3|reviews.default.svc.cluster.local", "inbound-vip|9080|http|dead.default.svc.cluster.local"
	mirrored := l7test.PrefixRoute("mirrored", "/mirrored", name)
	mirrored.GetRoute().RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{
		mirrorPolicy100(mirrorCluster, 100, typev3.FractionalPercent_HUNDRED),
		mirrorPolicy100(deadCluster, 1_000_000, typev3.FractionalPercent_MILLION),
	}
	mirrored.RequestHeadersToAdd = []*corev3.HeaderValueOption{setHeader("x-set", "route")}
	never := l7test.PrefixRoute("never", "/never", name)
	never.GetRoute().RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{mirrorPolicy100(mirrorCluster, 0, typev3.FractionalPercent_HUNDRED)}
	svc.Routes = []*routev3.Route{mirrored, never, l7test.PrefixRoute("default", "/", name)}
	cfg := Config(l7test.Waypoint([]l7test.Service{svc}, []string{mirrorCluster, deadCluster},
		map[string][]string{name: {backend}, mirrorCluster: {mirror}, deadCluster: {"127.0.0.1:1"}}, nil))
	f := newEngineFixture(t, cfg, netip.MustParseAddrPort("10.96.0.10:9080"))

	do := func(method, path, body string) (int, string, time.Duration) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+f.addr+path, strings.NewReader(body))
		req.Host = "reviews:9080"
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b), time.Since(start)
	}
	for _, tc := range []struct{ method, path, body string }{{"GET", "/mirrored/1?q=1", ""}, {"POST", "/mirrored/2", "payload"}} {
		status, body, took := do(tc.method, tc.path, tc.body)
		if want := "a reviews:9080 " + strings.SplitN(tc.path, "?", 2)[0] + " " + tc.body; status != 200 || body != want {
			t.Errorf("%s %s = %d %q, want 200 %q", tc.method, tc.path, status, body, want)
		}
		if took > time.Second {
			t.Errorf("%s %s took %v: the mirror delayed it", tc.method, tc.path, took)
		}
	}
	if status, _, _ := do("GET", "/never", ""); status != 200 {
		t.Errorf("GET /never = %d", status)
	}
	want := []copyOf{{"GET", "reviews-shadow:9080", "/mirrored/1?q=1", "route", ""}, {"POST", "reviews-shadow:9080", "/mirrored/2", "route", "payload"}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := append([]copyOf(nil), copies...)
		mu.Unlock()
		if len(got) >= len(want) || time.Now().After(deadline) {
			if len(got) != len(want) {
				t.Fatalf("mirror got %+v, want %+v", got, want)
			}
			for _, w := range want {
				found := false
				for _, g := range got {
					found = found || g == w
				}
				if !found {
					t.Errorf("mirror got %+v, want %+v among them", got, w)
				}
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEnginePerTryTimeout: each attempt is bounded by per_try_timeout; a timed-out attempt is retried when
// retry_on has reset, 5xx or gateway-error (then the second attempt answers), and not with Istio's
// default conditions (then the client gets 504 after one attempt).
func TestEnginePerTryTimeout(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	backend := echoServer(t, "a", func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		seen[r.URL.Path]++
		n := seen[r.URL.Path]
		mu.Unlock()
		if n == 1 { // the first attempt hangs
			select {
			case <-r.Context().Done():
			case <-time.After(3 * time.Second):
			}
			return true
		}
		io.WriteString(w, "attempt 2 expected-timeout="+r.Header.Get("X-Envoy-Expected-Rq-Timeout-Ms"))
		return true
	})
	svc := l7test.Service{FQDN: "reviews.default.svc.cluster.local", VIP: "10.96.0.10", Port: 9080}
	name := svc.Name("")
	var routes []*routev3.Route
	for _, on := range []string{"reset", "gateway-error", "5xx", "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"} {
		r := l7test.PrefixRoute(on, "/"+on, name)
		p := l7test.DefaultRetry()
		p.RetryOn = on
		p.PerTryTimeout = durationpb.New(200 * time.Millisecond)
		p.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}
		r.GetRoute().RetryPolicy = p
		r.GetRoute().Timeout = durationpb.New(5 * time.Second)
		routes = append(routes, r)
	}
	svc.Routes = append(routes, l7test.PrefixRoute("default", "/", name))
	cfg := Config(l7test.Waypoint([]l7test.Service{svc}, nil, map[string][]string{name: {backend}}, nil))
	f := newEngineFixture(t, cfg, netip.MustParseAddrPort("10.96.0.10:9080"))

	get := func(path string) (int, string, time.Duration) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+f.addr+path, nil)
		req.Host = "reviews:9080"
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b), time.Since(start)
	}
	for _, on := range []string{"reset", "gateway-error", "5xx"} {
		status, body, took := get("/" + on)
		if status != 200 || body != "attempt 2 expected-timeout=200" {
			t.Errorf("retry_on %s: %d %q, want 200 from the second attempt (expected timeout 200ms)", on, status, body)
		}
		if took < 200*time.Millisecond || took > 2*time.Second {
			t.Errorf("retry_on %s: took %v, want the 200ms per-try timeout then the retry", on, took)
		}
	}
	status, body, took := get("/connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes")
	if status != 504 || body != bodyTimeout || took > 2*time.Second {
		t.Errorf("Istio's default retry_on: %d %q after %v, want 504 %q after the 200ms per-try timeout", status, body, took, bodyTimeout)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := seen["/connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"]; n != 1 {
		t.Errorf("Istio's default retry_on: %d attempts, want 1", n)
	}
	for _, line := range strings.Split(f.log.String(), "\n") {
		if strings.Contains(line, `"GET /reset HTTP/1.1" 200`) && !strings.Contains(line, " attempts=2 ") {
			t.Errorf("access log: %s, want attempts=2", line)
		}
	}
}
