package model

import (
	"fmt"
	"sort"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/controlplane/ingest"
)

// TCPRoute routes the connections to one TCP port of a Service (a Gateway API TCPRoute whose parentRef is the
// Service: GAMMA) or of an ingress gateway (a TCP listener it attaches to), as istiod converts it into a
// VirtualService tcp route. Waypoints, sidecars and the gateway send each connection to one backend, picked
// by weight.
type TCPRoute struct {
	Source ingest.Key
	// Backends share the connections by weight; backends of weight 0 are left out. Empty when every weight
	// is 0: Gateway API then requires connections to be rejected, and Istio routes them to a destination that
	// does not exist, so the proxy closes each one.
	Backends []TCPBackend
}

// TCPBackend is one backendRef of a TCPRoute.
type TCPBackend struct {
	// Service is nil when the backendRef resolves to no Service: its share of connections is closed, as Istio
	// keeps an invalid backend's weight and routes it nowhere. Host then names the Service it asked for ("" for
	// a backend that is not a Service at all).
	Service *Service
	Host    string
	Port    uint32 // 0: the routed port (a backendRef without a port)
	Weight  uint32
}

// PortFor returns the backend port a connection to the routed service port goes to: the backendRef's port,
// else the Service's only port, else the routed port (as istiod picks it).
func (b TCPBackend) PortFor(routed uint32) uint32 {
	switch {
	case b.Port != 0:
		return b.Port
	case b.Service != nil && len(b.Service.Ports) == 1:
		return b.Service.Ports[0].Port
	}
	return routed
}

// TCPRouteFor returns the TCPRoute that routes connections to a service port, or nil.
func (s *Snapshot) TCPRouteFor(svc *Service, port uint32) *TCPRoute {
	return s.tcpRoutes[svc.FQDN][port]
}

// TCPRouteSources returns the TCPRoutes that route some port of an FQDN.
func (s *Snapshot) TCPRouteSources(fqdn string) []ingest.Key {
	var out []ingest.Key
	seen := map[ingest.Key]bool{}
	for _, p := range sortedPorts(s.tcpRoutes[fqdn]) {
		if k := s.tcpRoutes[fqdn][p].Source; !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// buildTCPRoutes binds TCPRoutes to the Service ports and ingress gateway TCP listeners they route. Oldest
// first: a port already routed by an older TCPRoute keeps it (istiod takes the first VirtualService whose tcp
// route matches the port). In the mesh a TCPRoute applies only to ports that are not HTTP: istiod builds an
// HTTP port's waypoint and sidecar chains from HTTP routes alone, so there it would have no effect, and
// meshlab says so.
func (b *builder) buildTCPRoutes() {
	b.s.tcpRoutes = map[string]map[uint32]*TCPRoute{}
	for _, tr := range byAge(b.objs.TCPRoutes) {
		key := ingest.Key{Kind: ingest.KindTCPRoute, Namespace: tr.Namespace, Name: tr.Name}
		if len(tr.Spec.Rules) == 0 {
			b.problem(key, "no rules; it routes nothing")
			continue
		}
		if len(tr.Spec.Rules) > 1 {
			b.problem(key, "rules[1..]: a TCPRoute has one rule; only rules[0] routes")
		}
		route := &TCPRoute{Source: key, Backends: b.tcpBackends(key, tr.Namespace, tr.Spec.Rules[0])}
		for _, parent := range tr.Spec.ParentRefs {
			b.bindTCPRoute(key, tr.Namespace, parent, route)
		}
	}
}

// bindTCPRoute binds route to the TCP ports of its parent Service, or to the TCP listeners of its parent
// ingress Gateway, or reports why it cannot.
func (b *builder) bindTCPRoute(key ingest.Key, routeNS string, parent gwv1.ParentReference, route *TCPRoute) {
	kind := gwv1.Kind("Gateway")
	if parent.Kind != nil {
		kind = *parent.Kind
	}
	ns := routeNS
	if parent.Namespace != nil {
		ns = string(*parent.Namespace)
	}
	if !isServiceRef(parent.Group, &kind) {
		if g := b.ingressGateway(parent, routeNS); g != nil && kind == "Gateway" {
			b.attachTCPToGateway(key, routeNS, g, parent, route)
			return
		}
		b.problem(key, "parentRef %s %s/%s is neither a Service nor a Gateway of class %s; meshlab does not route for it", kind, ns, parent.Name, IngressGatewayClass)
		return
	}
	host := FQDN(string(parent.Name), ns)
	svc := b.s.byHost[host]
	if svc == nil {
		b.problem(key, "parentRef Service %s/%s does not exist", ns, parent.Name)
		return
	}
	var ports []uint32
	if parent.Port != nil {
		p, ok := svc.Port(uint32(*parent.Port))
		switch {
		case !ok:
			b.problem(key, "parentRef Service %s/%s has no port %d", ns, parent.Name, *parent.Port)
			return
		case p.Protocol.IsHTTP():
			b.problem(key, "parentRef Service %s/%s port %d is %s: a TCPRoute has no effect on it (Istio routes an HTTP port by HTTP routes only); use an HTTPRoute", ns, parent.Name, p.Port, p.Protocol)
			return
		}
		ports = []uint32{p.Port}
	} else {
		for _, p := range svc.Ports {
			if !p.Protocol.IsHTTP() {
				ports = append(ports, p.Port)
			}
		}
		if len(ports) == 0 {
			b.problem(key, "parentRef Service %s/%s has only HTTP ports: a TCPRoute has no effect on them (Istio routes an HTTP port by HTTP routes only); use an HTTPRoute", ns, parent.Name)
			return
		}
	}
	for _, port := range ports {
		byPort := b.s.tcpRoutes[host]
		if byPort == nil {
			byPort = map[uint32]*TCPRoute{}
			b.s.tcpRoutes[host] = byPort
		}
		if prev := byPort[port]; prev != nil && prev.Source != key {
			b.problem(key, "parentRef Service %s/%s port %d is already routed by TCPRoute %s/%s; ignored for it", ns, parent.Name, port, prev.Source.Namespace, prev.Source.Name)
			continue
		}
		byPort[port] = route
	}
}

// attachTCPToGateway gives route the TCP ports of gateway g whose listeners accept it (sectionName, port,
// allowedRoutes), unless an older TCPRoute has a port already (a TCP listener forwards to one route).
func (b *builder) attachTCPToGateway(key ingest.Key, routeNS string, g *IngressGateway, parent gwv1.ParentReference, route *TCPRoute) {
	attached := false
	for _, l := range g.Object.Spec.Listeners {
		port := g.Port(uint32(l.Port))
		if _, ok := ListenerAttaches(g.Object, l, routeNS, nil, parent); !ok || l.Protocol != gwv1.TCPProtocolType || port == nil || !port.TCP {
			continue
		}
		attached = true
		if prev := port.TCPRoute; prev != nil && prev.Source != key {
			b.problem(key, "parentRef Gateway %s/%s: listener %s is already routed by TCPRoute %s/%s; ignored for it", g.Namespace, g.Name, l.Name, prev.Source.Namespace, prev.Source.Name)
			continue
		}
		port.TCPRoute = route
	}
	if !attached {
		b.problem(key, "parentRef Gateway %s/%s: no TCP listener accepts the route (check sectionName, port and allowedRoutes)", g.Namespace, g.Name)
	}
}

// tcpBackends converts a rule's backendRefs as istiod does: a weight defaults to 1, weight 0 drops the
// backend, and a backendRef that resolves to no Service keeps its weight (its connections are closed).
// Every weight 0 leaves no backend: every connection is closed, which is what the user asked for.
func (b *builder) tcpBackends(key ingest.Key, ns string, rule gwv1.TCPRouteRule) []TCPBackend {
	var out []TCPBackend
	for j, ref := range rule.BackendRefs {
		weight := uint32(1)
		if ref.Weight != nil {
			if *ref.Weight < 0 {
				// Validation rejects it; never wrap it into a huge uint32.
				b.problem(key, "rules[0].backendRefs[%d]: weight %d is negative; the backend gets no connections", j, *ref.Weight)
				continue
			}
			weight = uint32(*ref.Weight)
		}
		if weight == 0 {
			continue
		}
		be := TCPBackend{Weight: weight}
		if ref.Port != nil {
			be.Port = uint32(*ref.Port)
		}
		where := fmt.Sprintf("rules[0].backendRefs[%d]", j)
		if !isServiceRef(ref.Group, ref.Kind) {
			b.problem(key, "%s: only Service backends are supported; its share of connections (weight %d) is closed", where, weight)
			out = append(out, be)
			continue
		}
		bns := ns
		if ref.Namespace != nil {
			bns = string(*ref.Namespace)
		}
		be.Host = FQDN(string(ref.Name), bns)
		be.Service = b.s.byHost[be.Host]
		switch {
		case be.Service == nil:
			b.problem(key, "%s: Service %s/%s does not exist; its share of connections (weight %d) is closed", where, bns, ref.Name, weight)
		case be.Port != 0:
			if _, ok := be.Service.Port(be.Port); !ok {
				b.problem(key, "%s: Service %s/%s has no port %d; its share of connections (weight %d) is closed", where, bns, ref.Name, be.Port, weight)
				be.Service = nil
			}
		}
		out = append(out, be)
	}
	return out
}

func sortedPorts[V any](m map[uint32]V) []uint32 {
	out := make([]uint32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
