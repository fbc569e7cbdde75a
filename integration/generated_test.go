package integration

import (
	"os"
	"testing"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/dataplane/l7"
)

// TestExecutesGeneratedConfig checks that everything the control plane's generators emit for the
// bookinfo fixtures (VirtualService and HTTPRoute splits, DestinationRule subsets, ALLOW and DENY
// AuthorizationPolicies, and a sidecar) passes validation: the engine and the generator agree on the
// subset of Envoy config.
func TestExecutesGeneratedConfig(t *testing.T) {
	waypoint := model.Proxy{Kind: model.KindWaypoint, Namespace: "default", Name: "reviews-waypoint"}
	sidecar := model.Proxy{Kind: model.KindSidecar, Namespace: "default", Name: "productpage-v1-6b746f74dc-9stvs"}
	base, err := os.ReadFile(modeltest.Path(modeltest.Bookinfo))
	if err != nil {
		t.Fatal(err)
	}
	authz := modeltest.FromYAML(t, string(base), `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-get-only, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/bookinfo-productpage], namespaces: [default]}}]
    to: [{operation: {methods: [GET], paths: ["/reviews/*"], ports: ["9080"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: reviews-waypoint}]
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]`)
	for _, tc := range []struct {
		name  string
		snap  *model.Snapshot
		proxy model.Proxy
	}{
		{"waypoint with VirtualService", modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsVS), waypoint},
		{"waypoint with HTTPRoute", modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsHTTPRoute), waypoint},
		{"waypoint with AuthorizationPolicies", authz, waypoint},
		{"sidecar", modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsVS), sidecar},
		{"sidecar with VirtualService redirect, rewrite and headers", modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsVSFilters), sidecar},
		{"sidecar with HTTPRoute filters", modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsHTTPRouteFilters), sidecar},
		{"waypoint with RequestAuthentication and JWT policies", modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsJWT), waypoint},
		{"sidecar with RequestAuthentication and JWT policies", modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsJWT), sidecar},
	} {
		cfg, err := configgen.Envoy(tc.snap, tc.proxy)
		if err != nil {
			t.Fatalf("%s: configgen.Envoy() = %v", tc.name, err)
		}
		tbl, err := l7.Build(l7.Config{Listeners: cfg.Listeners, Routes: cfg.Routes, Clusters: cfg.Clusters, Endpoints: cfg.Endpoints})
		if err != nil {
			t.Errorf("%s: Build(generated config) = %v", tc.name, err)
			continue
		}
		if tc.proxy.Kind == model.KindWaypoint && tbl.Listeners["main_internal"] == nil {
			t.Errorf("%s: no main_internal listener", tc.name)
		}
	}
}
