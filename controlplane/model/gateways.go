package model

import (
	"fmt"
	"sort"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/controlplane/ingest"
)

// Ingress gateways: a Gateway of class istio is an ingress proxy (Istio's "gateway" deployment), run by the
// gateway controller as NAME-istio and configured like istiod configures it: one listener per port, the
// route configuration http.PORT with a virtual host per hostname of the HTTPRoutes attached to it.
const (
	// IngressGatewayClass is the GatewayClass of ingress gateways (Istio's).
	IngressGatewayClass = "istio"
	// LabelGatewayClassName is on everything the gateway controller creates (Istio's).
	LabelGatewayClassName = "gateway.networking.k8s.io/gateway-class-name"
)

// IngressGateway is a Gateway of class istio.
type IngressGateway struct {
	Name, Namespace string
	// Ports are the gateway's HTTP ports, sorted, each with its virtual hosts.
	Ports  []*GatewayPort
	Object *gwv1.Gateway
}

// Key returns the store key of the Gateway.
func (g *IngressGateway) Key() ingest.Key {
	return ingest.Key{Kind: ingest.KindGateway, Namespace: g.Namespace, Name: g.Name}
}

// DeploymentName is the Deployment, Service and ServiceAccount that run the gateway: NAME-istio (Istio's).
func (g *IngressGateway) DeploymentName() string { return GatewayDeploymentName(g.Name) }

// GatewayDeploymentName returns NAME-istio, what Istio names an ingress Gateway's objects.
func GatewayDeploymentName(gateway string) string { return gateway + "-istio" }

// GatewayPort is one listening port of an ingress gateway; listeners sharing a port share it.
type GatewayPort struct {
	Port uint32
	// TCP is set for a port of TCP listeners: connections are proxied by TCPRoute (no virtual hosts).
	TCP bool
	// VirtualHosts are sorted by hostname; "*" when a route names no hostname and its listener none.
	VirtualHosts []*GatewayVirtualHost
	// TCPRoute routes a TCP port's connections: the oldest TCPRoute attached to it, nil when none is.
	TCPRoute *TCPRoute
}

// GatewayVirtualHost is the routing for one hostname on one port, in precedence order.
type GatewayVirtualHost struct {
	Hostname string
	Rules    []*RouteRule
}

func (b *builder) buildIngressGateways() {
	for _, gw := range b.objs.Gateways {
		if string(gw.Spec.GatewayClassName) != IngressGatewayClass {
			continue
		}
		g := &IngressGateway{Name: gw.Name, Namespace: gw.Namespace, Object: gw}
		ports := map[uint32]*GatewayPort{}
		for _, l := range gw.Spec.Listeners {
			if l.Protocol != gwv1.HTTPProtocolType && l.Protocol != gwv1.TCPProtocolType {
				b.problem(g.Key(), "listener %s: protocol %s is not implemented by meshlab's gateway (only HTTP and TCP); the listener is ignored", l.Name, l.Protocol)
				continue
			}
			tcp := l.Protocol == gwv1.TCPProtocolType
			switch p := ports[uint32(l.Port)]; {
			case p == nil:
				ports[uint32(l.Port)] = &GatewayPort{Port: uint32(l.Port), TCP: tcp}
			case p.TCP != tcp:
				b.problem(g.Key(), "listener %s: port %d already has a listener of another protocol; the listener is ignored", l.Name, l.Port)
			}
		}
		for _, p := range ports {
			g.Ports = append(g.Ports, p)
		}
		sort.Slice(g.Ports, func(i, j int) bool { return g.Ports[i].Port < g.Ports[j].Port })
		b.s.gateways = append(b.s.gateways, g)
	}
	sort.Slice(b.s.gateways, func(i, j int) bool {
		a, c := b.s.gateways[i], b.s.gateways[j]
		return a.Namespace < c.Namespace || (a.Namespace == c.Namespace && a.Name < c.Name)
	})
}

// LabelIngressUseWaypoint asks Istio's ingress gateway to send a service's traffic through its waypoint.
const LabelIngressUseWaypoint = "istio.io/ingress-use-waypoint"

// checkIngressWaypoint reports the backends of g that ask, with istio.io/ingress-use-waypoint, to be
// reached through their waypoint: meshlab's gateway sends to their pods directly (Istio's default).
func (b *builder) checkIngressWaypoint(g *IngressGateway) {
	for _, svc := range g.Backends() {
		if svc.Labels[LabelIngressUseWaypoint] == "true" && svc.Waypoint != nil {
			b.problem(svc.Key(), "label %s=true: meshlab does not implement it; ingress gateway %s/%s sends to the pods directly, not through waypoint %s/%s",
				LabelIngressUseWaypoint, g.Namespace, g.Name, svc.Waypoint.Namespace, svc.Waypoint.Name)
		}
	}
}

// ingressGateway returns the ingress gateway a parentRef of an HTTPRoute in namespace ns names, or nil.
func (b *builder) ingressGateway(ref gwv1.ParentReference, ns string) *IngressGateway {
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	for _, g := range b.s.gateways {
		if g.Namespace == ns && g.Name == string(ref.Name) {
			return g
		}
	}
	return nil
}

// Port returns the gateway's port numbered n, or nil.
func (g *IngressGateway) Port(n uint32) *GatewayPort {
	for _, p := range g.Ports {
		if p.Port == n {
			return p
		}
	}
	return nil
}

// attachToGateway adds an HTTPRoute's or GRPCRoute's rules to the virtual hosts of the gateway listeners it
// attaches to.
func (b *builder) attachToGateway(g *IngressGateway, gr gatewayRoute, ref gwv1.ParentReference) {
	key, hr := gr.key, gr.route
	attached := false
	for _, l := range g.Object.Spec.Listeners {
		hosts, ok := ListenerAttaches(g.Object, l, hr.Namespace, hr.Spec.Hostnames, ref)
		port := g.Port(uint32(l.Port))
		if !ok || l.Protocol != gwv1.HTTPProtocolType || port == nil || port.TCP {
			continue
		}
		attached = true
		for i := range hr.Spec.Rules {
			rules := splitMatches(b.ruleOf(gr, i))
			for _, h := range hosts {
				vh := port.virtualHost(h)
				vh.Rules = append(vh.Rules, rules...)
			}
		}
	}
	if !attached {
		b.problem(key, "parentRef Gateway %s/%s: no listener accepts the route (check sectionName, port, hostnames and allowedRoutes)", g.Namespace, g.Name)
	}
}

func (p *GatewayPort) virtualHost(hostname string) *GatewayVirtualHost {
	for _, vh := range p.VirtualHosts {
		if vh.Hostname == hostname {
			return vh
		}
	}
	vh := &GatewayVirtualHost{Hostname: hostname}
	p.VirtualHosts = append(p.VirtualHosts, vh)
	sort.Slice(p.VirtualHosts, func(i, j int) bool { return p.VirtualHosts[i].Hostname < p.VirtualHosts[j].Hostname })
	return vh
}

// ListenerAttaches reports whether a route (an HTTPRoute or a GRPCRoute: they attach alike) in namespace ns
// with these hostnames, through its parentRef ref, attaches to listener l of Gateway gw, and for which
// hostnames: the route's hostnames that the listener's hostname admits (or the listener's, when narrower),
// "*" when neither names one. The gateway controller counts attachedRoutes with it, and the model routes
// with it, so that status and config agree.
func ListenerAttaches(gw *gwv1.Gateway, l gwv1.Listener, ns string, hostnames []gwv1.Hostname, ref gwv1.ParentReference) ([]string, bool) {
	if ref.SectionName != nil && *ref.SectionName != l.Name {
		return nil, false
	}
	if ref.Port != nil && *ref.Port != l.Port {
		return nil, false
	}
	if !allowsNamespace(gw, l, ns) {
		return nil, false
	}
	listenerHost := ""
	if l.Hostname != nil {
		listenerHost = string(*l.Hostname)
	}
	if len(hostnames) == 0 {
		if listenerHost == "" {
			return []string{"*"}, true
		}
		return []string{listenerHost}, true
	}
	var out []string
	for _, h := range hostnames {
		if m := intersectHost(string(h), listenerHost); m != "" {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out, len(out) > 0
}

// allowsNamespace applies a listener's allowedRoutes.namespaces (default: the Gateway's own namespace).
// A label selector is not implemented: such a listener admits only its own namespace, and validation
// warns about it.
func allowsNamespace(gw *gwv1.Gateway, l gwv1.Listener, ns string) bool {
	if l.AllowedRoutes != nil && l.AllowedRoutes.Namespaces != nil && l.AllowedRoutes.Namespaces.From != nil &&
		*l.AllowedRoutes.Namespaces.From == gwv1.NamespacesFromAll {
		return true
	}
	return ns == gw.Namespace
}

// intersectHost returns the more specific of a route hostname and a listener hostname when they overlap
// ("" for the listener means any), or "" when they do not.
func intersectHost(route, listener string) string {
	switch {
	case listener == "" || route == listener:
		return route
	case strings.HasPrefix(listener, "*.") && strings.HasSuffix(route, listener[1:]):
		return route
	case strings.HasPrefix(route, "*.") && strings.HasSuffix(listener, route[1:]):
		return listener
	}
	return ""
}

// IngressGateways returns every Gateway of class istio, sorted by namespace and name.
func (s *Snapshot) IngressGateways() []*IngressGateway { return s.gateways }

// IngressGateway returns the ingress gateway namespace/name, or nil.
func (s *Snapshot) IngressGateway(namespace, name string) *IngressGateway {
	for _, g := range s.gateways {
		if g.Namespace == namespace && g.Name == name {
			return g
		}
	}
	return nil
}

// Backends returns the services the gateway's routes send or mirror to, sorted by FQDN.
func (g *IngressGateway) Backends() []*Service {
	seen := map[*Service]bool{}
	var out []*Service
	add := func(s *Service) {
		if s != nil && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, p := range g.Ports {
		for _, vh := range p.VirtualHosts {
			for _, r := range vh.Rules {
				for _, d := range r.Destinations {
					add(d.Service)
				}
				for _, m := range r.Mirrors {
					add(m.Destination.Service)
				}
			}
		}
		if p.TCPRoute != nil {
			for _, be := range p.TCPRoute.Backends {
				add(be.Service)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FQDN < out[j].FQDN })
	return out
}

// Sources returns the routes (HTTPRoutes, GRPCRoutes, TCPRoutes) attached to the gateway, sorted.
func (g *IngressGateway) Sources() []ingest.Key {
	seen := map[ingest.Key]bool{}
	var out []ingest.Key
	add := func(k ingest.Key) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, p := range g.Ports {
		for _, vh := range p.VirtualHosts {
			for _, r := range vh.Rules {
				add(r.Source)
			}
		}
		if p.TCPRoute != nil {
			add(p.TCPRoute.Source)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func (g *IngressGateway) String() string { return fmt.Sprintf("%s/%s", g.Namespace, g.Name) }
