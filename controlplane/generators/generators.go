// Package generators adapts meshlab's model and config generators to the xDS server: it is the
// xds.Generator (and xds.Preparer) of the live control plane. It decides three things the server leaves
// to it:
//
//   - what a push is: PushRequestFor turns a store event into a full push (config changed: a new immutable
//     model.Snapshot is built once, in Prepare, and shared by every proxy) or an endpoint-only push
//     (EndpointSlice or pod IP/readiness changes that change no service or config: only EDS and workload
//     addresses are regenerated, and LDS/RDS/CDS are not rebuilt);
//   - who is affected: destination-oriented, like Istio. A waypoint depends only on what it serves (its
//     Gateway, the services bound to it and their route backends, their VirtualServices, HTTPRoutes and
//     DestinationRules, the pods behind them, the policies it enforces); a sidecar on every service; a
//     ztunnel on workloads, services, waypoints and policies but never on L7 routing;
//   - what to send: Envoy resources from package generate for waypoints and sidecars, and the workload API
//     (Address, Authorization) converted from generate.ZtunnelConfig for ztunnel.
//
// Proxies are identified by their xDS node (see xds.NewProxy). Accepted node IDs, for each kind:
//
//	waypoint/NAMESPACE/GATEWAY      meshlab's form, the same as `meshlab render --proxy`
//	waypoint~IP~POD.NS~NS.svc.cluster.local
//	                                Istio's form: POD is mapped to its Gateway through the pod label
//	                                gateway.networking.k8s.io/gateway-name (or metadata NAME=GATEWAY)
//	sidecar/NAMESPACE/POD, sidecar~IP~POD.NS~NS.svc.cluster.local
//	ztunnel/NODE, or any ztunnel ID with metadata NODE_NAME=NODE
//
// Encoded resources are memoized per immutable snapshot (the snapshot version is the key of every input),
// so proxies of the same waypoint, and every ztunnel, share one encoding per push.
package generators

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/controlplane/generate"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/xds"
)

// MetaNodeName is the node metadata key a ztunnel may use to name its node (Istio's).
const MetaNodeName = "NODE_NAME"

// Generator is the live control plane's xds.Generator over one ingest.Store.
type Generator struct {
	store *ingest.Store
	logf  func(string, ...any)

	mu        sync.Mutex
	cur, prev *model.Snapshot // the last two full snapshots (Prepare)
	eps       *model.Snapshot // the newest snapshot EDS and workload addresses are generated from
	epsDirty  uint64          // store version of the newest endpoint-only change
	memos     map[*model.Snapshot]*memo
	listeners []func(*model.Snapshot)
	builds    int // full snapshot builds, for tests and metrics
	epBuilds  int // endpoint snapshot builds
}

var (
	_ xds.Generator = (*Generator)(nil)
	_ xds.Preparer  = (*Generator)(nil)
)

// Option configures a Generator.
type Option func(*Generator)

// WithLogf sends log lines to logf.
func WithLogf(logf func(string, ...any)) Option { return func(g *Generator) { g.logf = logf } }

// New returns a generator reading store.
func New(store *ingest.Store, opts ...Option) *Generator {
	g := &Generator{store: store, logf: func(string, ...any) {}, memos: map[*model.Snapshot]*memo{}}
	for _, o := range opts {
		o(g)
	}
	return g
}

// OnSnapshot registers fn to be called with every new full snapshot, after it is built and before any
// proxy is generated from it (the status writer reports its problems). fn must not block for long.
func (g *Generator) OnSnapshot(fn func(*model.Snapshot)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.listeners = append(g.listeners, fn)
}

// Snapshot returns the current full snapshot, or nil before the first push.
func (g *Generator) Snapshot() *model.Snapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cur
}

// Builds returns how many full and endpoint-only snapshots were built.
func (g *Generator) Builds() (full, endpoints int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.builds, g.epBuilds
}

// Prepare builds the immutable snapshot of a full push from the store.
func (g *Generator) Prepare(*xds.PushRequest) (any, error) {
	snap := model.Build(g.store.Objects())
	g.mu.Lock()
	g.builds++
	g.prev, g.cur = g.cur, snap
	if g.eps == nil || snap.Version >= g.eps.Version {
		g.eps = snap
	}
	for s := range g.memos {
		if s != g.cur && s != g.prev && s != g.eps {
			delete(g.memos, s)
		}
	}
	listeners := g.listeners
	g.mu.Unlock()
	for _, fn := range listeners {
		fn(snap)
	}
	return snap, nil
}

// endpointSnapshot returns the snapshot endpoint types are generated from: base, unless endpoint-only
// changes arrived since, in which case a newer snapshot (built at most once per store version) serves
// them. Only EDS and workload addresses are generated from it; listeners, routes and clusters stay on the
// snapshot of the last full push.
func (g *Generator) endpointSnapshot(base *model.Snapshot) *model.Snapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.eps == nil || g.epsDirty > g.eps.Version {
		g.eps = model.Build(g.store.Objects())
		g.epBuilds++
	}
	if base != nil && base.Version > g.eps.Version {
		return base
	}
	return g.eps
}

func (g *Generator) memo(s *model.Snapshot) *memo {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.memos[s]
	if m == nil {
		m = &memo{entries: map[string]*memoEntry{}}
		if s == g.cur || s == g.prev || s == g.eps {
			g.memos[s] = m
		}
	}
	return m
}

// ConfigKey is the xDS config key of a store object. EndpointSlices are keyed by the service they belong
// to, so that a waypoint can depend on "the endpoints of reviews".
func ConfigKey(key ingest.Key, obj ingest.Object) xds.ConfigKey {
	if key.Kind == ingest.KindEndpointSlice && obj != nil {
		if svc := obj.GetLabels()[model.LabelServiceName]; svc != "" {
			return xds.ConfigKey{Kind: string(key.Kind), Namespace: key.Namespace, Name: svc}
		}
	}
	return xds.ConfigKey{Kind: string(key.Kind), Namespace: key.Namespace, Name: key.Name}
}

// PushRequestFor turns a store event into the push it needs, or nil when the change cannot alter any
// proxy's config (a status-only update, a pod without an IP yet).
func (g *Generator) PushRequestFor(ev ingest.Event) *xds.PushRequest {
	obj := ev.New
	if obj == nil {
		obj = ev.Old
	}
	key := ConfigKey(ev.Key, obj)
	if ev.Type == ingest.Updated && !relevantUpdate(ev.Old, ev.New) {
		return nil
	}
	switch ev.Key.Kind {
	case ingest.KindPod:
		oldPod, _ := ev.Old.(*corev1.Pod)
		newPod, _ := ev.New.(*corev1.Pod)
		if !hasIP(oldPod) && !hasIP(newPod) {
			return nil // not in the model before or after
		}
		if ev.Type == ingest.Updated && g.endpointOnlyPod(oldPod, newPod) {
			return g.endpointPush(ev.Version, key)
		}
	case ingest.KindEndpointSlice:
		oldES, _ := ev.Old.(*discoveryv1.EndpointSlice)
		newES, _ := ev.New.(*discoveryv1.EndpointSlice)
		// A pod joining or leaving a service changes more than endpoints: its sidecar's inbound
		// listener and clusters are built from the services it backs. Only readiness flips and
		// changes that keep the set of addresses take the endpoint fast path.
		if !g.perServiceAccountWaypointIn(ev.Key.Namespace) && sameAddresses(oldES, newES) {
			return g.endpointPush(ev.Version, key)
		}
	}
	return xds.NewPushRequest(true, "config", key)
}

func (g *Generator) endpointPush(version uint64, key xds.ConfigKey) *xds.PushRequest {
	g.mu.Lock()
	if version > g.epsDirty {
		g.epsDirty = version
	}
	g.mu.Unlock()
	return xds.NewPushRequest(false, "endpoint", key)
}

// sameAddresses reports whether two versions of an EndpointSlice hold the same addresses and ports.
func sameAddresses(o, n *discoveryv1.EndpointSlice) bool {
	if o == nil || n == nil {
		return false
	}
	addrs := func(es *discoveryv1.EndpointSlice) []string {
		var out []string
		for _, e := range es.Endpoints {
			out = append(out, e.Addresses...)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(addrs(o), addrs(n)) && reflect.DeepEqual(o.Ports, n.Ports)
}

func hasIP(p *corev1.Pod) bool { return p != nil && (p.Status.PodIP != "" || len(p.Status.PodIPs) > 0) }

// endpointOnlyPod reports whether a pod update changes only its addresses or readiness, and nothing the
// model derives config from. Listeners depend on pod IPs only for waypoints that serve workload-addressed
// traffic (their direct chains), so a namespace with such a waypoint always takes the full path; so does a
// waypoint's own pod.
func (g *Generator) endpointOnlyPod(o, n *corev1.Pod) bool {
	if o == nil || n == nil {
		return false
	}
	if !maps.Equal(o.Labels, n.Labels) || o.Spec.ServiceAccountName != n.Spec.ServiceAccountName ||
		o.Spec.NodeName != n.Spec.NodeName || o.Spec.HostNetwork != n.Spec.HostNetwork ||
		!reflect.DeepEqual(containerPorts(o), containerPorts(n)) || n.Labels[model.LabelGatewayName] != "" {
		return false
	}
	g.mu.Lock()
	s := g.cur
	g.mu.Unlock()
	if s == nil {
		return false
	}
	for _, w := range s.Waypoints() {
		if w.Namespace == n.Namespace && w.ServesWorkloads() {
			return false
		}
	}
	return true
}

func containerPorts(p *corev1.Pod) [][]corev1.ContainerPort {
	var out [][]corev1.ContainerPort
	for _, c := range p.Spec.Containers {
		out = append(out, c.Ports)
	}
	return out
}

// perServiceAccountWaypointIn reports whether a per-service-account waypoint lives in ns: such waypoints
// claim services by who runs their endpoints, so endpoint changes there can change bindings.
func (g *Generator) perServiceAccountWaypointIn(ns string) bool {
	g.mu.Lock()
	s := g.cur
	g.mu.Unlock()
	if s == nil {
		return true
	}
	for _, w := range s.Waypoints() {
		if w.Namespace == ns && w.ServiceAccount != "" {
			return true
		}
	}
	return false
}

// relevantUpdate reports whether an update can change what the model builds. Status-only updates of
// config objects (including the ones the control plane writes itself) are not: they would otherwise cause
// a full push per status write.
func relevantUpdate(o, n ingest.Object) bool {
	if o == nil || n == nil {
		return true
	}
	if !maps.Equal(o.GetLabels(), n.GetLabels()) || !maps.Equal(o.GetAnnotations(), n.GetAnnotations()) {
		return true
	}
	switch n := n.(type) {
	case *corev1.Namespace:
		return false // the model reads namespace labels only
	case *corev1.Service:
		return !reflect.DeepEqual(o.(*corev1.Service).Spec, n.Spec)
	case *corev1.ServiceAccount:
		return false
	case *corev1.Pod:
		op := o.(*corev1.Pod)
		return !reflect.DeepEqual(op.Spec, n.Spec) || !reflect.DeepEqual(op.Status.PodIPs, n.Status.PodIPs) ||
			op.Status.PodIP != n.Status.PodIP || op.Status.Phase != n.Status.Phase || ready(op) != ready(n)
	case *discoveryv1.EndpointSlice:
		os := o.(*discoveryv1.EndpointSlice)
		return !reflect.DeepEqual(os.Endpoints, n.Endpoints) || !reflect.DeepEqual(os.Ports, n.Ports)
	case *gwv1.Gateway:
		og := o.(*gwv1.Gateway)
		return og.Generation != n.Generation || n.Generation == 0 || !reflect.DeepEqual(og.Status.Addresses, n.Status.Addresses)
	}
	// Config kinds with a status subresource: the generation moves exactly when the spec does.
	og, ng := o.(metav1.Object).GetGeneration(), n.(metav1.Object).GetGeneration()
	return og != ng || ng == 0
}

func ready(p *corev1.Pod) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status
		}
	}
	return ""
}

// Affects reports whether req can change what proxy receives (see the package doc).
func (g *Generator) Affects(p *xds.Proxy, req *xds.PushRequest) bool {
	if req.Full && len(req.ConfigsUpdated) == 0 {
		return true
	}
	switch p.Kind {
	case xds.KindZtunnel:
		for k := range req.ConfigsUpdated {
			if ztunnelKinds[ingest.Kind(k.Kind)] {
				return true
			}
		}
		return false
	case xds.KindSidecar:
		for k := range req.ConfigsUpdated {
			if ingest.Kind(k.Kind) != ingest.KindGatewayClass && ingest.Kind(k.Kind) != ingest.KindServiceAccount {
				return true
			}
		}
		return false
	case xds.KindWaypoint:
		g.mu.Lock()
		cur, prev := g.cur, g.prev
		g.mu.Unlock()
		found := false
		for _, s := range []*model.Snapshot{cur, prev} {
			if s == nil {
				continue
			}
			ns, name := waypointOf(s, p)
			w := s.Waypoint(ns, name)
			if w == nil {
				continue
			}
			found = true
			deps := g.memo(s).waypointDeps(s, w)
			for k := range req.ConfigsUpdated {
				if _, ok := deps[k]; ok {
					return true
				}
			}
		}
		return !found // a waypoint the model does not know yet: any change may create it
	}
	return true
}

// ztunnelKinds are the kinds the workload API is built from; L7 routing never reaches ztunnel.
var ztunnelKinds = map[ingest.Kind]bool{
	ingest.KindNamespace: true, ingest.KindService: true, ingest.KindPod: true, ingest.KindEndpointSlice: true,
	ingest.KindGateway: true, ingest.KindAuthorizationPolicy: true,
}

// waypointDeps lists the configs waypoint w's resources are built from in snapshot s.
func waypointDeps(s *model.Snapshot, w *model.Waypoint) map[xds.ConfigKey]struct{} {
	deps := map[xds.ConfigKey]struct{}{}
	add := func(k ingest.Key) {
		deps[xds.ConfigKey{Kind: string(k.Kind), Namespace: k.Namespace, Name: k.Name}] = struct{}{}
	}
	add(w.Key())
	add(ingest.Key{Kind: ingest.KindNamespace, Name: w.Namespace})
	sc := s.Scope(w)
	for _, svc := range append(append([]*model.Service(nil), sc.Services...), sc.Backends...) {
		add(svc.Key())
		add(ingest.Key{Kind: ingest.KindEndpointSlice, Namespace: svc.Namespace, Name: svc.Name})
		add(ingest.Key{Kind: ingest.KindNamespace, Name: svc.Namespace})
		if k, ok := s.RouteSource(svc.FQDN); ok {
			add(k)
		}
		if dr := s.DestinationRule(svc.FQDN); dr != nil {
			add(dr.Source)
		}
		for _, ep := range svc.Endpoints {
			if ep.Workload != nil {
				add(ep.Workload.Key())
			}
		}
	}
	for _, wl := range sc.Workloads {
		add(wl.Key())
		add(ingest.Key{Kind: ingest.KindNamespace, Name: wl.Namespace})
	}
	for _, wp := range s.PoliciesForWaypoint(w) {
		add(wp.Policy.Source)
	}
	for _, wl := range s.Workloads() {
		if wl.Namespace == w.Namespace && wl.Labels[model.LabelGatewayName] == w.Name {
			add(wl.Key()) // the waypoint's own pods
		}
	}
	return deps
}

// waypointOf returns the Gateway a waypoint proxy runs for: the node's name when a waypoint of that name
// exists, else the gateway-name label of the pod the node names.
func waypointOf(s *model.Snapshot, p *xds.Proxy) (namespace, name string) {
	if s.Waypoint(p.Namespace, p.Name) != nil {
		return p.Namespace, p.Name
	}
	if wl := s.Workload(p.Namespace, p.Name); wl != nil {
		if gw := wl.Labels[model.LabelGatewayName]; gw != "" {
			return p.Namespace, gw
		}
	}
	return p.Namespace, p.Name
}

// ModelProxy maps a connected proxy to the model's proxy (the same form `meshlab render --proxy` takes).
func ModelProxy(s *model.Snapshot, p *xds.Proxy) (model.Proxy, error) {
	switch p.Kind {
	case xds.KindWaypoint:
		ns, name := waypointOf(s, p)
		return model.Proxy{Kind: model.KindWaypoint, Namespace: ns, Name: name}, nil
	case xds.KindSidecar:
		return model.Proxy{Kind: model.KindSidecar, Namespace: p.Namespace, Name: p.Name}, nil
	case xds.KindZtunnel:
		node := p.Metadata[MetaNodeName]
		if node == "" {
			node = p.Name
		}
		return model.Proxy{Kind: model.KindZtunnel, Name: node, Node: node}, nil
	}
	return model.Proxy{}, fmt.Errorf("proxy %s: unknown kind %q; want waypoint, sidecar or ztunnel", p.ID, p.Kind)
}

// Generate builds the resources of typeURL for proxy p.
func (g *Generator) Generate(p *xds.Proxy, typeURL string, req *xds.PushRequest) (xds.Result, error) {
	snap, _ := req.Snapshot.(*model.Snapshot)
	if snap == nil {
		snap = g.Snapshot()
	}
	endpointType := typeURL == xds.EndpointType || typeURL == xds.AddressType
	if endpointType {
		snap = g.endpointSnapshot(snap)
	}
	if snap == nil {
		return xds.Result{}, errors.New("no snapshot yet")
	}
	mp, err := ModelProxy(snap, p)
	if err != nil {
		return xds.Result{}, err
	}
	var res xds.Result
	switch mp.Kind {
	case model.KindWaypoint, model.KindSidecar:
		if !envoyTypes[typeURL] {
			return xds.Result{}, nil // nothing of this type for Envoy-style proxies
		}
		if mp.Kind == model.KindWaypoint {
			res.Resources, err = g.memo(snap).get("waypoint|"+mp.Namespace+"/"+mp.Name+"|"+typeURL, func() ([]*discovery.Resource, error) {
				return envoyResources(snap, mp, typeURL)
			})
		} else {
			res.Resources, err = envoyResources(snap, mp, typeURL)
		}
		// An endpoint-only push only sends what changed of EDS (partial EDS, also in state of the world):
		// no cluster came or went, so nothing needs removing.
		res.Incremental = typeURL == xds.EndpointType && !req.Full
	case model.KindZtunnel:
		switch typeURL {
		case xds.AddressType:
			res.Resources, err = g.memo(snap).get("ztunnel|addresses", func() ([]*discovery.Resource, error) {
				return ztunnelAddresses(snap)
			})
		case xds.AuthorizationType:
			res.Resources, err = g.memo(snap).get("ztunnel|authz|"+mp.Node, func() ([]*discovery.Resource, error) {
				return ztunnelAuthorizations(snap, mp.Node)
			})
		}
	}
	if err != nil {
		return xds.Result{}, err
	}
	return res, nil
}

var envoyTypes = map[string]bool{xds.ListenerType: true, xds.RouteType: true, xds.ClusterType: true, xds.EndpointType: true}

func envoyResources(s *model.Snapshot, p model.Proxy, typeURL string) ([]*discovery.Resource, error) {
	msgs, err := generate.Resources(s, p, typeURL)
	if err != nil {
		return nil, err
	}
	out := make([]*discovery.Resource, 0, len(msgs))
	for _, m := range msgs {
		r, err := xds.MarshalNamed(m)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func ztunnelAddresses(s *model.Snapshot) ([]*discovery.Resource, error) {
	workloads, services, _ := generate.ZtunnelConfig(s, "")
	out := make([]*discovery.Resource, 0, len(workloads)+len(services))
	for _, w := range workloads {
		r, err := xds.MarshalNamed(WorkloadAddress(w))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	for _, svc := range services {
		r, err := xds.MarshalNamed(ServiceAddress(svc))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func ztunnelAuthorizations(s *model.Snapshot, node string) ([]*discovery.Resource, error) {
	_, _, policies := generate.ZtunnelConfig(s, node)
	out := make([]*discovery.Resource, 0, len(policies))
	for _, p := range policies {
		r, err := xds.MarshalNamed(Authorization(p))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// memo holds what was generated from one snapshot; entries are built once, by the first caller.
type memo struct {
	mu      sync.Mutex
	entries map[string]*memoEntry
	deps    map[string]map[xds.ConfigKey]struct{}
}

type memoEntry struct {
	once sync.Once
	res  []*discovery.Resource
	err  error
}

func (m *memo) get(key string, build func() ([]*discovery.Resource, error)) ([]*discovery.Resource, error) {
	m.mu.Lock()
	e := m.entries[key]
	if e == nil {
		e = &memoEntry{}
		m.entries[key] = e
	}
	m.mu.Unlock()
	e.once.Do(func() { e.res, e.err = build() })
	return e.res, e.err
}

func (m *memo) waypointDeps(s *model.Snapshot, w *model.Waypoint) map[xds.ConfigKey]struct{} {
	key := w.Namespace + "/" + w.Name
	m.mu.Lock()
	defer m.mu.Unlock()
	if d, ok := m.deps[key]; ok {
		return d
	}
	if m.deps == nil {
		m.deps = map[string]map[xds.ConfigKey]struct{}{}
	}
	d := waypointDeps(s, w)
	m.deps[key] = d
	return d
}
