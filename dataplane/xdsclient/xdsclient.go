// Package xdsclient is meshlab's ADS client for Envoy-style proxies (waypoints, sidecars): one
// state-of-the-world aggregated stream over gRPC that subscribes to listeners and clusters (wildcard),
// then to the route configurations and endpoint assignments they reference, as Envoy does. Every response
// is checked by the caller's Apply on the whole candidate config: what applies is ACKed, what does not is
// NACKed with the error as error_detail, and the last good config stays in force. The stream reconnects
// with jittered exponential back-off, re-sending the versions it holds.
package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/meshlab/meshlab/api/xdstype"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

var allTypes = []string{xdstype.Cluster, xdstype.Listener, xdstype.Endpoint, xdstype.Route}

// Snapshot is a complete config: the resources of every type, sorted by name, and the versions accepted.
type Snapshot struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	// Versions maps a type URL to the version_info last accepted.
	Versions map[string]string
	// Meta maps a type URL and a resource name to when that resource last changed: the version_info
	// of the response that brought its current content and the time the client accepted it (what
	// Envoy's config dump shows per resource). Only on snapshots from Snapshot, not on candidates.
	Meta map[string]map[string]ResourceMeta
}

// ResourceMeta is when one resource last changed.
type ResourceMeta struct {
	Version     string
	LastUpdated time.Time
}

// Options configure a Client.
type Options struct {
	// Address is the ADS server, host:port. Required.
	Address string
	// Node identifies the proxy (see NewNode). Required.
	Node *corev3.Node
	// DialOptions for gRPC; nil means plaintext.
	DialOptions []grpc.DialOption
	// Apply validates and installs a candidate config; an error rejects it (NACK) and its text becomes
	// the error_detail. Required.
	Apply func(Snapshot) error
	// Logf reports stream events; nil discards.
	Logf func(format string, args ...any)
	// MinBackoff and MaxBackoff bound reconnection delays (default 200ms and 10s).
	MinBackoff, MaxBackoff time.Duration
}

// TypeStatus is the client's view of one type.
type TypeStatus struct {
	Version     string    // last accepted version
	Nonce       string    // nonce of the last response
	Names       []string  // subscribed names; nil for a wildcard subscription
	Resources   int       // resources held
	LastError   string    // error_detail of the last NACK, cleared by the next ACK
	LastUpdated time.Time // when the last accepted response arrived
}

// Client is an ADS client. Run drives it.
type Client struct {
	opts Options

	mu          sync.Mutex
	state       map[string]*typeState
	connected   bool
	applied     bool
	initialized bool
}

type typeState struct {
	version, nonce string
	names          []string // nil: wildcard
	resources      map[string]proto.Message
	meta           map[string]ResourceMeta
	lastErr        string
	updated        time.Time
	// answered: a response (accepted or rejected) arrived while the type was subscribed. Like the
	// targets of Envoy's init manager, a type is done with its first response either way.
	answered bool
}

// New returns a client; nothing happens until Run.
func New(opts Options) (*Client, error) {
	if opts.Address == "" || opts.Node == nil || opts.Apply == nil {
		return nil, errors.New("xdsclient: Address, Node and Apply are required")
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.DialOptions == nil {
		opts.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	c := &Client{opts: opts, state: map[string]*typeState{}}
	for _, t := range allTypes {
		c.state[t] = &typeState{resources: map[string]proto.Message{}, meta: map[string]ResourceMeta{}}
	}
	// Routes and endpoints are asked for by name once listeners and clusters name them.
	c.state[xdstype.Route].names = []string{}
	c.state[xdstype.Endpoint].names = []string{}
	return c, nil
}

// NewNode builds the node a meshlab proxy presents: id KIND/NAMESPACE/NAME and the metadata the control
// plane reads (KIND, NAMESPACE, NAME, INSTANCE_IPS, MESHLAB_VERSION).
func NewNode(kind, namespace, name string, ips []string, version string) *corev3.Node {
	md := map[string]any{"KIND": kind, "NAMESPACE": namespace, "NAME": name, "INSTANCE_IPS": strings.Join(ips, ",")}
	if version != "" {
		md["MESHLAB_VERSION"] = version
	}
	s, _ := structpb.NewStruct(md)
	return &corev3.Node{Id: kind + "/" + namespace + "/" + name, Cluster: "Kubernetes", Metadata: s, UserAgentName: "meshlab", UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: version}}
}

// IstioNodeID is a node ID in Istio's form, TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local, where TYPE
// is Istio's proxy type (sidecar, router for gateways and waypoints, ztunnel). istioctl lists and asks for
// a proxy by its POD.NAMESPACE part.
func IstioNodeID(proxyType, ip, pod, namespace string) string {
	return proxyType + "~" + ip + "~" + pod + "." + namespace + "~" + namespace + ".svc.cluster.local"
}

// NewRouterNode is the node of a router proxy (a waypoint or an ingress gateway replica): NewNode's, with
// Istio's router~IP~POD.NAMESPACE~... ID when the pod and an IP are known, so that each replica is a proxy
// of its own for proxy-status while the metadata still name the Gateway whose config they all get.
func NewRouterNode(kind, namespace, name, pod string, ips []string, version string) *corev3.Node {
	node := NewNode(kind, namespace, name, ips, version)
	if pod != "" && len(ips) > 0 {
		node.Id = IstioNodeID("router", ips[0], pod, namespace)
	}
	return node
}

// Run keeps a stream open until ctx ends, reconnecting with back-off.
func (c *Client) Run(ctx context.Context) error {
	delay := c.opts.MinBackoff
	for {
		progressed, err := c.session(ctx)
		c.setConnected(false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if progressed {
			delay = c.opts.MinBackoff
		}
		wait := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
		c.opts.Logf("xDS stream to %s ended: %v; reconnecting in %v", c.opts.Address, err, wait.Round(time.Millisecond))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay = min(2*delay, c.opts.MaxBackoff)
	}
}

func (c *Client) setConnected(v bool) {
	c.mu.Lock()
	c.connected = v
	c.mu.Unlock()
}

// Connected reports whether a stream is open.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// Applied reports whether any config has been accepted.
func (c *Client) Applied() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied
}

// Initialized reports whether the initial config is complete, as Envoy's init manager decides that a
// proxy may go LIVE: clusters and listeners (wildcard) have had their first response, and so have the
// endpoints the clusters named and the route configurations the listeners named (cluster and listener
// warming). A rejected first response counts as one, as in Envoy, so a bad config does not hold a proxy
// in PRE_INITIALIZING forever. Once true it stays true: later changes warm without un-readying the proxy.
func (c *Client) Initialized() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.initialized {
		return true
	}
	for _, t := range allTypes {
		st := c.state[t]
		subscribed := st.names == nil || len(st.names) > 0
		if subscribed && !st.answered {
			return false
		}
	}
	c.initialized = true
	return true
}

// Node is the node the client presents.
func (c *Client) Node() *corev3.Node { return c.opts.Node }

// Address is the ADS server the client dials.
func (c *Client) Address() string { return c.opts.Address }

// session runs one stream; progressed says whether it got any response (which resets the back-off).
func (c *Client) session(ctx context.Context) (progressed bool, err error) {
	conn, err := grpc.NewClient(c.opts.Address, c.opts.DialOptions...)
	if err != nil {
		return false, fmt.Errorf("dialling %s: %w", c.opts.Address, err)
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		return false, fmt.Errorf("opening ADS stream: %w", err)
	}
	c.setConnected(true)
	// Subscribe: wildcard clusters and listeners; by name the routes and endpoints already known (after
	// a reconnect), each with the version held so the server can skip what is current.
	first := true
	for _, t := range allTypes {
		c.mu.Lock()
		st := c.state[t]
		req := &discoveryv3.DiscoveryRequest{TypeUrl: t, VersionInfo: st.version, ResourceNames: slices.Clone(st.names)}
		skip := st.names != nil && len(st.names) == 0
		c.mu.Unlock()
		if skip {
			continue
		}
		if first {
			req.Node = c.opts.Node
			first = false
		}
		if err := stream.Send(req); err != nil {
			return false, fmt.Errorf("subscribing to %s: %w", xdstype.Short(t), err)
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return progressed, fmt.Errorf("receiving: %w", err)
		}
		progressed = true
		for _, req := range c.handle(resp) {
			if err := stream.Send(req); err != nil {
				return progressed, fmt.Errorf("sending %s request: %w", xdstype.Short(req.TypeUrl), err)
			}
		}
	}
}

// handle processes one response and returns the requests to send: the ACK or NACK, then any change of
// subscription it causes.
func (c *Client) handle(resp *discoveryv3.DiscoveryResponse) []*discoveryv3.DiscoveryRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := resp.GetTypeUrl()
	st, ok := c.state[t]
	if !ok {
		return []*discoveryv3.DiscoveryRequest{{TypeUrl: t, ResponseNonce: resp.GetNonce(),
			ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: "unsupported type " + t}}}
	}
	st.answered = true
	nack := func(err error) []*discoveryv3.DiscoveryRequest {
		st.nonce = resp.GetNonce()
		st.lastErr = err.Error()
		c.opts.Logf("xDS: rejecting %s version %s: %v", xdstype.Short(t), resp.GetVersionInfo(), err)
		return []*discoveryv3.DiscoveryRequest{{TypeUrl: t, VersionInfo: st.version, ResponseNonce: resp.GetNonce(),
			ResourceNames: slices.Clone(st.names), ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}}}
	}
	candidate := map[string]proto.Message{}
	if st.names != nil {
		// Routes and endpoints: a response updates the named resources it carries; others are kept.
		for n, r := range st.resources {
			candidate[n] = r
		}
	}
	for _, a := range resp.GetResources() {
		if a.GetTypeUrl() != t {
			return nack(fmt.Errorf("response of type %s carries a %s", t, a.GetTypeUrl()))
		}
		msg, err := a.UnmarshalNew()
		if err != nil {
			return nack(fmt.Errorf("decoding %s: %w", xdstype.Short(t), err))
		}
		name := resourceName(msg)
		if st.names != nil && !slices.Contains(st.names, name) {
			continue // not subscribed (any more)
		}
		candidate[name] = msg
	}
	snap := c.snapshotLocked()
	setType(&snap, t, candidate)
	if err := c.opts.Apply(snap); err != nil {
		return nack(err)
	}
	now := time.Now()
	meta := make(map[string]ResourceMeta, len(candidate))
	for n, m := range candidate {
		if old, ok := st.resources[n]; ok && proto.Equal(old, m) {
			meta[n] = st.meta[n]
		} else {
			meta[n] = ResourceMeta{Version: resp.GetVersionInfo(), LastUpdated: now}
		}
	}
	st.resources, st.meta = candidate, meta
	st.version, st.nonce, st.lastErr, st.updated = resp.GetVersionInfo(), resp.GetNonce(), "", now
	c.applied = true
	out := []*discoveryv3.DiscoveryRequest{{TypeUrl: t, VersionInfo: st.version, ResponseNonce: st.nonce, ResourceNames: slices.Clone(st.names)}}
	switch t {
	case xdstype.Listener:
		out = append(out, c.resubscribe(xdstype.Route, routeNames(candidate))...)
	case xdstype.Cluster:
		out = append(out, c.resubscribe(xdstype.Endpoint, edsNames(candidate))...)
	}
	return out
}

// resubscribe changes the names of a by-name type; it returns the request to send if they changed.
func (c *Client) resubscribe(t string, names []string) []*discoveryv3.DiscoveryRequest {
	st := c.state[t]
	if slices.Equal(st.names, names) {
		return nil
	}
	if len(st.names) == 0 && len(names) > 0 {
		st.answered = false // newly subscribed: wait for its first response
	}
	st.names = names
	for n := range st.resources {
		if !slices.Contains(names, n) {
			delete(st.resources, n)
			delete(st.meta, n)
		}
	}
	return []*discoveryv3.DiscoveryRequest{{TypeUrl: t, VersionInfo: st.version, ResponseNonce: st.nonce, ResourceNames: slices.Clone(names)}}
}

func routeNames(listeners map[string]proto.Message) []string {
	set := map[string]bool{}
	for _, m := range listeners {
		l := m.(*listenerv3.Listener)
		chains := append(slices.Clone(l.GetFilterChains()), l.GetDefaultFilterChain())
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				h := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig().MessageIs(h) && f.GetTypedConfig().UnmarshalTo(h) == nil {
					if n := h.GetRds().GetRouteConfigName(); n != "" {
						set[n] = true
					}
				}
			}
		}
	}
	return sortedKeys(set)
}

func edsNames(clusters map[string]proto.Message) []string {
	set := map[string]bool{}
	for _, m := range clusters {
		c := m.(*clusterv3.Cluster)
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		n := c.GetEdsClusterConfig().GetServiceName()
		if n == "" {
			n = c.GetName()
		}
		set[n] = true
	}
	return sortedKeys(set)
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	case interface{ GetName() string }:
		return r.GetName()
	}
	return ""
}

// Snapshot returns the config currently accepted, with each resource's ResourceMeta.
func (c *Client) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.snapshotLocked()
	s.Meta = map[string]map[string]ResourceMeta{}
	for _, t := range allTypes {
		m := make(map[string]ResourceMeta, len(c.state[t].meta))
		for n, v := range c.state[t].meta {
			m[n] = v
		}
		s.Meta[t] = m
	}
	return s
}

func (c *Client) snapshotLocked() Snapshot {
	s := Snapshot{Versions: map[string]string{}}
	for _, t := range allTypes {
		st := c.state[t]
		setType(&s, t, st.resources)
		if st.version != "" {
			s.Versions[t] = st.version
		}
	}
	return s
}

func setType(s *Snapshot, t string, res map[string]proto.Message) {
	names := make([]string, 0, len(res))
	for n := range res {
		names = append(names, n)
	}
	sort.Strings(names)
	switch t {
	case xdstype.Listener:
		s.Listeners = nil
		for _, n := range names {
			s.Listeners = append(s.Listeners, res[n].(*listenerv3.Listener))
		}
	case xdstype.Route:
		s.Routes = nil
		for _, n := range names {
			s.Routes = append(s.Routes, res[n].(*routev3.RouteConfiguration))
		}
	case xdstype.Cluster:
		s.Clusters = nil
		for _, n := range names {
			s.Clusters = append(s.Clusters, res[n].(*clusterv3.Cluster))
		}
	case xdstype.Endpoint:
		s.Endpoints = nil
		for _, n := range names {
			s.Endpoints = append(s.Endpoints, res[n].(*endpointv3.ClusterLoadAssignment))
		}
	}
}

// Status reports each type's state, keyed by short name (cds, lds, eds, rds).
func (c *Client) Status() map[string]TypeStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]TypeStatus{}
	for _, t := range allTypes {
		st := c.state[t]
		out[strings.ToLower(xdstype.Short(t))] = TypeStatus{Version: st.version, Nonce: st.nonce, Names: slices.Clone(st.names),
			Resources: len(st.resources), LastError: st.lastErr, LastUpdated: st.updated}
	}
	return out
}
