package model_test

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

func names[T any](items []T, name func(T) string) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, name(it))
	}
	return out
}

func svcNames(s []*model.Service) []string {
	return names(s, func(s *model.Service) string { return s.Name })
}

func TestBookinfoServices(t *testing.T) {
	snap := modeltest.Load(t, modeltest.Bookinfo)
	if len(snap.Problems) != 0 {
		t.Fatalf("Problems = %v", snap.Problems)
	}
	reviews := snap.Service("reviews.default.svc.cluster.local")
	if reviews == nil {
		t.Fatal("no reviews service")
	}
	if got, want := reviews.VIPs, []string{"10.96.10.13"}; !reflect.DeepEqual(got, want) {
		t.Errorf("VIPs = %v, want %v", got, want)
	}
	if p, ok := reviews.Port(9080); !ok || p.Protocol != model.ProtocolHTTP || p.TargetPort != 9080 {
		t.Errorf("Port(9080) = %+v, %v", p, ok)
	}
	gotIPs := names(reviews.Endpoints, func(e model.Endpoint) string { return e.IP })
	if want := []string{"10.244.1.13", "10.244.2.14", "10.244.2.15"}; !reflect.DeepEqual(gotIPs, want) {
		t.Errorf("endpoints = %v, want %v", gotIPs, want)
	}
	if reviews.Waypoint == nil || reviews.Waypoint.Name != "reviews-waypoint" {
		t.Errorf("reviews waypoint = %v, want reviews-waypoint", reviews.Waypoint)
	}
	if pp := snap.Service("productpage.default.svc.cluster.local"); pp.Waypoint != nil {
		t.Errorf("productpage waypoint = %v, want none", pp.Waypoint.Name)
	}
	w := snap.Waypoint("default", "reviews-waypoint")
	if w == nil || !reflect.DeepEqual(w.Addresses, []string{"10.96.20.20"}) {
		t.Fatalf("waypoint = %+v", w)
	}
	wl := snap.Workload("default", "reviews-v2-7bf8c9648f-5jw7x")
	if wl == nil || !wl.Ambient || wl.Node != "meshlab-worker2" || wl.Identity() != "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" {
		t.Errorf("workload = %+v", wl)
	}
	if wl.Waypoint != nil {
		t.Errorf("workload waypoint = %v, want none (waypoint-for service)", wl.Waypoint.Name)
	}
}

func TestRoutesFromVirtualServiceAndHTTPRoute(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // service/subset:weight
	}{
		{modeltest.ReviewsVS, []string{"reviews/v1:90", "reviews/v2:10"}},
		{modeltest.ReviewsHTTPRoute, []string{"reviews-v1/:90", "reviews-v2/:10"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			snap := modeltest.Load(t, modeltest.Bookinfo, tc.file)
			if len(snap.Problems) != 0 {
				t.Fatalf("Problems = %v", snap.Problems)
			}
			reviews := snap.Service("reviews.default.svc.cluster.local")
			rules := snap.RoutesFor(reviews, 9080)
			if len(rules) != 1 {
				t.Fatalf("RoutesFor() = %d rules, want 1", len(rules))
			}
			got := names(rules[0].Destinations, func(d model.Destination) string {
				return d.Service.Name + "/" + d.Subset + ":" + itoa(d.Weight)
			})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("destinations = %v, want %v", got, tc.want)
			}
			sc := snap.Scope(snap.Waypoint("default", "reviews-waypoint"))
			if got := svcNames(sc.Services); !reflect.DeepEqual(got, []string{"reviews"}) {
				t.Errorf("scope services = %v", got)
			}
		})
	}
}

func itoa(u uint32) string { return strconv.FormatUint(uint64(u), 10) }

const scopeBase = `
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient, NSLABEL}}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {clusterIP: 10.96.0.1, selector: {app: cart}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: pay, namespace: shop}
spec: {clusterIP: 10.96.0.2, selector: {app: pay}, ports: [{name: tcp, port: 5000}]}
---
apiVersion: v1
kind: Pod
metadata: {name: cart-1, namespace: shop, labels: {app: cart}}
spec: {serviceAccountName: cart, nodeName: n1, containers: [{name: c, image: x}]}
status: {podIP: 10.244.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: pay-1, namespace: shop, labels: {app: pay}}
spec: {serviceAccountName: pay, nodeName: n1, containers: [{name: c, image: x}]}
status: {podIP: 10.244.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: elsewhere, labels: {app: cart}}
spec: {nodeName: n2, containers: [{name: c, image: x}]}
status: {podIP: 10.244.0.3}
`

func waypointYAML(name, labels, annotations string) string {
	return `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ` + name + `, namespace: shop, labels: {` + labels + `}, annotations: {` + annotations + `}}
spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}`
}

func TestWaypointScoping(t *testing.T) {
	for _, tc := range []struct {
		name          string
		nsLabel       string
		gateway       string
		wantServices  []string
		wantWorkloads []string
		wantProblem   string
	}{
		{
			name:         "namespace waypoint serves every service of its namespace",
			nsLabel:      "istio.io/use-waypoint: waypoint",
			gateway:      waypointYAML("waypoint", "", ""),
			wantServices: []string{"cart", "pay"}, wantWorkloads: []string{},
		},
		{
			name:         "waypoint-for all also takes workload traffic",
			nsLabel:      "istio.io/use-waypoint: waypoint",
			gateway:      waypointYAML("waypoint", "istio.io/waypoint-for: all", ""),
			wantServices: []string{"cart", "pay"}, wantWorkloads: []string{"cart-1", "pay-1"},
		},
		{
			name:         "waypoint-for workload takes no service traffic",
			nsLabel:      "istio.io/use-waypoint: waypoint",
			gateway:      waypointYAML("waypoint", "istio.io/waypoint-for: workload", ""),
			wantServices: []string{}, wantWorkloads: []string{"cart-1", "pay-1"},
		},
		{
			name:         "waypoint-for none takes nothing",
			nsLabel:      "istio.io/use-waypoint: waypoint",
			gateway:      waypointYAML("waypoint", "istio.io/waypoint-for: none", ""),
			wantServices: []string{}, wantWorkloads: []string{},
		},
		{
			name:         "per-service-account waypoint serves only its service account",
			gateway:      waypointYAML("waypoint", "", "istio.io/for-service-account: cart"),
			wantServices: []string{"cart"}, wantWorkloads: []string{"cart-1"},
		},
		{
			name:    "another waypoint's Service is not served by the namespace waypoint (Istio's rule)",
			nsLabel: "istio.io/use-waypoint: waypoint",
			gateway: waypointYAML("waypoint", "", "") + "\n---\n" + waypointYAML("other", "", "") + `
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: shop}
spec: {clusterIP: 10.96.9.9, selector: {gateway.networking.k8s.io/gateway-name: other}, ports: [{name: mesh, port: 15008}]}
---
apiVersion: v1
kind: Service
metadata: {name: managed, namespace: shop, labels: {gateway.istio.io/managed: istio.io-mesh-controller}}
spec: {clusterIP: 10.96.9.10, selector: {app: managed}, ports: [{name: mesh, port: 15008}]}
`,
			wantServices: []string{"cart", "pay"}, wantWorkloads: []string{},
		},
		{
			name:         "no use-waypoint label: nothing",
			gateway:      waypointYAML("waypoint", "", ""),
			wantServices: []string{}, wantWorkloads: []string{},
		},
		{
			name:         "use-waypoint naming a missing waypoint is a problem",
			nsLabel:      "istio.io/use-waypoint: missing",
			gateway:      waypointYAML("waypoint", "", ""),
			wantServices: []string{}, wantWorkloads: []string{},
			wantProblem: "Namespace/shop: label istio.io/use-waypoint=missing names waypoint shop/missing, which does not exist",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := strings.Replace(scopeBase, ", NSLABEL", ", "+tc.nsLabel, 1)
			if tc.nsLabel == "" {
				base = strings.Replace(scopeBase, ", NSLABEL", "", 1)
			}
			snap := modeltest.FromYAML(t, base, tc.gateway)
			sc := snap.Scope(snap.Waypoint("shop", "waypoint"))
			if got := svcNames(sc.Services); !reflect.DeepEqual(got, tc.wantServices) {
				t.Errorf("services = %v, want %v", got, tc.wantServices)
			}
			if got := names(sc.Workloads, func(w *model.Workload) string { return w.Name }); !reflect.DeepEqual(got, tc.wantWorkloads) {
				t.Errorf("workloads = %v, want %v", got, tc.wantWorkloads)
			}
			problems := names(snap.Problems, model.Problem.String)
			if tc.wantProblem == "" && len(problems) > 0 {
				t.Errorf("Problems = %v, want none", problems)
			}
			if tc.wantProblem != "" && !reflect.DeepEqual(problems, []string{tc.wantProblem}) {
				t.Errorf("Problems = %q, want %q", problems, tc.wantProblem)
			}
		})
	}
}

func TestPerServiceAccountWaypointFiltersEndpoints(t *testing.T) {
	snap := modeltest.FromYAML(t, strings.Replace(scopeBase, ", NSLABEL", "", 1), waypointYAML("waypoint", "", "istio.io/for-service-account: cart"), `
apiVersion: v1
kind: Pod
metadata: {name: cart-legacy, namespace: shop, labels: {app: cart}}
spec: {serviceAccountName: legacy, containers: [{name: c, image: x}]}
status: {podIP: 10.244.0.9}`)
	sc := snap.Scope(snap.Waypoint("shop", "waypoint"))
	cart := snap.Service("cart.shop.svc.cluster.local")
	got := names(sc.Endpoints(cart, 80), func(e model.Endpoint) string { return e.IP })
	if want := []string{"10.244.0.1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Endpoints() = %v, want %v (only service account cart)", got, want)
	}
}

func TestInvalidConfigIsAProblemNotAFailure(t *testing.T) {
	bad := modeltest.FromYAML(t, strings.Replace(scopeBase, ", NSLABEL", "", 1), `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: shop}
spec:
  hosts: [cart, nothere]
  http:
  - route:
    - destination: {host: cart, subset: v9}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: pay, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: pay}]
  rules:
  - backendRefs: [{name: ghost, port: 80}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: shop}
spec: {action: AUDIT}`)
	want := []string{
		"AuthorizationPolicy/shop/audit: action AUDIT is not supported; policy ignored",
		"HTTPRoute/shop/pay: rules[0].backendRefs[0]: Service shop/ghost does not exist",
		"HTTPRoute/shop/pay: rules[0]: no valid backendRef; requests get 500",
		"VirtualService/shop/broken: host nothere.shop.svc.cluster.local matches no service",
		`VirtualService/shop/broken: http[0].route[0]: subset "v9" of cart.shop.svc.cluster.local is not defined by any DestinationRule`,
	}
	if got := names(bad.Problems, model.Problem.String); !reflect.DeepEqual(got, want) {
		t.Errorf("Problems =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The valid part still works: cart routes to its (undeclared) subset, pay answers 500.
	cart := bad.Service("cart.shop.svc.cluster.local")
	if r := bad.RoutesFor(cart, 80); len(r) != 1 || r[0].Destinations[0].Subset != "v9" {
		t.Errorf("cart routes = %+v", r)
	}
	pay := bad.Service("pay.shop.svc.cluster.local")
	if r := bad.RoutesFor(pay, 5000); len(r) != 1 || r[0].DirectStatus != 500 {
		t.Errorf("pay routes = %+v", r)
	}
}

func TestProxyFromID(t *testing.T) {
	for _, tc := range []struct {
		id      string
		want    model.Proxy
		wantErr string
	}{
		{id: "waypoint/default/reviews-waypoint", want: model.Proxy{Kind: model.KindWaypoint, Namespace: "default", Name: "reviews-waypoint"}},
		{id: "sidecar/default/productpage-v1", want: model.Proxy{Kind: model.KindSidecar, Namespace: "default", Name: "productpage-v1"}},
		{id: "ztunnel/meshlab-worker", want: model.Proxy{Kind: model.KindZtunnel, Name: "meshlab-worker", Node: "meshlab-worker"}},
		{id: "gateway/default/bookinfo-gateway", want: model.Proxy{Kind: model.KindGateway, Namespace: "default", Name: "bookinfo-gateway"}},
		{id: "router/default/x", wantErr: `unknown kind "router"`},
		{id: "waypoint/default", wantErr: "want waypoint/NAMESPACE/NAME"},
		{id: "ztunnel/a/b", wantErr: "want ztunnel/NODE"},
		{id: "sidecar//pod", wantErr: "empty part"},
	} {
		got, err := model.ProxyFromID(tc.id)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ProxyFromID(%q) error = %v, want %q", tc.id, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ProxyFromID(%q) = %+v, %v; want %+v", tc.id, got, err, tc.want)
		}
		if got.ID() != tc.id {
			t.Errorf("ID() = %q, want %q", got.ID(), tc.id)
		}
	}
}

func TestResolve(t *testing.T) {
	snap := modeltest.Load(t, modeltest.Bookinfo)
	p, err := snap.Resolve(model.Proxy{Kind: model.KindWaypoint, Namespace: "default", Name: "reviews-waypoint"})
	if err != nil || p.Pod != "reviews-waypoint-5d8c7b9f4-x2x9k" || !reflect.DeepEqual(p.IPs, []string{"10.244.1.20"}) {
		t.Errorf("Resolve(waypoint) = %+v, %v", p, err)
	}
	if _, err := snap.Resolve(model.Proxy{Kind: model.KindWaypoint, Namespace: "default", Name: "nope"}); err == nil ||
		!strings.Contains(err.Error(), "waypoints: default/reviews-waypoint") {
		t.Errorf("Resolve(missing waypoint) = %v", err)
	}
	p, err = snap.Resolve(model.Proxy{Kind: model.KindSidecar, Namespace: "default", Name: "details-v1-79f774bdb9-qkq4x"})
	if err != nil || p.ServiceAccount != "bookinfo-details" || p.Node != "meshlab-worker" {
		t.Errorf("Resolve(sidecar) = %+v, %v", p, err)
	}
}

// A STRICT PeerAuthentication over pods with a meshlab sidecar is reported: ztunnel enforces it for ambient
// pods only, and a sidecar pod still accepts plain text.
func TestPeerAuthenticationOnSidecarPodsIsAProblem(t *testing.T) {
	snap := modeltest.FromYAML(t, `
apiVersion: v1
kind: Namespace
metadata: {name: legacy, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: legacy, labels: {app: web, security.istio.io/tlsMode: istio}}
spec: {serviceAccountName: web, nodeName: node-a, containers: [{name: web, image: web}]}
status: {phase: Running, podIP: 10.244.7.10}
---
apiVersion: v1
kind: Pod
metadata: {name: plain-0, namespace: legacy, labels: {app: plain}}
spec: {serviceAccountName: plain, nodeName: node-a, containers: [{name: plain, image: plain}]}
status: {phase: Running, podIP: 10.244.7.11}
---
apiVersion: v1
kind: Pod
metadata: {name: api-0, namespace: legacy, labels: {app: api, security.istio.io/tlsMode: istio}}
spec: {serviceAccountName: api, nodeName: node-a, containers: [{name: api, image: api}]}
status: {phase: Running, podIP: 10.244.7.12}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: legacy}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: api-permissive, namespace: legacy}
spec: {selector: {matchLabels: {app: api}}, mtls: {mode: PERMISSIVE}}`)
	want := []string{"PeerAuthentication/legacy/strict: STRICT is not enforced on pods with a meshlab sidecar (web-0): they still accept plain text; meshlab enforces PeerAuthentication in ztunnel, for ambient pods only"}
	if got := names(snap.Problems, model.Problem.String); !reflect.DeepEqual(got, want) {
		t.Errorf("problems = %q, want %q", got, want)
	}
}
