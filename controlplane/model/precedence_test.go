package model_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

// matchString prints a one-match rule as "PATHTYPE:VALUE hdr=N q=N -> backend".
func matchString(r *model.RouteRule) string {
	m := r.Matches[0]
	var b strings.Builder
	if m.Path != nil {
		fmt.Fprintf(&b, "%s:%s", m.Path.Type, m.Path.Value)
	}
	for _, h := range m.Headers {
		fmt.Fprintf(&b, " %s=%s", h.Name, h.Match.Value)
	}
	for _, q := range m.QueryParams {
		fmt.Fprintf(&b, " ?%s=%s(%s)", q.Name, q.Match.Value, q.Match.Type)
	}
	if len(r.Destinations) > 0 {
		fmt.Fprintf(&b, " -> %s", strings.SplitN(r.Destinations[0].Service.FQDN, ".", 2)[0])
	}
	return b.String()
}

const echoServices = `
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: mesh}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo-v1, namespace: mesh}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo-v2, namespace: mesh}
spec: {ports: [{name: http, port: 8080}]}
`

// TestHTTPRoutePrecedence: the Gateway API conformance suite's MeshHTTPRouteMatching route. The rule
// for "/" comes first in the HTTPRoute, yet "/v2" and the header matches must win over it, so every match
// becomes its own route, sorted as istiod sorts them.
func TestHTTPRoutePrecedence(t *testing.T) {
	snap := modeltest.FromYAML(t, echoServices, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh-matching, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /}
    - headers: [{name: version, value: one}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches:
    - path: {type: PathPrefix, value: /v2}
    - headers: [{name: version, value: two}]
    backendRefs: [{name: echo-v2, port: 8080}]
  - matches:
    - path: {type: Exact, value: /exact}
    backendRefs: [{name: echo-v2, port: 8080}]
`)
	if len(snap.Problems) != 0 {
		t.Fatalf("Problems = %v", snap.Problems)
	}
	var got []string
	for _, r := range snap.RoutesFor(snap.Service("echo.mesh.svc.cluster.local"), 80) {
		got = append(got, matchString(r))
	}
	want := []string{
		"exact:/exact -> echo-v2",
		"path_prefix:/v2 -> echo-v2",
		"prefix:/ version=one -> echo-v1",
		"prefix:/ version=two -> echo-v2",
		"prefix:/ -> echo-v1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestQueryParamMatches: HTTPRoute queryParams (exact and regular expression) and VirtualService
// queryParams reach the model, and more query matches sort first among otherwise equal matches.
func TestQueryParamMatches(t *testing.T) {
	snap := modeltest.FromYAML(t, echoServices, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh-query-param, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches:
    - queryParams: [{name: animal, value: whale}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches:
    - queryParams: [{name: animal, value: dolphin}, {type: RegularExpression, name: color, value: "bl.*"}]
    backendRefs: [{name: echo-v2, port: 8080}]
`, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-v1, namespace: mesh}
spec:
  hosts: [echo-v1]
  http:
  - match: [{queryParams: {animal: {exact: whale}, debug: {}}}]
    route: [{destination: {host: echo-v2}}]
`)
	if len(snap.Problems) != 0 {
		t.Fatalf("Problems = %v", snap.Problems)
	}
	var got []string
	for _, r := range snap.RoutesFor(snap.Service("echo.mesh.svc.cluster.local"), 80) {
		got = append(got, matchString(r))
	}
	want := []string{
		"prefix:/ ?animal=dolphin(exact) ?color=bl.*(regex) -> echo-v2",
		"prefix:/ ?animal=whale(exact) -> echo-v1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("HTTPRoute routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	vs := snap.RoutesFor(snap.Service("echo-v1.mesh.svc.cluster.local"), 8080)
	if len(vs) != 1 || fmt.Sprint(vs[0].Matches[0].QueryParams) != "[{animal {exact whale}} {debug {present }}]" {
		t.Errorf("VirtualService routes = %v", vs)
	}
}
