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
//     ztunnel on workloads, services, waypoints and policies but never on L7 routing; an ingress gateway,
//     like a sidecar, on every config kind its routes may read;
//   - what to send: Envoy resources from package configgen for waypoints, gateways and sidecars, and the workload API
//     (Address, Authorization) converted from configgen.ZtunnelConfig for ztunnel.
//
// Proxies are identified by their xDS node (see xds.NewProxy). Accepted node IDs, for each kind:
//
//	waypoint/NAMESPACE/GATEWAY      meshlab's form, the same as `meshlab render --proxy`
//	waypoint~IP~POD.NS~NS.svc.cluster.local
//	                                Istio's form: POD is mapped to its Gateway through the pod label
//	                                gateway.networking.k8s.io/gateway-name (or metadata NAME=GATEWAY)
//	gateway/NAMESPACE/GATEWAY, or router~IP~POD.NS~NS.svc.cluster.local with metadata KIND=gateway
//	                                an ingress gateway (class istio); POD maps to its Gateway as above
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
	"strconv"
	"strings"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/meshlab/meshlab/api/xdstype"
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

// gatewayOf returns the Gateway an ingress gateway proxy runs for: the node's name when an ingress gateway
// of that name exists, else the gateway-name label of the pod the node names (Istio's router node IDs name
// the pod).
func gatewayOf(s *model.Snapshot, p *xds.Proxy) (namespace, name string) {
	if s.IngressGateway(p.Namespace, p.Name) != nil {
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
	case xds.KindGateway:
		ns, name := gatewayOf(s, p)
		return model.Proxy{Kind: model.KindGateway, Namespace: ns, Name: name}, nil
	case xds.KindZtunnel:
		node := p.Metadata[MetaNodeName]
		if node == "" {
			node = p.Name
		}
		return model.Proxy{Kind: model.KindZtunnel, Name: node, Node: node}, nil
	}
	return model.Proxy{}, fmt.Errorf("proxy %s: unknown kind %q; want waypoint, gateway, sidecar or ztunnel", p.ID, p.Kind)
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
	case model.KindWaypoint, model.KindSidecar, model.KindGateway:
		if !envoyTypes[typeURL] {
			return xds.Result{}, nil // nothing of this type for Envoy-style proxies
		}
		switch mp.Kind {
		case model.KindWaypoint:
			res.Resources, err = c.waypoint(mp, typeURL)
		case model.KindGateway:
			// Few and small: generated for each push, without the cache.
			res.Resources, err = c.gateway(mp, typeURL)
		default:
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
