package model_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

func TestIngressGatewayRoutes(t *testing.T) {
	snap := modeltest.Load(t, modeltest.Bookinfo, modeltest.BookinfoGateway)
	g := snap.IngressGateway("default", "bookinfo-gateway")
	if g == nil {
		t.Fatalf("no ingress gateway; problems: %v", snap.Problems)
	}
	if len(g.Ports) != 1 || g.Ports[0].Port != 80 {
		t.Fatalf("ports = %+v, want one port 80", g.Ports)
	}
	hosts := map[string]*model.GatewayVirtualHost{}
	for _, vh := range g.Ports[0].VirtualHosts {
		hosts[vh.Hostname] = vh
	}
	star, details := hosts["*"], hosts["details.example.com"]
	if star == nil || details == nil || len(hosts) != 2 {
		t.Fatalf("virtual hosts = %v, want * and details.example.com", hosts)
	}
	// One rule per match of the sample, exact paths first (longest first), then prefixes.
	var paths []string
	for _, r := range star.Rules {
		paths = append(paths, string(r.Matches[0].Path.Type)+":"+r.Matches[0].Path.Value)
		if len(r.Destinations) != 1 || r.Destinations[0].Service.Name != "productpage" || r.Destinations[0].Port != 9080 {
			t.Errorf("rule %s destinations = %+v, want productpage:9080", r.Name, r.Destinations)
		}
	}
	want := "exact:/productpage exact:/logout exact:/login path_prefix:/api/v1/products path_prefix:/static"
	if got := strings.Join(paths, " "); got != want {
		t.Errorf("paths = %s, want %s", got, want)
	}
	if len(details.Rules) != 1 || details.Rules[0].Headers == nil || details.Rules[0].Destinations[0].Service.Name != "details" {
		t.Errorf("details.example.com rules = %+v", details.Rules)
	}
	var backends []string
	for _, s := range g.Backends() {
		backends = append(backends, s.Name)
	}
	if got := strings.Join(backends, ","); got != "details,productpage" {
		t.Errorf("backends = %s, want details,productpage", got)
	}
	p, err := snap.Resolve(model.Proxy{Kind: model.KindGateway, Namespace: "default", Name: "bookinfo-gateway"})
	if err != nil || p.Pod != "bookinfo-gateway-istio-5d9c7b8f6d-x2k4p" || p.ServiceAccount != "bookinfo-gateway-istio" {
		t.Errorf("Resolve = %+v, %v", p, err)
	}
	for _, pr := range snap.Problems {
		t.Errorf("unexpected problem %s", pr)
	}
}

func ptr[T any](v T) *T { return &v }

func TestListenerAttaches(t *testing.T) {
	gw := &gwv1.Gateway{}
	gw.Namespace = "gw"
	route := func(ns string, hosts ...gwv1.Hostname) *gwv1.HTTPRoute {
		r := &gwv1.HTTPRoute{}
		r.Namespace = ns
		r.Spec.Hostnames = hosts
		return r
	}
	all := &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr(gwv1.NamespacesFromAll)}}
	for _, tc := range []struct {
		name     string
		listener gwv1.Listener
		route    *gwv1.HTTPRoute
		ref      gwv1.ParentReference
		want     string // joined hostnames; "-" for not attached
	}{
		{"no hostnames anywhere", gwv1.Listener{Name: "http", Port: 80}, route("gw"), gwv1.ParentReference{}, "*"},
		{"listener hostname", gwv1.Listener{Name: "http", Port: 80, Hostname: ptr(gwv1.Hostname("a.example"))}, route("gw"), gwv1.ParentReference{}, "a.example"},
		{"route hostnames", gwv1.Listener{Name: "http", Port: 80}, route("gw", "b.example", "a.example"), gwv1.ParentReference{}, "a.example,b.example"},
		{"wildcard listener narrows", gwv1.Listener{Name: "http", Port: 80, Hostname: ptr(gwv1.Hostname("*.example"))}, route("gw", "a.example", "a.other"), gwv1.ParentReference{}, "a.example"},
		{"wildcard route takes the listener's", gwv1.Listener{Name: "http", Port: 80, Hostname: ptr(gwv1.Hostname("a.example"))}, route("gw", "*.example"), gwv1.ParentReference{}, "a.example"},
		{"no hostname overlap", gwv1.Listener{Name: "http", Port: 80, Hostname: ptr(gwv1.Hostname("a.example"))}, route("gw", "b.example"), gwv1.ParentReference{}, "-"},
		{"other namespace, Same by default", gwv1.Listener{Name: "http", Port: 80}, route("apps"), gwv1.ParentReference{}, "-"},
		{"other namespace, All", gwv1.Listener{Name: "http", Port: 80, AllowedRoutes: all}, route("apps"), gwv1.ParentReference{}, "*"},
		{"sectionName of another listener", gwv1.Listener{Name: "http", Port: 80}, route("gw"), gwv1.ParentReference{SectionName: ptr(gwv1.SectionName("other"))}, "-"},
		{"port of another listener", gwv1.Listener{Name: "http", Port: 80}, route("gw"), gwv1.ParentReference{Port: ptr(gwv1.PortNumber(8080))}, "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hosts, ok := model.ListenerAttaches(gw, tc.listener, tc.route.Namespace, tc.route.Spec.Hostnames, tc.ref)
			got := strings.Join(hosts, ",")
			if !ok {
				got = "-"
			}
			if got != tc.want {
				t.Errorf("ListenerAttaches = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestGatewayParentProblems(t *testing.T) {
	// A parentRef to a Gateway that is not an ingress gateway is reported on the route, never ignored.
	extra := filepath.Join(t.TempDir(), "route.yaml")
	doc := `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: lost, namespace: default}
spec:
  parentRefs: [{name: no-such-gateway}]
  rules: [{backendRefs: [{name: productpage, port: 9080}]}]
`
	if err := os.WriteFile(extra, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	store, _, err := ingest.LoadFiles(modeltest.Path(modeltest.Bookinfo), modeltest.Path(modeltest.BookinfoGateway), extra)
	if err != nil {
		t.Fatal(err)
	}
	snap := model.Build(store.Objects())
	var got []string
	for _, p := range snap.Problems {
		got = append(got, p.String())
	}
	want := "HTTPRoute/default/lost: parentRef Gateway default/no-such-gateway is neither a Service nor a Gateway of class istio"
	if len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("problems = %q, want one starting %q", got, want)
	}
}

func TestIngressUseWaypointReported(t *testing.T) {
	// reviews uses reviews-waypoint in the fixture; asking the gateway to go through it is reported.
	extra := filepath.Join(t.TempDir(), "route.yaml")
	doc := `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews-in, namespace: default}
spec:
  parentRefs: [{name: bookinfo-gateway}]
  hostnames: [reviews.example.com]
  rules: [{backendRefs: [{name: reviews, port: 9080}]}]
`
	if err := os.WriteFile(extra, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	store, _, err := ingest.LoadFiles(modeltest.Path(modeltest.Bookinfo), modeltest.Path(modeltest.BookinfoGateway), extra)
	if err != nil {
		t.Fatal(err)
	}
	// The fixture's Service has no such label: set it on the stored object before building.
	for _, svc := range store.Objects().Services {
		if svc.Name == "reviews" {
			svc.Labels["istio.io/ingress-use-waypoint"] = "true"
		}
	}
	snap := model.Build(store.Objects())
	var got []string
	for _, p := range snap.Problems {
		got = append(got, p.String())
	}
	want := "Service/default/reviews: label istio.io/ingress-use-waypoint=true: meshlab does not implement it"
	if len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("problems = %q, want one starting %q", got, want)
	}
}
