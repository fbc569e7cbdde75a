package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/meshlab/meshlab/api/xdstype"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// pushOrder is the order types are sent in one push: clusters before their endpoints, listeners before
// their routes, so Envoy never points at something it does not have yet (Envoy's recommended ADS order).
var pushOrder = []string{xdstype.Cluster, xdstype.Endpoint, xdstype.Listener, xdstype.Route, xdstype.Secret, xdstype.Address, xdstype.Authorization}

// sortTypes orders type URLs in push order, unknown types last, alphabetically.
func sortTypes(types []string) {
	rank := func(t string) int {
		if i := slices.Index(pushOrder, t); i >= 0 {
			return i
		}
		return len(pushOrder)
	}
	slices.SortFunc(types, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
}

// partialInSotW reports whether a state-of-the-world response of this type may carry only some resources
// (the client keeps the others): true for RDS and EDS, which the client asks for by name. Listeners,
// clusters and unknown types must always be sent whole.
func partialInSotW(typeURL string) bool {
	return typeURL == xdstype.Route || typeURL == xdstype.Endpoint
}

// ConfigKey names one piece of input config: a Kubernetes object kind, namespace and name
// (e.g. {HTTPRoute default reviews}). Generators use the same keys to declare cache dependencies.
type ConfigKey struct {
	Kind      string
	Namespace string
	Name      string
}

func (k ConfigKey) String() string { return k.Kind + "/" + k.Namespace + "/" + k.Name }

// PushRequest describes a change to push. Requests merge: within the debounce window, and again in a
// proxy's pending slot in the push queue.
type PushRequest struct {
	// Full asks for every type a proxy watches to be regenerated. When false the change only touches
	// endpoints, and only the incremental types (EDS, workload addresses) are pushed.
	Full bool
	// ConfigsUpdated names the changed configs. Empty on a Full request means "everything may have
	// changed" (the whole cache is dropped).
	ConfigsUpdated map[ConfigKey]struct{}
	// Reason counts why pushes were asked for (e.g. "config", "endpoint", "proxy-request"), for logs.
	Reason map[string]int
	// Start is when the earliest change merged into this request was received; convergence time is
	// measured from it.
	Start time.Time
	// Snapshot is what the generator's Preparer returned for this push (for meshlab, the model snapshot);
	// when requests merge the newer one wins.
	Snapshot any
	// CacheToken is taken when a proxy's generation starts; pass it to Cache.Add so an entry built from
	// inputs that were invalidated meanwhile is not stored.
	CacheToken CacheToken

	// snapshotSeq orders snapshots so that merging keeps the newest.
	snapshotSeq uint64
}

// NewPushRequest returns a request for the given configs; full as in PushRequest.Full.
func NewPushRequest(full bool, reason string, configs ...ConfigKey) *PushRequest {
	r := &PushRequest{Full: full, Reason: map[string]int{reason: 1}, Start: time.Now()}
	if len(configs) > 0 {
		r.ConfigsUpdated = make(map[ConfigKey]struct{}, len(configs))
		for _, c := range configs {
			r.ConfigsUpdated[c] = struct{}{}
		}
	}
	return r
}

// IsUpdated reports whether the request names key, or names nothing at all on a Full request (which
// means anything may have changed).
func (r *PushRequest) IsUpdated(key ConfigKey) bool {
	if r.Full && len(r.ConfigsUpdated) == 0 {
		return true
	}
	_, ok := r.ConfigsUpdated[key]
	return ok
}

// everything reports whether the request says anything may have changed.
func (r *PushRequest) everything() bool { return r.Full && len(r.ConfigsUpdated) == 0 }

// Merge returns a new request combining r and o; neither is modified. A nil side yields a copy of the
// other.
func (r *PushRequest) Merge(o *PushRequest) *PushRequest {
	if r == nil {
		return o.clone()
	}
	if o == nil {
		return r.clone()
	}
	m := &PushRequest{
		Full:       r.Full || o.Full,
		Reason:     maps.Clone(r.Reason),
		Start:      r.Start,
		Snapshot:   r.Snapshot,
		CacheToken: max(r.CacheToken, o.CacheToken),

		snapshotSeq: r.snapshotSeq,
	}
	if m.Reason == nil {
		m.Reason = map[string]int{}
	}
	for k, v := range o.Reason {
		m.Reason[k] += v
	}
	if o.Start.Before(m.Start) || m.Start.IsZero() {
		m.Start = o.Start
	}
	if o.snapshotSeq >= r.snapshotSeq && o.Snapshot != nil {
		m.Snapshot, m.snapshotSeq = o.Snapshot, o.snapshotSeq
	}
	// A full request that names nothing means everything changed; that absorbs any list.
	if !r.everything() && !o.everything() {
		m.ConfigsUpdated = make(map[ConfigKey]struct{}, len(r.ConfigsUpdated)+len(o.ConfigsUpdated))
		maps.Copy(m.ConfigsUpdated, r.ConfigsUpdated)
		maps.Copy(m.ConfigsUpdated, o.ConfigsUpdated)
	}
	return m
}

// withToken returns a shallow copy carrying token; the maps are shared, as nothing modifies a request's
// maps once it is built.
func (r *PushRequest) withToken(token CacheToken) *PushRequest {
	c := *r
	c.CacheToken = token
	return &c
}

func (r *PushRequest) clone() *PushRequest {
	c := *r
	c.ConfigsUpdated = maps.Clone(r.ConfigsUpdated)
	c.Reason = maps.Clone(r.Reason)
	return &c
}

// Proxy kinds meshlab serves.
const (
	KindWaypoint = "waypoint"
	KindGateway  = "gateway" // an ingress gateway (a Gateway of class istio)
	KindSidecar  = "sidecar"
	KindZtunnel  = "ztunnel"
)

// Node metadata keys a proxy sets to say what it is (Istio uses the same NAMESPACE and NAME keys).
// When absent they are read from a node ID of the form KIND/NAMESPACE/NAME (or ztunnel/NODE), the same
// form `meshlab render --proxy` takes, or Istio's TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local.
const (
	MetaKind      = "KIND"
	MetaNamespace = "NAMESPACE"
	MetaName      = "NAME"
	MetaVersion   = "MESHLAB_VERSION"
)

// Proxy is one connected client as generators see it: what it is (from its node) and what it watches.
// Identity fields never change after connect; the watch list changes as the proxy subscribes, so it is
// read through methods.
type Proxy struct {
	ID        string
	Kind      string // waypoint, sidecar, ztunnel, or what the node says
	Namespace string
	Name      string // pod or gateway name; the node name for ztunnel
	// Pod is POD.NAMESPACE when the node ID is in Istio's form (TYPE~IP~POD.NAMESPACE~DOMAIN): how
	// istioctl names the proxy. A waypoint's Name is its Gateway, shared by its replicas; Pod is not.
	Pod      string
	Cluster  string
	Version  string // the client's meshlab (or Envoy) version, for proxy-status
	Metadata map[string]string

	mu      sync.RWMutex
	watched map[string]*watch
}

// watch is what a proxy asked for of one type.
type watch struct {
	wildcard bool
	names    map[string]struct{}
}

// NewProxy builds a Proxy from an xDS node.
func NewProxy(node *core.Node) *Proxy {
	p := &Proxy{ID: node.GetId(), Cluster: node.GetCluster(), Metadata: map[string]string{}, watched: map[string]*watch{}}
	for k, v := range node.GetMetadata().GetFields() {
		if sv := v.GetStringValue(); sv != "" {
			p.Metadata[k] = sv
		}
	}
	if parts := strings.Split(p.ID, "~"); len(parts) == 4 {
		// Istio's form: TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.DOMAIN
		p.Kind, p.Pod = parts[0], parts[2]
		p.Namespace, _, _ = strings.Cut(parts[3], ".")
		p.Name = strings.TrimSuffix(parts[2], "."+p.Namespace)
	} else if parts := strings.Split(p.ID, "/"); len(parts) == 3 {
		p.Kind, p.Namespace, p.Name = parts[0], parts[1], parts[2]
	} else if len(parts) == 2 {
		p.Kind, p.Name = parts[0], parts[1]
	}
	if v := p.Metadata[MetaKind]; v != "" {
		p.Kind = v
	}
	if v := p.Metadata[MetaNamespace]; v != "" {
		p.Namespace = v
	}
	if v := p.Metadata[MetaName]; v != "" {
		p.Name = v
	}
	p.Version = p.Metadata[MetaVersion]
	if p.Version == "" {
		if bv := node.GetUserAgentBuildVersion().GetVersion(); bv != nil {
			p.Version = fmt.Sprintf("%d.%d.%d", bv.GetMajorNumber(), bv.GetMinorNumber(), bv.GetPatch())
		} else {
			p.Version = node.GetUserAgentVersion()
		}
	}
	return p
}

// WatchedTypes returns the type URLs the proxy subscribes to, in push order.
func (p *Proxy) WatchedTypes() []string {
	p.mu.RLock()
	types := slices.Collect(maps.Keys(p.watched))
	p.mu.RUnlock()
	sortTypes(types)
	return types
}

// Watched returns whether the proxy subscribes to typeURL, and if it asked for specific names, which
// (sorted). wildcard means "everything of this type" and names is then nil.
func (p *Proxy) Watched(typeURL string) (names []string, wildcard, ok bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	w := p.watched[typeURL]
	if w == nil {
		return nil, false, false
	}
	if w.wildcard {
		return nil, true, true
	}
	names = slices.Sorted(maps.Keys(w.names))
	return names, false, true
}

// Wants reports whether the proxy's subscription to typeURL includes name.
func (p *Proxy) Wants(typeURL, name string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	w := p.watched[typeURL]
	if w == nil {
		return false
	}
	if w.wildcard {
		return true
	}
	_, ok := w.names[name]
	return ok
}

// setWatch replaces the subscription of one type (state of the world). No names means wildcard.
func (p *Proxy) setWatch(typeURL string, names []string) (changed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	nw := &watch{names: map[string]struct{}{}}
	for _, n := range names {
		if n == "*" {
			nw.wildcard = true
			continue
		}
		nw.names[n] = struct{}{}
	}
	if len(names) == 0 {
		nw.wildcard = true
	}
	if nw.wildcard {
		nw.names = nil
	}
	old := p.watched[typeURL]
	p.watched[typeURL] = nw
	return old == nil || old.wildcard != nw.wildcard || !maps.Equal(old.names, nw.names)
}

// updateWatch applies a delta subscription change and returns the names newly subscribed. The first
// request of a type with no names is a wildcard subscription.
func (p *Proxy) updateWatch(typeURL string, subscribe, unsubscribe []string) (added []string, first bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.watched[typeURL]
	if w == nil {
		first = true
		w = &watch{names: map[string]struct{}{}, wildcard: len(subscribe) == 0}
		p.watched[typeURL] = w
	}
	for _, n := range subscribe {
		if n == "*" {
			w.wildcard = true
			continue
		}
		if _, ok := w.names[n]; !ok {
			w.names[n] = struct{}{}
			added = append(added, n)
		}
	}
	for _, n := range unsubscribe {
		if n == "*" {
			w.wildcard = false
			continue
		}
		delete(w.names, n)
	}
	return added, first
}

// Generator builds configuration for proxies. It is the seam between the server (when and how to send)
// and meshlab's model and generators (what to send).
type Generator interface {
	// Affects reports whether req can change anything proxy receives. Only affected proxies are pushed.
	Affects(proxy *Proxy, req *PushRequest) bool
	// Generate builds the resources of typeURL for proxy. req is the (merged) change that caused the
	// push; it must not be modified. An error keeps the proxy on what it last received for that type.
	Generate(proxy *Proxy, typeURL string, req *PushRequest) (Result, error)
}

// Preparer is implemented by generators that rebuild shared state once per debounced push, before any
// proxy is generated for it; for meshlab, the immutable model snapshot (istiod's PushContext). What it
// returns travels in PushRequest.Snapshot. It is called for full pushes, and once before the first
// connection if no push happened yet; endpoint-only pushes reuse the previous snapshot.
type Preparer interface {
	Prepare(req *PushRequest) (snapshot any, err error)
}

// Result is what a Generator returns for one type.
type Result struct {
	// Resources are named, encoded resources (see Marshal). Their Version may be left empty: the server
	// sets it to a hash of the content.
	Resources []*discovery.Resource
	// Incremental marks Resources as only the changed ones (a partial EDS push): resources the proxy has
	// and that are not listed stay as they are, except those named in Removed. Otherwise Resources are
	// the whole set and anything the proxy has beyond them is removed.
	Incremental bool
	// Removed names resources deleted since the last push; only read when Incremental.
	Removed []string
}

// Marshal encodes msg as a named resource, deterministically so that equal messages hash equally.
func Marshal(name string, msg proto.Message) (*discovery.Resource, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", name, err)
	}
	any := &anypb.Any{TypeUrl: resourcev3.APITypePrefix + string(msg.ProtoReflect().Descriptor().FullName()), Value: b}
	return &discovery.Resource{Name: name, Resource: any, Version: contentHash(b)}, nil
}

// contentHash is the version of one resource: it changes exactly when its encoding does.
func contentHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// GeneratorFuncs adapts two functions to a Generator. A nil AffectsFunc affects every proxy.
type GeneratorFuncs struct {
	AffectsFunc  func(proxy *Proxy, req *PushRequest) bool
	GenerateFunc func(proxy *Proxy, typeURL string, req *PushRequest) (Result, error)
}

var _ Generator = GeneratorFuncs{}

// Affects calls AffectsFunc, or returns true.
func (g GeneratorFuncs) Affects(proxy *Proxy, req *PushRequest) bool {
	if g.AffectsFunc == nil {
		return true
	}
	return g.AffectsFunc(proxy, req)
}

// Generate calls GenerateFunc.
func (g GeneratorFuncs) Generate(proxy *Proxy, typeURL string, req *PushRequest) (Result, error) {
	return g.GenerateFunc(proxy, typeURL, req)
}
