package l7

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlab/meshlab/dataplane/l7/l7test"
)

func redirectRoute(match *routev3.RouteMatch, a *routev3.RedirectAction) *routev3.Route {
	return &routev3.Route{Name: "redirect", Match: match, Action: &routev3.Route_Redirect{Redirect: a}}
}

func prefixMatch(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

// TestRedirectLocation checks the Location Envoy composes from a RedirectAction and the request.
func TestRedirectLocation(t *testing.T) {
	tests := []struct {
		name   string
		match  *routev3.RouteMatch
		action *routev3.RedirectAction
		url    string // request URL; its host is the Host header
		xfp    string
		status int
		want   string
	}{
		{"path keeps host, port and query", prefixMatch("/"), &routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/new"}},
			"http://reviews:9080/old?x=1", "", 301, "http://reviews:9080/new?x=1"},
		{"empty path_redirect keeps the path (Istio always sets it)", prefixMatch("/"), &routev3.RedirectAction{HostRedirect: "example.org", PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{}},
			"http://reviews:9080/p", "", 301, "http://example.org/p"}, // host_redirect drops the request's port
		{"host and port", prefixMatch("/"), &routev3.RedirectAction{HostRedirect: "example.org", PortRedirect: 8080, ResponseCode: routev3.RedirectAction_FOUND},
			"http://reviews:9080/p", "", 302, "http://example.org:8080/p"},
		{"port only replaces the request's", prefixMatch("/"), &routev3.RedirectAction{PortRedirect: 8443, ResponseCode: routev3.RedirectAction_SEE_OTHER},
			"http://reviews:9080/p", "", 303, "http://reviews:8443/p"},
		{"scheme change strips the old default port", prefixMatch("/"), &routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "https"}, ResponseCode: routev3.RedirectAction_TEMPORARY_REDIRECT},
			"http://reviews:80/p", "", 307, "https://reviews/p"},
		{"scheme change keeps another port", prefixMatch("/"), &routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "https"}, ResponseCode: routev3.RedirectAction_PERMANENT_REDIRECT},
			"http://reviews:9080/p", "", 308, "https://reviews:9080/p"},
		{"https_redirect from x-forwarded-proto http", prefixMatch("/"), &routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true}},
			"http://shop/p", "http", 301, "https://shop/p"},
		{"to http from https:443", prefixMatch("/"), &routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "http"}},
			"http://shop:443/p", "https", 301, "http://shop/p"},
		{"same scheme keeps :80", prefixMatch("/"), &routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/q"}},
			"http://shop:80/p", "", 301, "http://shop:80/q"},
		{"prefix_rewrite on a separated prefix", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/original-prefix"}},
			&routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/replacement-prefix"}},
			"http://shop/original-prefix/lemon?x=y", "", 301, "http://shop/replacement-prefix/lemon?x=y"},
		{"path_redirect with its own query", prefixMatch("/"), &routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/new?a=b"}},
			"http://shop/old?x=1", "", 301, "http://shop/new?a=b"},
		{"strip_query", prefixMatch("/"), &routev3.RedirectAction{StripQuery: true},
			"http://shop/old?x=1", "", 301, "http://shop/old"},
		{"regex_rewrite", prefixMatch("/"), &routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_RegexRewrite{RegexRewrite: &matcherv3.RegexMatchAndSubstitute{
			Pattern: &matcherv3.RegexMatcher{Regex: "^/v1/(.*)$"}, Substitution: `/v2/\1`}}},
			"http://shop/v1/items?x=1", "", 301, "http://shop/v2/items?x=1"},
		{"ipv6 host with port", prefixMatch("/"), &routev3.RedirectAction{PortRedirect: 81},
			"http://[fd00::1]:9080/p", "", 301, "http://[fd00::1]:81/p"},
	}
	for _, tt := range tests {
		rt, err := compileRoute(redirectRoute(tt.match, tt.action))
		if err != nil {
			t.Fatalf("%s: compileRoute() = %v", tt.name, err)
		}
		r := httptest.NewRequest("GET", tt.url, nil)
		if tt.xfp != "" {
			r.Header.Set("X-Forwarded-Proto", tt.xfp)
		}
		if !rt.matches(r) {
			t.Fatalf("%s: route does not match %s", tt.name, tt.url)
		}
		if got := rt.location(r); got != tt.want || rt.Redirect.status != tt.status {
			t.Errorf("%s: %d %s, want %d %s", tt.name, rt.Redirect.status, got, tt.status, tt.want)
		}
	}
}

func TestHeaderMutation(t *testing.T) {
	m, err := compileHeaderMutation([]*corev3.HeaderValueOption{
		{Header: &corev3.HeaderValue{Key: "x-set", Value: "new"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
		{Header: &corev3.HeaderValue{Key: "x-add", Value: "2"}}, // APPEND_IF_EXISTS_OR_ADD is the default
		{Header: &corev3.HeaderValue{Key: "x-absent", Value: "no"}, AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT},
		{Header: &corev3.HeaderValue{Key: "x-only-existing", Value: "no"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS},
		{Header: &corev3.HeaderValue{Key: "x-legacy", Value: "b"}, Append: wrapperspb.Bool(false)},
		{Header: &corev3.HeaderValue{Key: "x-empty", Value: ""}},
		{Header: &corev3.HeaderValue{Key: "x-pct", Value: "100%%"}},
		{Header: &corev3.HeaderValue{Key: "x-removed", Value: "re-added"}}, // removal happens first
	}, []string{"x-remove", "X-Removed"})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Set": {"old", "older"}, "X-Add": {"1"}, "X-Absent": {"kept"}, "X-Legacy": {"a"}, "X-Remove": {"gone"}, "X-Removed": {"gone"}}
	m.apply(h)
	want := http.Header{"X-Set": {"new"}, "X-Add": {"1", "2"}, "X-Absent": {"kept"}, "X-Legacy": {"b"}, "X-Pct": {"100%"}, "X-Removed": {"re-added"}}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Errorf("after mutation %v, want %v", h, want)
	}
	for _, bad := range []*corev3.HeaderValueOption{
		{Header: &corev3.HeaderValue{Key: ":authority", Value: "x"}},
		{Header: &corev3.HeaderValue{Key: "Host", Value: "x"}},
		{Header: &corev3.HeaderValue{Key: "x-fmt", Value: "%DOWNSTREAM_REMOTE_ADDRESS%"}},
	} {
		if _, err := compileHeaderMutation([]*corev3.HeaderValueOption{bad}, nil); err == nil {
			t.Errorf("header %s=%s accepted", bad.Header.Key, bad.Header.Value)
		}
	}
	if m, err := compileHeaderMutation(nil, nil); m != nil || err != nil {
		t.Errorf("empty lists compile to %v, %v; want nil", m, err)
	}
}

func setHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
}

func addHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD}
}

// TestEngineRewriteAndHeaders sends real HTTP through the engine over loopback: redirects answer without
// the backend, rewrites change what the backend sees, header mutations reach the backend and the client.
func TestEngineRewriteAndHeaders(t *testing.T) {
	backend := echoServer(t, "a", func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Resp-Set", "upstream")
		w.Header().Set("Resp-Add", "upstream")
		w.Header().Set("Resp-Remove", "upstream")
		fmt.Fprintf(w, "path=%s query=%s host=%s x-set=%q x-add=%q x-remove=%q x-cluster=%q original-path=%q",
			r.URL.Path, r.URL.RawQuery, r.Host, r.Header.Values("X-Set"), r.Header.Values("X-Add"), r.Header.Values("X-Remove"), r.Header.Values("X-Cluster"),
			r.Header.Get("X-Envoy-Original-Path"))
		return true
	})
	svc := l7test.Service{FQDN: "reviews.default.svc.cluster.local", VIP: "10.96.0.10", Port: 9080}
	name := svc.Name("")
	rewrite := l7test.PrefixRoute("rewrite", "/old", name)
	rewrite.Match.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/old"}
	rewrite.GetRoute().PrefixRewrite = "/new"
	rewrite.GetRoute().HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "rewritten.example"}
	rewrite.RequestHeadersToAdd = []*corev3.HeaderValueOption{setHeader("x-set", "route"), addHeader("x-add", "route")}
	rewrite.RequestHeadersToRemove = []string{"x-remove"}
	rewrite.ResponseHeadersToAdd = []*corev3.HeaderValueOption{setHeader("resp-set", "route"), addHeader("resp-add", "route")}
	rewrite.ResponseHeadersToRemove = []string{"resp-remove"}

	full := l7test.PrefixRoute("full", "/full", name)
	full.GetRoute().RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "/.*"}, Substitution: "/replaced"}

	// A weighted cluster's mutations come first, the route's after (and win).
	split := l7test.WeightedRoute("split", "/split", []string{name}, []uint32{1})
	cw := split.GetRoute().GetWeightedClusters().Clusters[0]
	cw.RequestHeadersToAdd = []*corev3.HeaderValueOption{setHeader("x-cluster", "cluster"), setHeader("x-set", "cluster")}
	cw.ResponseHeadersToAdd = []*corev3.HeaderValueOption{addHeader("resp-add", "cluster")}
	cw.HostRewriteSpecifier = &routev3.WeightedCluster_ClusterWeight_HostRewriteLiteral{HostRewriteLiteral: "cluster.example"}
	split.RequestHeadersToAdd = []*corev3.HeaderValueOption{setHeader("x-set", "route")}

	redirect := redirectRoute(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/redirect"}}, &routev3.RedirectAction{
		HostRedirect: "example.org", PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/moved"}, ResponseCode: routev3.RedirectAction_FOUND})
	redirect.ResponseHeadersToAdd = []*corev3.HeaderValueOption{setHeader("resp-set", "redirect")}

	svc.Routes = []*routev3.Route{redirect, rewrite, full, split, l7test.PrefixRoute("default", "/", name)}
	cfg := Config(l7test.Waypoint([]l7test.Service{svc}, nil, map[string][]string{name: {backend}}, nil))
	cfg.Routes[0].VirtualHosts[0].Domains = []string{"*"}
	f := newEngineFixture(t, cfg, netip.MustParseAddrPort("10.96.0.10:9080"))

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(path string, hdr http.Header) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+f.addr+path, nil)
		req.Host = "reviews:9080"
		for k, vs := range hdr {
			req.Header[k] = vs
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}

	resp, body := do("/redirect?x=1", nil)
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "http://example.org/moved?x=1" || body != "" || resp.Header.Get("Resp-Set") != "redirect" {
		t.Errorf("GET /redirect = %d Location %q resp-set %q body %q, want 302 http://example.org/moved?x=1 from the proxy",
			resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Resp-Set"), body)
	}

	resp, body = do("/old/a%2Fb/c?q=1", http.Header{"X-Set": {"client"}, "X-Add": {"client"}, "X-Remove": {"client"}})
	if want := `path=/new/a/b/c query=q=1 host=rewritten.example x-set=["route"] x-add=["client" "route"] x-remove=[] x-cluster=[] original-path="/old/a%2Fb/c?q=1"`; body != want {
		t.Errorf("backend saw\n%s\nwant\n%s", body, want)
	}
	if got := resp.Header.Values("Resp-Set"); fmt.Sprint(got) != "[route]" {
		t.Errorf("client got resp-set %q, want [route]", got)
	}
	if got := resp.Header.Values("Resp-Add"); fmt.Sprint(got) != "[upstream route]" {
		t.Errorf("client got resp-add %q, want [upstream route]", got)
	}
	if _, ok := resp.Header["Resp-Remove"]; ok {
		t.Errorf("client got resp-remove, want it removed")
	}

	_, body = do("/full/x/y", nil)
	if !strings.HasPrefix(body, "path=/replaced query= host=reviews:9080 ") {
		t.Errorf("regex rewrite: backend saw %s", body)
	}

	resp, body = do("/split", nil)
	if !strings.HasPrefix(body, `path=/split query= host=cluster.example x-set=["route"] x-add=[] x-remove=[] x-cluster=["cluster"]`) {
		t.Errorf("weighted cluster headers: backend saw %s", body)
	}
	if got := resp.Header.Values("Resp-Add"); fmt.Sprint(got) != "[upstream cluster]" {
		t.Errorf("weighted cluster response headers: client got resp-add %q", got)
	}

	_, body = do("/plain", http.Header{"X-Remove": {"client"}})
	if !strings.HasPrefix(body, `path=/plain query= host=reviews:9080 x-set=[] x-add=[] x-remove=["client"]`) || !strings.HasSuffix(body, `original-path=""`) {
		t.Errorf("plain route: backend saw %s", body)
	}
}

// TestPlainRouteAddsNoAllocation checks that a route without redirect, rewrite or header manipulation
// pays nothing for them per request (the whole-request cost is BenchmarkPlainRoute).
func TestPlainRouteAddsNoAllocation(t *testing.T) {
	rt, err := compileRoute(l7test.WeightedRoute("split", "/", []string{"v1", "v2"}, []uint32{90, 10}))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://reviews:9080/reviews/1?x=1", nil)
	h := http.Header{"X-A": {"1"}}
	rnd := func() uint64 { return 95 }
	if n := testing.AllocsPerRun(100, func() {
		_, wc := rt.pick(rnd)
		wc.reqHeaders.apply(h)
		rt.reqHeaders.apply(h)
		if _, _, ok := rt.upstreamPath(r); ok {
			t.Fatal("plain route rewrites the path")
		}
		applyResponse(h, rt, wc)
	}); n != 0 {
		t.Errorf("%v allocations per request on a plain route, want 0", n)
	}
}
