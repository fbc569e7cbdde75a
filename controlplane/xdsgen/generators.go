// Package xdsgen adapts meshlab's model and config generators to the xDS server: it is the
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
//     (Address, Authorization) converted from configgen.ZtunnelConfig for ztunnel.
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
// Encoded resources live in an xds.Cache (Cache; the server must be given it with xds.WithCache so that
// changes invalidate it), keyed by every generator input and never by the proxy, so that proxies sharing
// an input share the encoding, across pushes, until an input changes:
//
//   - a waypoint's resources per Gateway and type, depending on exactly the configs its scope is built from;
//     a change that brings a new object into its scope (a new VirtualService for a service it serves)
//     moves it to a new generation in its keys, decided in Prepare as Affects decides pushes;
//   - a sidecar's outbound part (listener, clusters and endpoints of every service it can reach, shared by
//     every sidecar; routes per namespace) depending on every config of the kinds it reads, and its inbound
//     part (its own listener and clusters) keyed by what it is built from (ports, protocols, policies), so
//     that pods of one deployment share it;
//   - ztunnel's addresses (shared) and authorizations (per node).
//
// Each type's entries depend only on what that type is built from, so a change regenerates only the types
// it can affect (an HTTPRoute: sidecar routes, not their listeners, clusters or endpoints); the others are
// served from the cache and the server's diff finds nothing to send.
package xdsgen

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/controlplane/configgen"
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

	cache *xds.Cache

	mu        sync.Mutex
	cur, prev *model.Snapshot // the last two full snapshots (Prepare)
	eps       *model.Snapshot // the newest snapshot EDS and workload addresses are generated from
	epsDirty  uint64          // store version of the newest endpoint-only change
	states    map[*model.Snapshot]*snapState
	wpSeq     uint64 // the last waypoint config generation handed out
	listeners []func(*model.Snapshot)
	builds    int // full snapshot builds, for tests and metrics
	epBuilds  int // endpoint snapshot builds

	flightMu sync.Mutex
	flights  map[flightKey]*flight
}

var (
	_ xds.Generator = (*Generator)(nil)
	_ xds.Preparer  = (*Generator)(nil)
)

// Option configures a Generator.
type Option func(*Generator)

// WithLogf sends log lines to logf.
func WithLogf(logf func(string, ...any)) Option { return func(g *Generator) { g.logf = logf } }

// WithCache makes the generator keep encoded resources in c (default: a cache of its own, see
// DefaultCacheOptions).
func WithCache(c *xds.Cache) Option { return func(g *Generator) { g.cache = c } }

// DefaultCacheOptions configure the cache New creates when WithCache is not given. Tests of packages that
// build a control plane put xds.WithAssertions here, so that a cache key missing an input fails them.
var DefaultCacheOptions []xds.CacheOption

// New returns a generator reading store.
func New(store *ingest.Store, opts ...Option) *Generator {
	g := &Generator{store: store, logf: func(string, ...any) {}, states: map[*model.Snapshot]*snapState{}, flights: map[flightKey]*flight{}}
	for _, o := range opts {
		o(g)
	}
	if g.cache == nil {
		g.cache = xds.NewCache(DefaultCacheOptions...)
	}
	return g
}

// Cache returns the cache of encoded resources; give it to the xds.Server (xds.WithCache), which clears
// what a change invalidates.
func (g *Generator) Cache() *xds.Cache { return g.cache }

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

// Prepare builds the immutable snapshot of a full push from the store, and moves the waypoints the push
// affects to a new config generation (see waypointGens).
func (g *Generator) Prepare(req *xds.PushRequest) (any, error) {
	if req != nil && req.Full && len(req.ConfigsUpdated) == 0 {
		g.cache.ClearAll() // "anything may have changed"; the server does it too when it holds the cache
	}
	// The token is taken before the store is read: an entry built from this snapshot is dropped if one of
	// its inputs is invalidated after that, since the snapshot may not have seen the change.
	st := &snapState{token: g.cache.Token()}
	snap := model.Build(g.store.Objects())
	g.mu.Lock()
	prev, prevSt := g.cur, g.states[g.cur]
	g.mu.Unlock()
	// Prepare runs once at a time (the server serializes it), so prev is still current here.
	stale := g.waypointGens(prev, prevSt, snap, st, req)
	g.mu.Lock()
	g.builds++
	g.prev, g.cur = g.cur, snap
	if g.eps == nil || snap.Version >= g.eps.Version {
		g.eps = snap
	}
	g.states[snap] = st
	for s := range g.states {
		if s != g.cur && s != g.prev && s != g.eps {
			delete(g.states, s)
		}
	}
	listeners := g.listeners
	g.mu.Unlock()
	if len(stale) > 0 {
		g.cache.Clear(stale) // the old generations' entries: nothing will read them again
	}
	for _, fn := range listeners {
		fn(snap)
	}
	return snap, nil
}

// waypointGens sets the config generation of every waypoint in snap. A waypoint keeps its generation
// unless the push may change its config: a change to a config in its scope before (prev) or after (snap)
// the push. The scope after matters for objects that join it, whose keys no cached entry could declare
// (the new VirtualService of a service it serves). It returns the dependency keys of the generations
// left behind.
func (g *Generator) waypointGens(prev *model.Snapshot, prevSt *snapState, snap *model.Snapshot, st *snapState, req *xds.PushRequest) map[xds.ConfigKey]struct{} {
	st.gens = map[string]uint64{}
	stale := map[xds.ConfigKey]struct{}{}
	everything := req == nil || (req.Full && len(req.ConfigsUpdated) == 0) || prevSt == nil
	touches := func(deps map[xds.ConfigKey]struct{}) bool {
		for k := range req.ConfigsUpdated {
			if _, ok := deps[k]; ok {
				return true
			}
		}
		return false
	}
	for _, w := range snap.Waypoints() {
		id := w.Namespace + "/" + w.Name
		old, known := uint64(0), false
		if !everything {
			old, known = prevSt.gens[id]
		}
		if known {
			pw := prev.Waypoint(w.Namespace, w.Name)
			if pw != nil && !touches(prevSt.waypointDeps(prev, pw)) && !touches(st.waypointDeps(snap, w)) {
				st.gens[id] = old
				continue
			}
			stale[waypointGenKey(w.Namespace, w.Name, old)] = struct{}{}
		}
		g.mu.Lock()
		g.wpSeq++
		st.gens[id] = g.wpSeq
		g.mu.Unlock()
	}
	if prevSt != nil {
		for id, gen := range prevSt.gens {
			if _, ok := st.gens[id]; !ok { // the waypoint is gone
				ns, name, _ := strings.Cut(id, "/")
				stale[waypointGenKey(ns, name, gen)] = struct{}{}
			}
		}
	}
	return stale
}

// waypointGenKey is the dependency every cached resource of one generation of a waypoint's config
// declares, so that moving the waypoint to a new generation evicts them.
func waypointGenKey(namespace, name string, gen uint64) xds.ConfigKey {
	return xds.ConfigKey{Kind: "meshlab/WaypointConfig", Namespace: namespace, Name: name + "#" + strconv.FormatUint(gen, 10)}
}

// endpointSnapshot returns the snapshot endpoint types are generated from: base, unless endpoint-only
// changes arrived since, in which case a newer snapshot (built at most once per store version) serves
// them. Only EDS and workload addresses are generated from it; listeners, routes and clusters stay on the
// snapshot of the last full push.
func (g *Generator) endpointSnapshot(base *model.Snapshot) *model.Snapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.eps == nil || g.epsDirty > g.eps.Version {
		// Endpoint-only changes do not move waypoints to a new generation: the endpoints they change are
		// exact dependencies of the entries, cleared by the server.
		st := &snapState{token: g.cache.Token()}
		if cur := g.states[g.cur]; cur != nil {
			st.gens = cur.gens
		}
		g.eps = model.Build(g.store.Objects())
		g.states[g.eps] = st
		g.epBuilds++
	}
	if base != nil && base.Version > g.eps.Version {
		return base
	}
	return g.eps
}

// state returns what the generator keeps of snapshot s, or nil for a snapshot it no longer tracks (a
// push that was overtaken): that one is generated without the cache.
func (g *Generator) state(s *model.Snapshot) *snapState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.states[s]
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
	req := g.pushRequestFor(ev, key)
	// Invalidate now, not only when the server clears at push time: the store has changed, so anything
	// built from an older snapshot is stale, and a server built without xds.WithCache must not serve it.
	if req != nil {
		g.cache.Clear(req.ConfigsUpdated)
	}
	return req
}

func (g *Generator) pushRequestFor(ev ingest.Event, key xds.ConfigKey) *xds.PushRequest {
	switch ev.Key.Kind {
	case ingest.KindPod:
		oldPod, _ := ev.Old.(*corev1.Pod)
		newPod, _ := ev.New.(*corev1.Pod)
		if !hasIP(oldPod) && !hasIP(newPod) {
			return nil // not in the model before or after
		}
		// A pod that just got (or lost) its IP enters (or leaves) the model as a workload: its own
		// sidecar, if any, can only be generated from then on, so that is a full push.
		if ev.Type == ingest.Updated && hasIP(oldPod) && hasIP(newPod) && g.endpointOnlyPod(oldPod, newPod) {
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
			st := g.state(s)
			if st == nil {
				return true
			}
			deps := st.waypointDeps(s, w)
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
	endpointType := typeURL == xdstype.Endpoint || typeURL == xdstype.Address
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
	c := &cached{g: g, snap: snap, st: g.state(snap)}
	var res xds.Result
	switch mp.Kind {
	case model.KindWaypoint, model.KindSidecar:
		if !envoyTypes[typeURL] {
			return xds.Result{}, nil // nothing of this type for Envoy-style proxies
		}
		if mp.Kind == model.KindWaypoint {
			res.Resources, err = c.waypoint(mp, typeURL)
		} else {
			res.Resources, err = c.sidecar(mp, typeURL)
		}
		// An endpoint-only push only sends what changed of EDS (partial EDS, also in state of the world):
		// no cluster came or went, so nothing needs removing.
		res.Incremental = typeURL == xdstype.Endpoint && !req.Full
	case model.KindZtunnel:
		switch typeURL {
		case xdstype.Address:
			res.Resources, err = c.get("ztunnel|"+xdstype.Short(typeURL), ztunnelDeps, func() ([]*discovery.Resource, error) {
				return ztunnelAddresses(snap)
			})
		case xdstype.Authorization:
			res.Resources, err = c.get("ztunnel|"+xdstype.Short(typeURL)+"|"+mp.Node, ztunnelDeps, func() ([]*discovery.Resource, error) {
				return ztunnelAuthorizations(snap, mp.Node)
			})
		}
	}
	if err != nil {
		return xds.Result{}, err
	}
	return res, nil
}

var envoyTypes = map[string]bool{xdstype.Listener: true, xdstype.Route: true, xdstype.Cluster: true, xdstype.Endpoint: true}

// every returns wildcard dependencies on every config of the given kinds.
func every(kinds ...ingest.Kind) []xds.ConfigKey {
	out := make([]xds.ConfigKey, len(kinds))
	for i, k := range kinds {
		out[i] = xds.ConfigKey{Kind: string(k)}
	}
	return out
}

// sidecarOutboundDeps are what each type of the sidecar's outbound part is built from: every service it
// can reach, and for each type the kinds that shape that service's resources of the type. Routes do not
// reach listeners, clusters or endpoints (every service and subset has its cluster whether routed to or
// not), so a route change regenerates RDS only.
var sidecarOutboundDeps = map[string][]xds.ConfigKey{
	xdstype.Listener: every(ingest.KindService),
	xdstype.Cluster:  every(ingest.KindService, ingest.KindDestinationRule),
	xdstype.Route:    every(ingest.KindService, ingest.KindVirtualService, ingest.KindHTTPRoute, ingest.KindDestinationRule),
	// Endpoint shapes depend on the pod (labels for subsets, HBONE capability) and its namespace (ambient).
	xdstype.Endpoint: every(ingest.KindService, ingest.KindEndpointSlice, ingest.KindPod, ingest.KindDestinationRule, ingest.KindNamespace),
}

var ztunnelDeps = every(ingest.KindNamespace, ingest.KindService, ingest.KindPod, ingest.KindEndpointSlice, ingest.KindGateway, ingest.KindAuthorizationPolicy)

// cached generates from one snapshot through the cache.
type cached struct {
	g    *Generator
	snap *model.Snapshot
	st   *snapState // nil: a snapshot no longer tracked, generated without the cache
}

// get returns the entry under key, building and storing it on a miss. Concurrent misses of one key on
// one snapshot build it once (a push of a thousand sidecars would otherwise build their shared part a
// hundred times at once).
func (c *cached) get(key string, deps []xds.ConfigKey, build func() ([]*discovery.Resource, error)) ([]*discovery.Resource, error) {
	if c.st == nil {
		return build()
	}
	if res, ok := c.g.cache.GetAll(key); ok {
		return res, nil
	}
	fk := flightKey{c.snap, key}
	c.g.flightMu.Lock()
	if f := c.g.flights[fk]; f != nil {
		c.g.flightMu.Unlock()
		<-f.done
		return f.res, f.err
	}
	f := &flight{done: make(chan struct{})}
	c.g.flights[fk] = f
	c.g.flightMu.Unlock()
	f.res, f.err = build()
	if f.err == nil {
		c.g.cache.AddAll(key, deps, c.st.token, f.res)
	}
	c.g.flightMu.Lock()
	delete(c.g.flights, fk)
	c.g.flightMu.Unlock()
	close(f.done)
	return f.res, f.err
}

type flightKey struct {
	snap *model.Snapshot
	key  string
}

type flight struct {
	done chan struct{}
	res  []*discovery.Resource
	err  error
}

// waypoint returns a waypoint's resources of typeURL, shared by its replicas. The key holds the
// waypoint's config generation, which moves whenever a push may change its config (waypointGens).
func (c *cached) waypoint(mp model.Proxy, typeURL string) ([]*discovery.Resource, error) {
	w := c.snap.Waypoint(mp.Namespace, mp.Name)
	gen, ok := uint64(0), false
	if w != nil && c.st != nil {
		gen, ok = c.st.gens[mp.Namespace+"/"+mp.Name]
	}
	if !ok { // unknown waypoint (the error says so) or a waypoint newer than the generations
		return encode(configgen.Resources(c.snap, mp, typeURL))
	}
	key := "waypoint|" + mp.Namespace + "/" + mp.Name + "#" + strconv.FormatUint(gen, 10) + "|" + xdstype.Short(typeURL)
	depSet := c.st.waypointDeps(c.snap, w)
	deps := make([]xds.ConfigKey, 0, len(depSet)+1)
	for k := range depSet {
		deps = append(deps, k)
	}
	deps = append(deps, waypointGenKey(mp.Namespace, mp.Name, gen))
	return c.get(key, deps, func() ([]*discovery.Resource, error) {
		return encode(configgen.Resources(c.snap, mp, typeURL))
	})
}

// sidecar returns a sidecar's resources of typeURL: the outbound part every sidecar (of its namespace, for
// routes) shares, and for listeners and clusters its pod's inbound part.
func (c *cached) sidecar(mp model.Proxy, typeURL string) ([]*discovery.Resource, error) {
	inKey, policies, err := configgen.SidecarInboundKey(c.snap, mp)
	if err != nil {
		return nil, err // no such pod
	}
	key := "sidecar-outbound|" + xdstype.Short(typeURL)
	if typeURL == xdstype.Route {
		key += "|" + mp.Namespace // short host names resolve from the sidecar's namespace
	}
	out, err := c.get(key, sidecarOutboundDeps[typeURL], func() ([]*discovery.Resource, error) {
		return encode(configgen.SidecarOutbound(c.snap, mp.Namespace, typeURL))
	})
	if err != nil || (typeURL != xdstype.Listener && typeURL != xdstype.Cluster) {
		return out, err
	}
	deps := make([]xds.ConfigKey, len(policies))
	for i, k := range policies {
		deps[i] = xds.ConfigKey{Kind: string(k.Kind), Namespace: k.Namespace, Name: k.Name}
	}
	in, err := c.get("sidecar-inbound|"+xdstype.Short(typeURL)+"|"+inKey, deps, func() ([]*discovery.Resource, error) {
		return encode(configgen.SidecarInbound(c.snap, mp, typeURL))
	})
	if err != nil {
		return nil, err
	}
	return slices.Concat(out, in), nil // a new slice: both parts are shared
}

func encode(msgs []proto.Message, err error) ([]*discovery.Resource, error) {
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
	workloads, services, _ := configgen.ZtunnelConfig(s, "")
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
	_, _, policies := configgen.ZtunnelConfig(s, node)
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

// snapState is what the generator keeps per snapshot.
type snapState struct {
	// token is the cache token taken before the snapshot read the store; entries built from it are added
	// with it.
	token xds.CacheToken
	// gens holds each waypoint's config generation (namespace/name), set before the snapshot is used.
	gens map[string]uint64

	mu   sync.Mutex
	deps map[string]map[xds.ConfigKey]struct{} // waypointDeps, computed once
}

func (st *snapState) waypointDeps(s *model.Snapshot, w *model.Waypoint) map[xds.ConfigKey]struct{} {
	key := w.Namespace + "/" + w.Name
	st.mu.Lock()
	defer st.mu.Unlock()
	if d, ok := st.deps[key]; ok {
		return d
	}
	if st.deps == nil {
		st.deps = map[string]map[xds.ConfigKey]struct{}{}
	}
	d := waypointDeps(s, w)
	st.deps[key] = d
	return d
}
