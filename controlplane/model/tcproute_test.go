package model_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

// tcpBackends prints a TCPRoute's backends as NAME:PORT=WEIGHT (the host's first label; "?" for a backend
// that is not a Service).
func tcpBackends(tr *model.TCPRoute, routed uint32) string {
	var out []string
	for _, be := range tr.Backends {
		name := "?"
		if be.Host != "" {
			name = strings.SplitN(be.Host, ".", 2)[0]
		}
		if be.Service == nil {
			name = "missing:" + name
		}
		out = append(out, fmt.Sprintf("%s:%d=%d", name, be.PortFor(routed), be.Weight))
	}
	return strings.Join(out, ",")
}

// TestTCPRoute: a TCPRoute with a Service parent routes that Service's TCP port by weight (weight 0 left
// out), not its HTTP port; the waypoint serving the Service gets the routed backends as clusters.
func TestTCPRoute(t *testing.T) {
	snap := modeltest.Load(t, modeltest.Bookinfo, modeltest.EchoTCPRoute)
	if len(snap.Problems) != 0 {
		t.Fatalf("Problems = %v", snap.Problems)
	}
	echo := snap.Service("tcp-echo.default.svc.cluster.local")
	tr := snap.TCPRouteFor(echo, 9000)
	if tr == nil {
		t.Fatal("no TCPRoute for tcp-echo:9000")
	}
	if want := (ingest.Key{Kind: ingest.KindTCPRoute, Namespace: "default", Name: "tcp-echo"}); tr.Source != want {
		t.Errorf("source %v, want %v", tr.Source, want)
	}
	if got, want := tcpBackends(tr, 9000), "tcp-echo-v1:9000=80,tcp-echo-v2:9000=20"; got != want {
		t.Errorf("backends %s, want %s", got, want)
	}
	if snap.TCPRouteFor(echo, 8080) != nil {
		t.Error("the TCPRoute (parentRef port 9000) routes the HTTP port 8080 too")
	}
	var backends []string
	for _, svc := range snap.Scope(echo.Waypoint).Backends {
		backends = append(backends, svc.Name)
	}
	if got := strings.Join(backends, ","); !strings.Contains(got, "tcp-echo-v1,tcp-echo-v2") || strings.Contains(got, "tcp-echo-v3") {
		t.Errorf("waypoint backends %s: want tcp-echo-v1 and tcp-echo-v2, not the weight-0 tcp-echo-v3", got)
	}
}

const tcpServices = `
apiVersion: v1
kind: Service
metadata: {name: db, namespace: mesh}
spec: {ports: [{name: http, port: 80}, {name: tcp, port: 5432}, {name: tcp-admin, port: 5433}]}
---
apiVersion: v1
kind: Service
metadata: {name: db-v1, namespace: mesh}
spec: {ports: [{name: tcp, port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: db-v2, namespace: mesh}
spec: {ports: [{name: tcp, port: 5432}, {name: tcp-admin, port: 5433}]}
`

// TestTCPRouteBinding: which ports a TCPRoute routes and what it reports: without a port every TCP port (not
// the HTTP one); the older of two TCPRoutes keeps a port; an HTTP port is not routed and says so; a missing
// backend keeps its share (closed); all weights 0 leave no backend (connections refused), with no problem.
func TestTCPRouteBinding(t *testing.T) {
	snap := modeltest.FromYAML(t, tcpServices, `
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: all-tcp, namespace: mesh, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: db}]
  rules: [{backendRefs: [{name: db-v1, port: 5432, weight: 3}, {name: gone, port: 5432, weight: 1}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: admin, namespace: mesh, creationTimestamp: "2026-01-02T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: db, port: 5433}, {group: "", kind: Service, name: db, port: 80}]
  rules: [{backendRefs: [{name: db-v2, port: 5433}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: closed, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: db-v2, port: 5432}]
  rules: [{backendRefs: [{name: db-v1, port: 5432, weight: 0}]}]
`)
	db := snap.Service("db.mesh.svc.cluster.local")
	for _, tc := range []struct {
		svc           *model.Service
		port          uint32
		source, wants string
	}{
		{db, 5432, "all-tcp", "db-v1:5432=3,missing:gone:5432=1"},
		{db, 5433, "all-tcp", "db-v1:5432=3,missing:gone:5432=1"},
		{snap.Service("db-v2.mesh.svc.cluster.local"), 5432, "closed", ""},
	} {
		tr := snap.TCPRouteFor(tc.svc, tc.port)
		if tr == nil {
			t.Errorf("%s:%d: no TCPRoute", tc.svc.Name, tc.port)
			continue
		}
		if tr.Source.Name != tc.source || tcpBackends(tr, tc.port) != tc.wants {
			t.Errorf("%s:%d: %s %q, want %s %q", tc.svc.Name, tc.port, tr.Source.Name, tcpBackends(tr, tc.port), tc.source, tc.wants)
		}
	}
	if snap.TCPRouteFor(db, 80) != nil {
		t.Error("db:80 (HTTP) is routed by a TCPRoute")
	}
	var problems []string
	for _, p := range snap.Problems {
		problems = append(problems, p.String())
	}
	want := []string{
		"TCPRoute/mesh/admin: parentRef Service mesh/db port 5433 is already routed by TCPRoute mesh/all-tcp; ignored for it",
		"TCPRoute/mesh/admin: parentRef Service mesh/db port 80 is HTTP: a TCPRoute has no effect on it (Istio routes an HTTP port by HTTP routes only); use an HTTPRoute",
		"TCPRoute/mesh/all-tcp: rules[0].backendRefs[1]: Service mesh/gone does not exist; its share of connections (weight 1) is closed",
	}
	for _, w := range want {
		if !contains(problems, w) {
			t.Errorf("no problem %q in\n%s", w, strings.Join(problems, "\n"))
		}
	}
	if len(problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(problems), len(want), strings.Join(problems, "\n"))
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestTCPRouteIngress: a TCPRoute attached to an ingress Gateway's TCP listener routes that port of the
// gateway; one naming the HTTP listener attaches nowhere and says so.
func TestTCPRouteIngress(t *testing.T) {
	snap := modeltest.Load(t, modeltest.Bookinfo, modeltest.EchoTCPRoute, modeltest.EchoTCPGateway)
	if len(snap.Problems) != 0 {
		t.Fatalf("Problems = %v", snap.Problems)
	}
	g := snap.IngressGateway("default", "tcp-gateway")
	if g == nil {
		t.Fatal("no ingress gateway tcp-gateway")
	}
	tcp, http := g.Port(9000), g.Port(80)
	if tcp == nil || !tcp.TCP || tcp.TCPRoute == nil || http == nil || http.TCP || http.TCPRoute != nil {
		t.Fatalf("ports 9000 %+v and 80 %+v: want 9000 TCP with the TCPRoute, 80 HTTP", tcp, http)
	}
	if got, want := tcpBackends(tcp.TCPRoute, 9000), "tcp-echo-v1:9000=50,tcp-echo-v2:9000=50"; got != want || tcp.TCPRoute.Source.Name != "tcp-echo-ingress" {
		t.Errorf("TCPRoute %s: backends %s, want tcp-echo-ingress: %s", tcp.TCPRoute.Source.Name, got, want)
	}
	if src := g.Sources(); len(src) != 1 || src[0].Kind != ingest.KindTCPRoute {
		t.Errorf("gateway sources %v, want the TCPRoute", src)
	}

	snap = modeltest.FromYAML(t, tcpServices, `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: mesh}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}, {name: tcp, port: 5432, protocol: TCP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: wrong-listener, namespace: mesh}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules: [{backendRefs: [{name: db-v1, port: 5432}]}]
`)
	if g := snap.IngressGateway("mesh", "gw"); g.Port(5432).TCPRoute != nil {
		t.Error("the TCP listener got a route attached to the HTTP listener")
	}
	want := "TCPRoute/mesh/wrong-listener: parentRef Gateway mesh/gw: no TCP listener accepts the route (check sectionName, port and allowedRoutes)"
	if len(snap.Problems) != 1 || snap.Problems[0].String() != want {
		t.Errorf("Problems = %v, want %q", snap.Problems, want)
	}
}
