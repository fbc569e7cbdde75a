package l7

import (
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlab/meshlab/dataplane/l7/l7test"
)

// corsRoute is a route to cluster with the CORS policy Istio writes for a corsPolicy.
func corsRoute(name, prefix, cluster string, forwardUnmatched bool, origins ...*matcherv3.StringMatcher) *routev3.Route {
	r := l7test.PrefixRoute(name, prefix, cluster)
	r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.cors": l7test.MustAny(&corsv3.CorsPolicy{
		AllowOriginStringMatch:       origins,
		AllowMethods:                 "GET,POST",
		AllowHeaders:                 "x-custom,content-type",
		ExposeHeaders:                "x-exposed",
		MaxAge:                       "600",
		AllowCredentials:             wrapperspb.Bool(true),
		FilterEnabled:                &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}},
		ForwardNotMatchingPreflights: wrapperspb.Bool(forwardUnmatched),
	})}
	return r
}

// TestEngineCORS sends real requests through the engine: preflights from allowed origins are answered by
// the proxy (the backend never sees them), other preflights are forwarded or answered bare as
// forward_not_matching_preflights says, and responses to allowed origins carry the Access-Control headers.
func TestEngineCORS(t *testing.T) {
	backend := echoServer(t, "backend", func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Access-Control-Allow-Origin", "https://from-the-backend") // the filter overrides it
		w.Header().Set("X-Exposed", "yes")
		io.WriteString(w, "backend saw "+r.Method)
		return true
	})
	svc := l7test.Service{FQDN: "web.default.svc.cluster.local", VIP: "10.96.0.20", Port: 8080}
	name := svc.Name("")
	exact := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://shop.example"}}
	prefix := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "https://app."}}
	svc.Routes = []*routev3.Route{
		corsRoute("forward", "/forward", name, true, exact, prefix),
		corsRoute("ignore", "/ignore", name, false, exact),
		l7test.PrefixRoute("plain", "/", name),
	}
	cfg := Config(l7test.Waypoint([]l7test.Service{svc}, nil, map[string][]string{name: {backend}}, nil))
	cfg.Routes[0].VirtualHosts[0].Domains = []string{"*"}
	f := newEngineFixture(t, cfg, netip.MustParseAddrPort("10.96.0.20:8080"))

	do := func(method, path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+f.addr+path, nil)
		req.Host = "web:8080"
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	preflight := func(origin string) map[string]string {
		return map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-custom"}
	}
	want := func(what string, resp *http.Response, body string, status int, bodyHas string, headers map[string]string) {
		t.Helper()
		if resp.StatusCode != status || !strings.Contains(body, bodyHas) {
			t.Errorf("%s: %d %q, want %d with %q", what, resp.StatusCode, body, status, bodyHas)
		}
		for k, v := range headers {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", what, k, got, v)
			}
		}
	}

	resp, body := do("OPTIONS", "/forward/x", preflight("https://shop.example"))
	want("preflight from an allowed origin is answered by the proxy", resp, body, 200, "", map[string]string{
		"Access-Control-Allow-Origin": "https://shop.example", "Access-Control-Allow-Methods": "GET,POST",
		"Access-Control-Allow-Headers": "x-custom,content-type", "Access-Control-Max-Age": "600",
		"Access-Control-Allow-Credentials": "true"})
	if body != "" {
		t.Errorf("preflight answer has body %q; the backend must not see it", body)
	}

	resp, body = do("OPTIONS", "/forward/x", preflight("https://app.example.org"))
	want("a prefix-matched origin is allowed too", resp, body, 200, "", map[string]string{"Access-Control-Allow-Origin": "https://app.example.org"})

	resp, body = do("OPTIONS", "/forward/x", preflight("https://evil.example"))
	want("preflight from another origin is forwarded (unmatchedPreflights FORWARD)", resp, body, 200, "backend saw OPTIONS",
		map[string]string{"Access-Control-Allow-Origin": "https://from-the-backend", "Access-Control-Max-Age": ""})

	resp, body = do("OPTIONS", "/ignore/x", preflight("https://evil.example"))
	want("preflight from another origin is answered without an allowed origin (IGNORE)", resp, body, 200, "",
		map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": "GET,POST"})
	if body != "" {
		t.Errorf("IGNORE preflight reached the backend: %q", body)
	}

	resp, body = do("GET", "/forward/x", map[string]string{"Origin": "https://shop.example"})
	want("a request from an allowed origin gets the CORS response headers", resp, body, 200, "backend saw GET", map[string]string{
		"Access-Control-Allow-Origin": "https://shop.example", "Access-Control-Allow-Credentials": "true",
		"Access-Control-Expose-Headers": "x-exposed"})

	resp, body = do("GET", "/forward/x", map[string]string{"Origin": "https://evil.example"})
	want("a request from another origin is left alone", resp, body, 200, "backend saw GET", map[string]string{
		"Access-Control-Allow-Origin": "https://from-the-backend", "Access-Control-Expose-Headers": ""})

	resp, body = do("OPTIONS", "/plain", preflight("https://shop.example"))
	want("a route without a CORS policy forwards preflights", resp, body, 200, "backend saw OPTIONS", map[string]string{
		"Access-Control-Allow-Origin": "https://from-the-backend"})
}

// TestCompileCORSRejectsWhatItCannotDo: a field meshlab's filter does not execute is a NACK, not ignored.
func TestCompileCORSRejectsWhatItCannotDo(t *testing.T) {
	_, err := compileCORS(&corsv3.CorsPolicy{AllowPrivateNetworkAccess: wrapperspb.Bool(true)})
	if err == nil || !strings.Contains(err.Error(), "allow_private_network_access") {
		t.Errorf("compileCORS(allow_private_network_access) = %v, want an error naming the field", err)
	}
}
