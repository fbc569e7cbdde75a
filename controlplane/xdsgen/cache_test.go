package xdsgen_test

import (
	"maps"
	"slices"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/controlplane/xdsgen"
)

// pusher drives a Generator the way xds.Server does (clear the cache, prepare on full pushes, generate)
// for every store change, without the network.
type pusher struct {
	t     *testing.T
	g     *xdsgen.Generator
	store *ingest.Store
	last  *xds.PushRequest
}

func newPusher(t *testing.T, docs ...string) *pusher {
	g, store := loadGen(t)
	p := &pusher{t: t, g: g, store: store}
	for _, d := range docs {
		p.apply(decode(t, d)...)
	}
	store.OnChange(func(ev ingest.Event) {
		req := g.PushRequestFor(ev)
		if req == nil {
			return
		}
		if req.Full && len(req.ConfigsUpdated) == 0 {
			g.Cache().ClearAll()
		} else {
			g.Cache().Clear(req.ConfigsUpdated)
		}
		if req.Full {
			snap, err := g.Prepare(req)
			if err != nil {
				t.Fatal(err)
			}
			req.Snapshot = snap
		} else {
			req.Snapshot = g.Snapshot()
		}
		p.last = req
	})
	return p
}

func decode(t *testing.T, doc string) []ingest.Object {
	t.Helper()
	objs, _, err := ingest.Decode("inline", []byte(doc))
	if err != nil {
		t.Fatalf("Decode() = %v", err)
	}
	return objs
}

func (p *pusher) apply(objs ...ingest.Object) {
	p.t.Helper()
	for _, o := range objs {
		if _, err := p.store.Update(o); err != nil {
			p.t.Fatal(err)
		}
	}
}

// proxies are every sidecar (one per pod), waypoint and ztunnel of the current store.
func (p *pusher) proxies() []*xds.Proxy {
	snap := model.Build(p.store.Objects())
	var out []*xds.Proxy
	for _, wl := range snap.Workloads() {
		out = append(out, proxy("sidecar/"+wl.Namespace+"/"+wl.Name, nil))
	}
	for _, w := range snap.Waypoints() {
		out = append(out, proxy("waypoint/"+w.Namespace+"/"+w.Name, nil))
	}
	for _, n := range snap.Nodes() {
		out = append(out, proxy("ztunnel/"+n, nil))
	}
	return out
}

var allTypes = []string{xdstype.Cluster, xdstype.Endpoint, xdstype.Listener, xdstype.Route, xdstype.Address, xdstype.Authorization}

func byName(rs []*discovery.Resource) map[string]string {
	out := map[string]string{}
	for _, r := range rs {
		out[r.Name] = string(r.GetResource().GetValue())
	}
	return out
}

// check compares what the cached generator serves with what a new generator (empty cache) builds for the
// one proxy and type alone, from the same store: a cache entry that outlived a change of one of its
// inputs, or a key that two different values share, shows up here.
func (p *pusher) check(step string) {
	p.t.Helper()
	req := p.last
	if req == nil {
		req = xds.NewPushRequest(true, "test")
		req.Snapshot = p.g.Snapshot()
	}
	for _, px := range p.proxies() {
		for _, typeURL := range allTypes {
			got, err := p.g.Generate(px, typeURL, req)
			if err != nil {
				p.t.Fatalf("%s: Generate(%s, %s) = %v", step, px.ID, xdstype.Short(typeURL), err)
			}
			fresh := xdsgen.New(p.store)
			snap, err := fresh.Prepare(nil)
			if err != nil {
				p.t.Fatal(err)
			}
			freshReq := xds.NewPushRequest(true, "test")
			freshReq.Snapshot = snap
			want, err := fresh.Generate(px, typeURL, freshReq)
			if err != nil {
				p.t.Fatal(err)
			}
			g, w := byName(got.Resources), byName(want.Resources)
			if !maps.Equal(g, w) {
				p.t.Errorf("%s: %s %s from the cache differs from a fresh generation: names %v, want %v",
					step, px.ID, xdstype.Short(typeURL), slices.Sorted(maps.Keys(g)), slices.Sorted(maps.Keys(w)))
			}
		}
	}
}

// TestCacheFollowsChanges: after each kind of change, every proxy of every kind gets from the cache
// exactly what a fresh generation gives. The cache runs in assertion mode.
func TestCacheFollowsChanges(t *testing.T) {
	p := newPusher(t)
	p.check("initial")
	pod := func(name string) *corev1.Pod {
		o, ok := p.store.Get(ingest.Key{Kind: ingest.KindPod, Namespace: "default", Name: name})
		if !ok {
			t.Fatalf("no pod %s", name)
		}
		return o.(*corev1.Pod).DeepCopy()
	}
	for _, step := range []struct {
		name string
		do   func()
	}{
		{"VirtualService weights", func() {
			p.apply(decode(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default, generation: 2}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v3}, weight: 50}
`)...)
		}},
		{"a new VirtualService for ratings", func() {
			p.apply(decode(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default, generation: 1}
spec:
  hosts: [ratings]
  http:
  - fault: {abort: {httpStatus: 500, percentage: {value: 100}}}
    route: [{destination: {host: ratings}}]
`)...)
		}},
		{"a new DestinationRule", func() {
			p.apply(decode(t, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default, generation: 1}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}]
`)...)
		}},
		{"a pod turns unready", func() {
			v2 := pod("reviews-v2-7bf8c9648f-5jw7x")
			v2.Status.Conditions = append(v2.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse})
			p.apply(v2)
		}},
		{"a pod is relabelled", func() {
			v1 := pod("reviews-v1-545db77b95-2ps6q")
			v1.Labels["version"] = "v3"
			p.apply(v1)
		}},
		{"a new Service selecting existing pods", func() {
			p.apply(decode(t, `
apiVersion: v1
kind: Service
metadata: {name: reviews-admin, namespace: default}
spec:
  clusterIP: 10.96.10.99
  selector: {app: reviews}
  ports: [{name: tcp-admin, port: 9999, targetPort: 9999}]
`)...)
		}},
		{"a new AuthorizationPolicy", func() {
			p.apply(decode(t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings-viewer, namespace: default, generation: 1}
spec:
  selector: {matchLabels: {app: ratings}}
  rules: [{to: [{operation: {methods: [GET]}}]}]
`)...)
		}},
		{"a RequestAuthentication on reviews, through its waypoint", func() {
			p.apply(decode(t, `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: reviews-jwt, namespace: default, generation: 1}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  jwtRules: [{issuer: a, jwks: '{"keys":[]}'}]
`)...)
		}},
		{"a RequestAuthentication for productpage's sidecar", func() {
			p.apply(decode(t, `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: productpage-jwt, namespace: default, generation: 1}
spec:
  selector: {matchLabels: {app: productpage}}
  jwtRules: [{issuer: b, jwks: '{"keys":[]}'}]
`)...)
		}},
		{"the waypoint's RequestAuthentication changes", func() {
			p.apply(decode(t, `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: reviews-jwt, namespace: default, generation: 2}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  jwtRules: [{issuer: c, jwks: '{"keys":[]}'}]
`)...)
		}},
		{"the VirtualService is deleted", func() {
			p.store.Delete(ingest.Key{Kind: ingest.KindVirtualService, Namespace: "default", Name: "reviews"})
		}},
		{"an HTTPRoute takes over the routes of reviews", func() {
			p.apply(decode(t, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: default, generation: 1}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules: [{backendRefs: [{name: reviews, port: 9080}]}]
`)...)
		}},
		{"ratings joins the waypoint", func() {
			o, _ := p.store.Get(ingest.Key{Kind: ingest.KindService, Namespace: "default", Name: "ratings"})
			svc := o.(*corev1.Service).DeepCopy()
			if svc.Labels == nil {
				svc.Labels = map[string]string{}
			}
			svc.Labels["istio.io/use-waypoint"] = "reviews-waypoint"
			p.apply(svc)
		}},
		{"the waypoint's Gateway is deleted", func() {
			p.store.Delete(ingest.Key{Kind: ingest.KindGateway, Namespace: "default", Name: "reviews-waypoint"})
		}},
	} {
		step.do()
		p.check(step.name)
	}
}

// TestRouteChangeRegeneratesOnlyRoutes: a VirtualService change evicts the sidecars' routes and nothing
// else of theirs: their listeners, clusters and endpoints come from the cache, and their routes are built
// once for the namespace, not once per sidecar.
func TestRouteChangeRegeneratesOnlyRoutes(t *testing.T) {
	p := newPusher(t)
	var sidecars []*xds.Proxy
	for _, px := range p.proxies() {
		if px.Kind == xds.KindSidecar {
			sidecars = append(sidecars, px)
		}
	}
	generateAll := func(types ...string) (hits, misses uint64) {
		h0, m0 := p.g.Cache().Stats()
		for _, px := range sidecars {
			for _, typeURL := range types {
				if _, err := p.g.Generate(px, typeURL, p.last); err != nil {
					t.Fatal(err)
				}
			}
		}
		h1, m1 := p.g.Cache().Stats()
		return h1 - h0, m1 - m0
	}
	p.last = xds.NewPushRequest(true, "test")
	p.last.Snapshot = p.g.Snapshot()
	envoy := []string{xdstype.Cluster, xdstype.Endpoint, xdstype.Listener, xdstype.Route}
	generateAll(envoy...)
	if _, misses := generateAll(envoy...); misses != 0 {
		t.Fatalf("a second generation with no change missed the cache %d times", misses)
	}
	vs := decode(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default, generation: 2}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
`)
	p.apply(vs...)
	if hits, misses := generateAll(xdstype.Listener, xdstype.Cluster, xdstype.Endpoint); misses != 0 || hits == 0 {
		t.Errorf("after a route change, LDS/CDS/EDS: %d hits, %d misses; want only hits", hits, misses)
	}
	if _, misses := generateAll(xdstype.Route); misses != 1 {
		t.Errorf("after a route change, RDS missed %d times; want once (one namespace)", misses)
	}
	// The new routes are served: reviews now goes to v2 only.
	res, err := p.g.Generate(sidecars[0], xdstype.Route, p.last)
	if err != nil {
		t.Fatal(err)
	}
	want, err := configgen.Resources(p.g.Snapshot(), model.Proxy{Kind: model.KindSidecar, Namespace: sidecars[0].Namespace, Name: sidecars[0].Name}, xdstype.Route)
	if err != nil || len(want) != len(res.Resources) {
		t.Fatalf("Resources() = %d, %v; cached %d", len(want), err, len(res.Resources))
	}
}
