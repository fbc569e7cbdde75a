package model_test

import (
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

// TestGRPCRoute: a GRPCRoute's method matches become the paths Istio gives them (exact /SERVICE/METHOD, a
// literal prefix /SERVICE/, a regex for a method in any service, expressions in place for
// RegularExpression), sorted by Gateway API precedence, each route naming the GRPCRoute and rule it came from.
func TestGRPCRoute(t *testing.T) {
	snap := modeltest.Load(t, modeltest.Bookinfo, modeltest.GreeterGRPCRoute)
	if len(snap.Problems) != 0 {
		t.Fatalf("Problems = %v", snap.Problems)
	}
	greeter := snap.Service("greeter.default.svc.cluster.local")
	if greeter == nil {
		t.Fatal("no greeter service")
	}
	if p, _ := greeter.Port(9090); p.Protocol != model.ProtocolGRPC {
		t.Errorf("greeter:9090 protocol %s, want GRPC (port name grpc)", p.Protocol)
	}
	var got []string
	for _, r := range snap.RoutesFor(greeter, 9090) {
		if r.Source != (ingest.Key{Kind: ingest.KindGRPCRoute, Namespace: "default", Name: "greeter"}) {
			t.Errorf("rule %s source %v, want GRPCRoute default/greeter", r.Name, r.Source)
		}
		got = append(got, r.Name+" "+matchString(r))
	}
	want := []string{
		"canary-check exact:/grpc.health.v1.Health/Check x-canary=true -> greeter-v2",
		`watch regex:/grpc\.health\.v1\.Health/W.* -> greeter-v2`,
		"list-anywhere regex:/[^/]+/List -> greeter-v2",
		"health prefix:/grpc.health.v1.Health/ -> greeter-v1",
		"split prefix:/ -> greeter-v1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestGRPCRouteAndHTTPRouteMerge: an HTTPRoute and a GRPCRoute on one Service are one route list, as
// several HTTPRoutes are; a VirtualService on the same host still wins over both, and the route loses loudly.
func TestGRPCRouteAndHTTPRouteMerge(t *testing.T) {
	routes := `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: mesh, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules: [{matches: [{path: {type: PathPrefix, value: /web}}], backendRefs: [{name: echo-v1, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc, namespace: mesh, creationTimestamp: "2026-01-02T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules: [{matches: [{method: {service: echo.Echo, method: Say}}], backendRefs: [{name: echo-v2, port: 8080}]}]
`
	snap := modeltest.FromYAML(t, echoServices, routes)
	if len(snap.Problems) != 0 {
		t.Fatalf("Problems = %v", snap.Problems)
	}
	var got []string
	for _, r := range snap.RoutesFor(snap.Service("echo.mesh.svc.cluster.local"), 80) {
		got = append(got, string(r.Source.Kind)+" "+matchString(r))
	}
	if want := "GRPCRoute exact:/echo.Echo/Say -> echo-v2,HTTPRoute path_prefix:/web -> echo-v1"; strings.Join(got, ",") != want {
		t.Errorf("routes %q, want %q", strings.Join(got, ","), want)
	}

	snap = modeltest.FromYAML(t, echoServices, routes, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: mesh, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  hosts: [echo]
  http: [{route: [{destination: {host: echo-v1}}]}]`)
	var problems []string
	for _, p := range snap.Problems {
		problems = append(problems, p.Object.String()+": "+p.Message)
	}
	if len(problems) != 2 || !strings.Contains(strings.Join(problems, "\n"), "GRPCRoute/mesh/rpc: ignored for host echo.mesh.svc.cluster.local: VirtualService mesh/echo already routes it") {
		t.Errorf("Problems = %q, want the HTTPRoute and the GRPCRoute ignored for the VirtualService", problems)
	}
}
