package l7

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	mongov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/mongo_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlab/meshlab/dataplane/l7/l7test"
	"github.com/meshlab/meshlab/internal/stats"
)

func exact(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func TestRouteMatching(t *testing.T) {
	rc := &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{
		{Name: "exact", Domains: []string{"reviews.default.svc.cluster.local", "reviews:9080"}, Routes: []*routev3.Route{
			l7test.PrefixRoute("exact-vh", "/", "c-exact")}},
		{Name: "suffix", Domains: []string{"*.example.com"}, Routes: []*routev3.Route{l7test.PrefixRoute("suffix-vh", "/", "c-suffix")}},
		{Name: "prefix", Domains: []string{"api.*"}, Routes: []*routev3.Route{l7test.PrefixRoute("prefix-vh", "/", "c-prefix")}},
		{Name: "any", Domains: []string{"*"}, Routes: []*routev3.Route{
			{Name: "exact-path", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/health"}}, Action: clusterAction("c1")},
			{Name: "regex", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/api/v[0-9]+/products"}}}, Action: clusterAction("c2")},
			{Name: "separated", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/static"}}, Action: clusterAction("c3")},
			{Name: "header-exact", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{
				{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("jason")}}}}, Action: clusterAction("jason")},
			{Name: "header-prefix", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{
				{Name: "x-version", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "v2"}}}}}}, Action: clusterAction("v2")},
			{Name: "header-regex", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{
				{Name: "x-id", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "[0-9]{3}"}}}}}, Action: clusterAction("id3")},
			{Name: "header-invert", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/inv"}, Headers: []*routev3.HeaderMatcher{
				{Name: "x-canary", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("yes")}}}}, Action: clusterAction("not-canary")},
			{Name: "header-present", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{
				{Name: "x-debug", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}, Action: clusterAction("debug")},
			{Name: "method", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{
				{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("POST")}}}}, Action: clusterAction("post")},
			{Name: "catch-all", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: clusterAction("default")},
		}},
	}}
	rt, err := compileRouteConfig(rc)
	if err != nil {
		t.Fatalf("compileRouteConfig() = %v", err)
	}
	tests := []struct {
		host, method, path string
		header             map[string]string
		want               string
	}{
		{"reviews.default.svc.cluster.local", "GET", "/x", nil, "exact-vh"},
		{"reviews:9080", "GET", "/x", nil, "exact-vh"},
		{"reviews.default.svc.cluster.local:9080", "GET", "/x", nil, "exact-vh"}, // port dropped when nothing matches it
		{"shop.example.com", "GET", "/", nil, "suffix-vh"},
		{"api.internal", "GET", "/", nil, "prefix-vh"},
		{"other", "GET", "/health", nil, "exact-path"},
		{"other", "GET", "/health?verbose=1", nil, "exact-path"},
		{"other", "GET", "/healthz", nil, "catch-all"},
		{"other", "GET", "/api/v1/products", nil, "regex"},
		{"other", "GET", "/api/v1/products/1", nil, "catch-all"}, // regexes match the whole path
		{"other", "GET", "/static/app.js", nil, "separated"},
		{"other", "GET", "/static", nil, "separated"},
		{"other", "GET", "/staticfoo", nil, "catch-all"},
		{"other", "GET", "/", map[string]string{"end-user": "jason"}, "header-exact"},
		{"other", "GET", "/", map[string]string{"end-user": "json"}, "catch-all"},
		{"other", "GET", "/", map[string]string{"x-version": "v2-beta"}, "header-prefix"},
		{"other", "GET", "/", map[string]string{"x-id": "123"}, "header-regex"},
		{"other", "GET", "/", map[string]string{"x-id": "1234"}, "catch-all"},
		{"other", "GET", "/inv", map[string]string{"x-canary": "no"}, "header-invert"},
		{"other", "GET", "/inv", map[string]string{"x-canary": "yes"}, "catch-all"},
		{"other", "GET", "/inv", nil, "catch-all"}, // a missing header never matches a value matcher
		{"other", "GET", "/", map[string]string{"x-debug": ""}, "header-present"},
		{"other", "POST", "/", nil, "method"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, "http://"+tt.host+tt.path, nil)
		for k, v := range tt.header {
			r.Header.Set(k, v)
		}
		got := rt.Match(r)
		name := "<nil>"
		if got != nil {
			name = got.Name
		}
		if name != tt.want {
			t.Errorf("%s %s%s %v: matched %s, want %s", tt.method, tt.host, tt.path, tt.header, name, tt.want)
		}
	}
}

func clusterAction(c string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c}}}
}

func TestWeightedClusterChoice(t *testing.T) {
	r, err := compileRoute(l7test.WeightedRoute("split", "/", []string{"v1", "v2"}, []uint32{90, 10}))
	if err != nil {
		t.Fatal(err)
	}
	// Deterministic with a seeded source.
	seq := func(seed uint64) []string {
		src := rand.New(rand.NewPCG(seed, 7))
		var out []string
		for range 20 {
			out = append(out, r.pickCluster(src.Uint64))
		}
		return out
	}
	if a, b := seq(1), seq(1); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("same seed gave different choices:\n%v\n%v", a, b)
	}
	// The cumulative mapping: [0,90) -> v1, [90,100) -> v2.
	for x, want := range map[uint64]string{0: "v1", 89: "v1", 90: "v2", 99: "v2", 100: "v1"} {
		if got := r.pickCluster(func() uint64 { return x }); got != want {
			t.Errorf("pick(%d) = %s, want %s", x, got, want)
		}
	}
	weights := []float64{90, 10}
	n := stats.SampleSize(weights, 50)
	src := rand.New(rand.NewPCG(42, 42))
	counts := map[string]int{}
	for range n {
		counts[r.pickCluster(src.Uint64)]++
	}
	if err := stats.GoodnessOfFit([]int{counts["v1"], counts["v2"]}, weights, 0.001); err != nil {
		t.Error(err)
	}
}

func TestRetryPolicy(t *testing.T) {
	p, err := compileRetry(l7test.DefaultRetry())
	if err != nil {
		t.Fatal(err)
	}
	if p.NumRetries != 2 || !p.PreviousHosts || p.HostSelectMax != 5 {
		t.Errorf("compiled %+v, want 2 retries, previous_hosts, 5 host selection attempts", p)
	}
	all, _ := compileRetry(&routev3.RetryPolicy{RetryOn: "5xx,reset"})
	gw, _ := compileRetry(&routev3.RetryPolicy{RetryOn: "gateway-error,retriable-4xx"})
	reset, _ := compileRetry(&routev3.RetryPolicy{RetryOn: "reset"})
	cf, _ := compileRetry(&routev3.RetryPolicy{RetryOn: "connect-failure,retriable-status-codes", RetriableStatusCodes: []uint32{504}})
	tests := []struct {
		name string
		p    *RetryPolicy
		f    attemptFailure
		want bool
	}{
		{"istio: 503", p, attemptFailure{status: 503}, true},
		{"istio: 500", p, attemptFailure{status: 500}, false},
		{"istio: 200", p, attemptFailure{status: 200}, false},
		{"istio: connect failure", p, attemptFailure{connect: true}, true},
		{"istio: refused stream", p, attemptFailure{refused: true}, true},
		{"istio: reset", p, attemptFailure{reset: true}, false},
		{"istio: grpc unavailable", p, attemptFailure{status: 200, grpc: "14"}, true},
		{"istio: grpc cancelled", p, attemptFailure{status: 200, grpc: "1"}, true},
		{"istio: grpc internal", p, attemptFailure{status: 200, grpc: "13"}, false},
		{"5xx: 500", all, attemptFailure{status: 500}, true},
		{"5xx: reset", all, attemptFailure{reset: true}, true},
		{"5xx: per-try timeout", all, attemptFailure{timeout: true}, true},
		{"5xx: 404", all, attemptFailure{status: 404}, false},
		{"istio: per-try timeout", p, attemptFailure{timeout: true}, false},
		{"gateway: per-try timeout", gw, attemptFailure{timeout: true}, true},
		{"gateway: reset", gw, attemptFailure{reset: true}, true},
		{"reset: per-try timeout", reset, attemptFailure{timeout: true}, true},
		{"reset: connect failure", reset, attemptFailure{connect: true}, true},
		{"connect-failure: per-try timeout", cf, attemptFailure{timeout: true}, false},
		{"gateway: 502", gw, attemptFailure{status: 502}, true},
		{"gateway: 500", gw, attemptFailure{status: 500}, false},
		{"gateway: 409", gw, attemptFailure{status: 409}, true},
		{"nil policy", nil, attemptFailure{status: 503}, false},
	}
	for _, tt := range tests {
		if got := tt.p.shouldRetry(tt.f); got != tt.want {
			t.Errorf("%s: shouldRetry = %v, want %v", tt.name, got, tt.want)
		}
	}
	// Back-off stays within Envoy's bounds: [0, min((2^n - 1) * 25ms, 250ms)).
	src := rand.New(rand.NewPCG(1, 1))
	for n := 1; n < 8; n++ {
		for range 100 {
			if d := p.backoff(n, src.Uint64); d < 0 || d >= 250e6 {
				t.Fatalf("backoff(%d) = %v", n, d)
			}
		}
	}
}

func TestRBAC(t *testing.T) {
	productpage := "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
	sleep := "spiffe://cluster.local/ns/other/sa/sleep"
	allow := l7test.RBACFilter("ALLOW", map[string]*rbacconfigv3.Policy{
		"ns[default]-policy[reviews-viewer]-rule[0]": l7test.Policy([]*rbacconfigv3.Principal{l7test.Principal(productpage)},
			l7test.And(l7test.Method("GET"), l7test.PathPrefix("/reviews"))),
		"ns[default]-policy[same-ns]-rule[0]": l7test.Policy([]*rbacconfigv3.Principal{l7test.Namespace("trusted")},
			&rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_DestinationPort{DestinationPort: 9080}}),
	})
	deny := l7test.RBACFilter("DENY", map[string]*rbacconfigv3.Policy{
		"ns[default]-policy[no-admin]-rule[0]": l7test.Policy([]*rbacconfigv3.Principal{{Identifier: &rbacconfigv3.Principal_Any{Any: true}}}, l7test.PathPrefix("/admin")),
	})
	h, err := compileHCM(hcmFor(deny, allow))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		peer, method, path string
		port               uint16
		want               bool
	}{
		{productpage, "GET", "/reviews/1", 9080, true},
		{productpage, "POST", "/reviews/1", 9080, false},
		{productpage, "GET", "/ratings/1", 9080, false},
		{sleep, "GET", "/reviews/1", 9080, false},
		{"", "GET", "/reviews/1", 9080, false},
		{"spiffe://cluster.local/ns/trusted/sa/x", "DELETE", "/anything", 9080, true},
		{"spiffe://cluster.local/ns/trusted/sa/x", "GET", "/anything", 8080, false},
		{"spiffe://cluster.local/ns/trusted/sa/x", "GET", "/admin/x", 9080, false}, // DENY wins
		{"spiffe://cluster.local/ns/untrusted/sa/x", "GET", "/x", 9080, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, "http://reviews:9080"+tt.path, nil)
		ri := &requestInfo{r: r, down: &Downstream{Peer: tt.peer, Destination: netip.AddrPortFrom(netip.MustParseAddr("10.96.0.1"), tt.port)}}
		got := true
		for _, f := range h.rbac {
			if ok, _ := f.allowed(ri); !ok {
				got = false
			}
		}
		if got != tt.want {
			t.Errorf("%s %s %s port %d: allowed = %v, want %v", tt.peer, tt.method, tt.path, tt.port, got, tt.want)
		}
	}
}

func hcmFor(filters ...*hcmv3.HttpFilter) *hcmv3.HttpConnectionManager {
	f := l7test.HCM("test", "test", filters...)
	m := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
		panic(err)
	}
	return m
}

func TestFault(t *testing.T) {
	r, err := compileRoute(l7test.WithFault(l7test.PrefixRoute("f", "/", "c"), 0.5, 25, 503, 100))
	if err != nil {
		t.Fatal(err)
	}
	f := r.Fault
	if f.Delay.Seconds() != 0.5 || f.DelayPPM != 250_000 || f.AbortStatus != 503 || f.AbortPPM != 1_000_000 {
		t.Fatalf("compiled fault %+v", f)
	}
	src := rand.New(rand.NewPCG(3, 3))
	n, hits := 4000, 0
	for range n {
		if hit(f.DelayPPM, src.Uint64) {
			hits++
		}
	}
	if err := stats.GoodnessOfFit([]int{hits, n - hits}, []float64{25, 75}, 0.001); err != nil {
		t.Errorf("25%% delay fraction: %v", err)
	}
	if !hit(f.AbortPPM, func() uint64 { return 999_999 }) || hit(0, func() uint64 { return 0 }) {
		t.Error("100% must always hit and 0% never")
	}
}

func TestValidationErrors(t *testing.T) {
	base := func() Config {
		return Config(l7test.Waypoint([]l7test.Service{
			{FQDN: "reviews.default.svc.cluster.local", VIP: "10.96.0.10", Port: 9080},
			{FQDN: "details.default.svc.cluster.local", VIP: "10.96.0.11", Port: 9080},
			{FQDN: "ratings.default.svc.cluster.local", VIP: "10.96.0.12", Port: 9080},
			{FQDN: "mongo.default.svc.cluster.local", VIP: "10.96.0.13", Port: 27017, TCP: true},
		}, nil, nil, nil))
	}
	if _, err := Build(base()); err != nil {
		t.Fatalf("Build(waypoint config) = %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"network filter", func(c *Config) {
			main := c.Listeners[2]
			main.FilterChains[3].Filters = []*listenerv3.Filter{l7test.NetworkFilter("envoy.filters.network.mongo_proxy", &mongov3.MongoProxy{StatPrefix: "mongo"})}
		}, "listener main_internal: filter chain 3: unsupported filter envoy.filters.network.mongo_proxy"},
		{"http filter", func(c *Config) {
			m := hcmFor()
			m.HttpFilters = append([]*hcmv3.HttpFilter{l7test.HTTPFilter("envoy.filters.http.ext_authz", wrapperspb.String("x"))}, m.HttpFilters...)
			c.Listeners[2].FilterChains[0].Filters[0] = l7test.NetworkFilter("envoy.filters.network.http_connection_manager", m)
		}, "listener main_internal: filter chain 0: filter envoy.filters.network.http_connection_manager: http filter 0: unsupported filter envoy.filters.http.ext_authz"},
		{"route field", func(c *Config) {
			c.Routes[0].VirtualHosts[0].Routes[0].GetRoute().HostRewriteSpecifier = &routev3.RouteAction_AutoHostRewrite{AutoHostRewrite: wrapperspb.Bool(true)}
		}, "route configuration inbound-vip|9080|http|reviews.default.svc.cluster.local: virtual host 0 (inbound|http|9080): route 0 (default): route: unsupported field auto_host_rewrite"},
		{"retry_on", func(c *Config) {
			c.Routes[0].VirtualHosts[0].Routes[0].GetRoute().RetryPolicy.RetryOn = "5xx,envoy-ratelimited"
		}, `retry_policy: retry_on: unsupported condition "envoy-ratelimited"`},
		{"cluster type", func(c *Config) {
			c.Clusters[0].ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
			c.Clusters[0].EdsClusterConfig = nil
		}, "type: unsupported discovery type STRICT_DNS"},
		{"outlier detection by success rate", func(c *Config) {
			c.Clusters[0].OutlierDetection = &clusterv3.OutlierDetection{SuccessRateMinimumHosts: wrapperspb.UInt32(3)}
		}, "outlier_detection: unsupported field success_rate_minimum_hosts"},
		{"circuit breaker retry budget", func(c *Config) {
			c.Clusters[0].CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{}}}}
		}, "circuit_breakers: thresholds 0: unsupported field retry_budget"},
		{"hcm field", func(c *Config) {
			m := hcmFor()
			m.Tracing = &hcmv3.HttpConnectionManager_Tracing{}
			c.Listeners[2].FilterChains[1].Filters[0] = l7test.NetworkFilter("envoy.filters.network.http_connection_manager", m)
		}, "listener main_internal: filter chain 1: filter envoy.filters.network.http_connection_manager: unsupported field tracing"},
		{"rbac principal", func(c *Config) {
			m := hcmFor(l7test.RBACFilter("ALLOW", map[string]*rbacconfigv3.Policy{"p": l7test.Policy([]*rbacconfigv3.Principal{
				{Identifier: &rbacconfigv3.Principal_FilterState{}}})}))
			c.Listeners[2].FilterChains[0].Filters[0] = l7test.NetworkFilter("envoy.filters.network.http_connection_manager", m)
		}, "policy p: principals 0: unsupported principal filter_state"},
	}
	for _, tt := range tests {
		cfg := base()
		tt.mutate(&cfg)
		_, err := Build(cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Build() = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

var _ = http.MethodGet
