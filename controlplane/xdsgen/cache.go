package xdsgen

import (
	"slices"
	"strconv"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/xds"
)

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
// can reach, and for each type the kinds that shape that service's resources of the type. HTTP routes do
// not reach listeners, clusters or endpoints (every service and subset has its cluster whether routed to or
// not), so an HTTP route change regenerates RDS only; a TCPRoute sets a TCP chain's clusters (LDS).
var sidecarOutboundDeps = map[string][]xds.ConfigKey{
	xdstype.Listener: every(ingest.KindService, ingest.KindTCPRoute),
	xdstype.Cluster:  every(ingest.KindService, ingest.KindDestinationRule),
	xdstype.Route:    every(ingest.KindService, ingest.KindVirtualService, ingest.KindHTTPRoute, ingest.KindGRPCRoute, ingest.KindDestinationRule),
	// Endpoint shapes depend on the pod (labels for subsets, HBONE capability) and its namespace (ambient).
	xdstype.Endpoint: every(ingest.KindService, ingest.KindEndpointSlice, ingest.KindPod, ingest.KindDestinationRule, ingest.KindNamespace),
}

var ztunnelDeps = every(ingest.KindNamespace, ingest.KindService, ingest.KindPod, ingest.KindEndpointSlice, ingest.KindGateway, ingest.KindAuthorizationPolicy, ingest.KindPeerAuthentication)

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

// gateway returns an ingress gateway's resources of typeURL, generated for each push: gateways are few,
// their config small, and none shares it with another.
func (c *cached) gateway(mp model.Proxy, typeURL string) ([]*discovery.Resource, error) {
	return encode(configgen.Resources(c.snap, mp, typeURL))
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
