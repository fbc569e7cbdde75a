package configgen_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/internal/golden"

	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/controlplane/render"
)

var (
	reviewsWaypoint = model.Proxy{Kind: model.KindWaypoint, Namespace: "default", Name: "reviews-waypoint"}
	productpage     = model.Proxy{Kind: model.KindSidecar, Namespace: "default", Name: "productpage-v1-6b746f74dc-9stvs"}
	bookinfoGateway = model.Proxy{Kind: model.KindGateway, Namespace: "default", Name: "bookinfo-gateway"}
	tcpGateway      = model.Proxy{Kind: model.KindGateway, Namespace: "default", Name: "tcp-gateway"}
)

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		files  []string
		proxy  model.Proxy
	}{
		{"waypoint-vs.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsVS}, reviewsWaypoint},
		{"waypoint-httproute.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsHTTPRoute}, reviewsWaypoint},
		{"sidecar-productpage.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsVS}, productpage},
		{"waypoint-vs-filters.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsVSFilters}, reviewsWaypoint},
		{"waypoint-httproute-filters.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsHTTPRouteFilters}, reviewsWaypoint},
		{"waypoint-grpcroute.golden.json", []string{modeltest.Bookinfo, modeltest.GreeterGRPCRoute}, reviewsWaypoint},
		{"waypoint-tcproute.golden.json", []string{modeltest.Bookinfo, modeltest.EchoTCPRoute}, reviewsWaypoint},
		{"sidecar-productpage-tcproute.golden.json", []string{modeltest.Bookinfo, modeltest.EchoTCPRoute}, productpage},
		{"gateway-tcproute.golden.json", []string{modeltest.Bookinfo, modeltest.EchoTCPRoute, modeltest.EchoTCPGateway}, tcpGateway},
		{"waypoint-vs-mirror.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsVSMirror}, reviewsWaypoint},
		{"waypoint-vs-cors.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsVSCORS}, reviewsWaypoint},
		{"sidecar-productpage-cors.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsVSCORS}, productpage},
		{"waypoint-httproute-mirror.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsHTTPRouteMirror}, reviewsWaypoint},
		{"sidecar-productpage-mirror.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsVSMirror}, productpage},
		{"waypoint-dr-policy.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsDRPolicy}, reviewsWaypoint},
		{"sidecar-productpage-dr-policy.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsDRPolicy}, productpage},
		{"waypoint-jwt.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsJWT}, reviewsWaypoint},
		{"sidecar-productpage-jwt.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsJWT}, productpage},
		{"gateway-bookinfo.golden.json", []string{modeltest.Bookinfo, modeltest.BookinfoGateway}, bookinfoGateway},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			snap := modeltest.Load(t, tc.files...)
			cfg, err := configgen.Envoy(snap, tc.proxy)
			if err != nil {
				t.Fatalf("Envoy() = %v", err)
			}
			got, err := render.MarshalProto(render.ConfigDump(cfg, "golden"), render.FormatJSON)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", tc.golden), got)

			// Pure and deterministic: a second run over a freshly built snapshot is identical.
			again, err := configgen.Envoy(modeltest.Load(t, tc.files...), tc.proxy)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(render.ConfigDump(cfg, "x"), render.ConfigDump(again, "x")) {
				t.Error("two runs over the same input differ")
			}
		})
	}
	for _, tc := range []struct {
		golden string
		files  []string
	}{
		{"ztunnel-meshlab-worker.golden.json", []string{modeltest.Bookinfo, modeltest.ReviewsVS}},
		// PeerAuthentication as Istio converts it for ztunnel: the static STRICT DENY policy for the
		// namespace's workloads, and reviews' converted policy exempting 9080.
		{"ztunnel-peer-authentication.golden.json", []string{modeltest.Bookinfo, modeltest.PeerAuthentication}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			w, s, p := configgen.ZtunnelConfig(modeltest.Load(t, tc.files...), "meshlab-worker")
			got, err := json.MarshalIndent(map[string]any{"workloads": w, "services": s, "policies": p}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", tc.golden), append(got, '\n'))
		})
	}
}

func TestWaypointScopedToWhatItServes(t *testing.T) {
	snap := modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsVS)
	cfg, err := configgen.Envoy(snap, reviewsWaypoint)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cfg.Clusters {
		names = append(names, c.Name)
	}
	for _, r := range cfg.Routes {
		names = append(names, r.Name)
	}
	for _, e := range cfg.Endpoints {
		names = append(names, e.ClusterName)
	}
	for _, n := range names {
		for _, bad := range []string{"productpage", "details", "ratings", "outbound|"} {
			if strings.Contains(n, bad) {
				t.Errorf("waypoint config has %q (contains %q)", n, bad)
			}
		}
	}
	if len(cfg.Endpoints) != 4 { // the service cluster and subsets v1, v2, v3
		t.Errorf("endpoints for %d clusters, want 4", len(cfg.Endpoints))
	}
}

func TestSidecarIsNotScoped(t *testing.T) {
	snap := modeltest.Load(t, modeltest.Bookinfo)
	cfg, err := configgen.Envoy(snap, productpage)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, s := range []string{"productpage", "details", "ratings", "reviews"} {
		want["outbound|9080||"+s+".default.svc.cluster.local"] = true
	}
	for _, c := range cfg.Clusters {
		delete(want, c.Name)
	}
	if len(want) > 0 {
		t.Errorf("sidecar misses clusters %v", want)
	}
}

func hcmOf(t *testing.T, cfg *configgen.Config, listener, chain string) *hcmv3.HttpConnectionManager {
	t.Helper()
	for _, l := range cfg.Listeners {
		if l.Name != listener {
			continue
		}
		for _, fc := range l.FilterChains {
			if fc.Name == chain {
				m := &hcmv3.HttpConnectionManager{}
				if err := fc.Filters[0].GetTypedConfig().UnmarshalTo(m); err != nil {
					t.Fatal(err)
				}
				return m
			}
		}
	}
	t.Fatalf("no chain %s in listener %s", chain, listener)
	return nil
}

func TestWaypointAuthorizationPolicy(t *testing.T) {
	base, err := os.ReadFile(modeltest.Path(modeltest.Bookinfo))
	if err != nil {
		t.Fatal(err)
	}
	snap := modeltest.FromYAML(t, string(base), `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-get-only, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/bookinfo-productpage]}}]
    to: [{operation: {methods: [GET], paths: ["/reviews/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: reviews-waypoint}]
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]`)
	if len(snap.Problems) > 0 {
		t.Fatalf("Problems = %v", snap.Problems)
	}
	cfg, err := configgen.Envoy(snap, reviewsWaypoint)
	if err != nil {
		t.Fatal(err)
	}
	m := hcmOf(t, cfg, configgen.ListenerMainInternal, "inbound-vip|9080|http|reviews.default.svc.cluster.local")
	var actions []string
	for _, f := range m.HttpFilters {
		if f.Name != "envoy.filters.http.rbac" {
			continue
		}
		r := &rbacv3.RBAC{}
		if err := f.GetTypedConfig().UnmarshalTo(r); err != nil {
			t.Fatal(err)
		}
		actions = append(actions, r.Rules.Action.String())
		for name := range r.Rules.Policies {
			actions = append(actions, name)
		}
		if r.Rules.Action == rbacconfigv3.RBAC_ALLOW {
			pol := r.Rules.Policies["ns[default]-policy[reviews-get-only]-rule[0]"]
			principal := pol.GetPrincipals()[0].GetAuthenticated().GetPrincipalName().GetExact()
			if principal != "spiffe://cluster.local/ns/default/sa/bookinfo-productpage" {
				t.Errorf("principal = %q", principal)
			}
			and := pol.GetPermissions()[0].GetAndRules().GetRules()
			if len(and) != 2 || and[0].GetHeader().GetStringMatch().GetExact() != "GET" || and[1].GetUrlPath().GetPath().GetPrefix() != "/reviews/" {
				t.Errorf("permissions = %v", pol.GetPermissions())
			}
		}
	}
	want := "DENY ns[default]-policy[deny-admin]-rule[0] ALLOW ns[default]-policy[reviews-get-only]-rule[0]"
	if got := strings.Join(actions, " "); got != want {
		t.Errorf("RBAC filters = %q, want %q", got, want)
	}
}

func TestFaultAndTimeoutFromVirtualService(t *testing.T) {
	base, err := os.ReadFile(modeltest.Path(modeltest.Bookinfo))
	if err != nil {
		t.Fatal(err)
	}
	snap := modeltest.FromYAML(t, string(base), `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}, uri: {prefix: /reviews}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
    timeout: 2s
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]`)
	cfg, err := configgen.Envoy(snap, reviewsWaypoint)
	if err != nil {
		t.Fatal(err)
	}
	var rc *routev3.RouteConfiguration
	for _, r := range cfg.Routes {
		rc = r
	}
	routes := rc.VirtualHosts[0].Routes
	if len(routes) != 2 {
		t.Fatalf("routes = %d, want 2", len(routes))
	}
	first := routes[0]
	if first.Match.GetPrefix() != "/reviews" || first.Match.Headers[0].Name != "end-user" || first.Match.Headers[0].GetStringMatch().GetExact() != "jason" {
		t.Errorf("match = %v", first.Match)
	}
	if got := first.GetRoute().GetTimeout().AsDuration().String(); got != "2s" {
		t.Errorf("timeout = %s, want 2s", got)
	}
	fault := &httpfaultv3.HTTPFault{}
	if err := first.TypedPerFilterConfig["envoy.filters.http.fault"].UnmarshalTo(fault); err != nil {
		t.Fatal(err)
	}
	if fault.Abort.GetHttpStatus() != 503 || fault.Abort.Percentage.Numerator != 500000 {
		t.Errorf("fault = %v", fault)
	}
	if got := routes[1].GetRoute().GetCluster(); got != "inbound-vip|9080|http|reviews.default.svc.cluster.local" {
		t.Errorf("second route cluster = %q", got)
	}
	if rp := routes[1].GetRoute().GetRetryPolicy(); rp.GetNumRetries().GetValue() != 2 || rp.HostSelectionRetryMaxAttempts != 5 {
		t.Errorf("retry policy = %v", rp)
	}
}

func TestResourcesAndErrors(t *testing.T) {
	snap := modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsVS)
	res, err := configgen.Resources(snap, reviewsWaypoint, xdstype.Route)
	if err != nil || len(res) != 1 {
		t.Errorf("Resources(routes) = %d, %v", len(res), err)
	}
	if _, err := configgen.Resources(snap, reviewsWaypoint, "type.googleapis.com/nope"); err == nil {
		t.Error("Resources(unknown type) succeeded")
	}
	_, err = configgen.Envoy(snap, model.Proxy{Kind: model.KindWaypoint, Namespace: "default", Name: "missing"})
	var nf *model.NotFoundError
	if err == nil || !asNotFound(err, &nf) {
		t.Errorf("Envoy(missing waypoint) = %v, want NotFoundError", err)
	}
	if _, err := configgen.Envoy(snap, model.Proxy{Kind: model.KindZtunnel, Name: "n"}); err == nil {
		t.Error("Envoy(ztunnel) succeeded")
	}
}

func asNotFound(err error, target **model.NotFoundError) bool {
	nf, ok := err.(*model.NotFoundError)
	*target = nf
	return ok
}
