package configgen

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
)

// Sidecar listener names and capture ports (Istio's).
const (
	ListenerVirtualOutbound = "virtualOutbound"
	ListenerVirtualInbound  = "virtualInbound"
	OutboundCapturePort     = 15001
	InboundCapturePort      = 15006
	// InboundBindAddress is the source address a sidecar uses towards its own app, so the app sees local
	// traffic and capture rules can tell it apart.
	InboundBindAddress = "127.0.0.6"
)

// OutboundName is the sidecar's cluster name for a service port: outbound|PORT|SUBSET|FQDN.
func OutboundName(svc *model.Service, port uint32, subset string) string {
	return "outbound|" + strconv.FormatUint(uint64(port), 10) + "|" + subset + "|" + svc.FQDN
}

// InboundName is the sidecar's inbound cluster and chain name for a workload port: inbound|PORT||.
func InboundName(port uint32) string { return "inbound|" + strconv.FormatUint(uint64(port), 10) + "||" }

// sidecarGen generates for one pod's sidecar: outbound config for every service it can reach (all of them;
// meshlab has no Sidecar resource to narrow it) and inbound config for its own ports. The outbound part
// depends on the pod only through its namespace (short host names in routes), so it is the same for every
// sidecar of a namespace: SidecarOutbound and SidecarInbound generate the two parts separately.
type sidecarGen struct {
	snap *model.Snapshot
	ns   string          // the namespace outbound names resolve from
	wl   *model.Workload // nil when only the outbound part is generated
}

func newSidecarGen(s *model.Snapshot, p model.Proxy) (*sidecarGen, error) {
	if _, err := s.Resolve(p); err != nil {
		return nil, err
	}
	return &sidecarGen{snap: s, ns: p.Namespace, wl: s.Workload(p.Namespace, p.Name)}, nil
}

// SidecarOutbound generates the part of a sidecar's config of typeURL that every sidecar in namespace
// receives: the virtualOutbound listener (LDS), the outbound|PORT|SUBSET|FQDN and infrastructure clusters
// (CDS), every route configuration (RDS) and every endpoint (EDS). Only RDS depends on the namespace.
func SidecarOutbound(s *model.Snapshot, namespace, typeURL string) ([]proto.Message, error) {
	g := &sidecarGen{snap: s, ns: namespace}
	switch typeURL {
	case xdstype.Listener:
		return []proto.Message{g.outbound()}, nil
	case xdstype.Cluster:
		return messages(g.outboundClusters()), nil
	case xdstype.Route:
		return messages(g.routes()), nil
	case xdstype.Endpoint:
		return messages(g.endpoints()), nil
	}
	return nil, fmt.Errorf("sidecar outbound: no generator for type %s", typeURL)
}

// SidecarInbound generates the part of a sidecar's config of typeURL that belongs to its own pod: the
// virtualInbound listener (LDS) and the inbound|PORT|| clusters (CDS); nothing of RDS and EDS. Together with
// SidecarOutbound it is exactly what Resources generates for the sidecar.
func SidecarInbound(s *model.Snapshot, p model.Proxy, typeURL string) ([]proto.Message, error) {
	g, err := newSidecarGen(s, p)
	if err != nil {
		return nil, err
	}
	switch typeURL {
	case xdstype.Listener:
		return []proto.Message{g.inbound()}, nil
	case xdstype.Cluster:
		return messages(g.inboundClusters()), nil
	case xdstype.Route, xdstype.Endpoint:
		return nil, nil
	}
	return nil, fmt.Errorf("proxy %s: no generator for type %s", p.ID(), typeURL)
}

// SidecarInboundKey describes every input of a pod's SidecarInbound part: pods with equal keys get equal
// inbound config. policies are the AuthorizationPolicies and RequestAuthentications it applies (their
// content is not in the key).
func SidecarInboundKey(s *model.Snapshot, p model.Proxy) (key string, policies []ingest.Key, err error) {
	g, err := newSidecarGen(s, p)
	if err != nil {
		return "", nil, err
	}
	var b strings.Builder
	for _, ip := range g.inboundPorts() {
		fmt.Fprintf(&b, "%d/%s,", ip.port, ip.protocol)
	}
	b.WriteString("|")
	for _, pol := range s.PoliciesForWorkload(g.wl) {
		policies = append(policies, pol.Source)
		b.WriteString(pol.Source.String() + ",")
	}
	for _, ra := range s.JWTRulesForWorkload(g.wl) {
		policies = append(policies, ra.Source)
		b.WriteString(ra.Source.String() + ",")
	}
	return b.String(), policies, nil
}

func messages[M proto.Message](in []M) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

// inboundPort is one port of the sidecar's own workload.
type inboundPort struct {
	port     uint32
	protocol model.Protocol
	// service and servicePort: the first service port that targets port, whose DestinationRule's
	// connection pool applies to the inbound cluster.
	service     *model.Service
	servicePort uint32
}

func (g *sidecarGen) inboundPorts() []inboundPort {
	seen := map[uint32]inboundPort{}
	for _, ws := range g.wl.Services {
		for _, pm := range ws.Ports {
			if p, ok := ws.Service.Port(pm.ServicePort); ok {
				prev, dup := seen[pm.TargetPort]
				if !dup {
					seen[pm.TargetPort] = inboundPort{pm.TargetPort, p.Protocol, ws.Service, pm.ServicePort}
				} else if !prev.protocol.IsHTTP() && p.Protocol.IsHTTP() {
					prev.protocol = p.Protocol
					seen[pm.TargetPort] = prev
				}
			}
		}
	}
	var out []inboundPort
	for _, ip := range seen {
		out = append(out, ip)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out
}

func (g *sidecarGen) listeners() []*listenerv3.Listener {
	return []*listenerv3.Listener{g.outbound(), g.inbound()}
}

func (g *sidecarGen) outbound() *listenerv3.Listener {
	var chains []*listenerv3.FilterChain
	for _, svc := range g.snap.Services() {
		for _, p := range svc.Ports {
			name := OutboundName(svc, p.Port, "")
			var f *listenerv3.Filter
			if p.Protocol.IsHTTP() {
				f = hcm("outbound_"+strconv.FormatUint(uint64(p.Port), 10)+"_"+svc.FQDN, strconv.FormatUint(uint64(p.Port), 10), nil, routeFilters()...)
			} else {
				f = serviceTCPProxy(g.snap, svc, p.Port, name, outboundTCPNames)
			}
			for _, vip := range svc.VIPs {
				chains = append(chains, &listenerv3.FilterChain{
					Name: name,
					FilterChainMatch: &listenerv3.FilterChainMatch{
						PrefixRanges:    []*corev3.CidrRange{cidr(vip)},
						DestinationPort: wrapperspb.UInt32(p.Port),
					},
					Filters: []*listenerv3.Filter{f},
				})
			}
		}
	}
	chains = append(chains, &listenerv3.FilterChain{Name: "PassthroughFilterChain", Filters: []*listenerv3.Filter{tcpProxy(ClusterPassthrough, ClusterPassthrough)}})
	return &listenerv3.Listener{
		Name:             ListenerVirtualOutbound,
		Address:          socketAddress("0.0.0.0", OutboundCapturePort),
		UseOriginalDst:   wrapperspb.Bool(true),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains:     chains,
	}
}

func (g *sidecarGen) inbound() *listenerv3.Listener {
	// Inbound HTTP filters, in istiod's order: jwt_authn, RBAC, then fault and CORS (every chain has them).
	var filters []*hcmv3.HttpFilter
	if f := jwtFilter(g.snap.JWTRulesForWorkload(g.wl), false); f != nil {
		filters = append(filters, f)
	}
	filters = append(filters, rbacFilters(g.snap.PoliciesForWorkload(g.wl))...)
	filters = append(filters, routeFilters()...)
	var chains []*listenerv3.FilterChain
	for _, ip := range g.inboundPorts() {
		name := InboundName(ip.port)
		var f *listenerv3.Filter
		if ip.protocol.IsHTTP() {
			route := &routev3.RouteConfiguration{Name: name, ValidateClusters: wrapperspb.Bool(false), VirtualHosts: []*routev3.VirtualHost{{
				Name: "inbound|http|" + strconv.FormatUint(uint64(ip.port), 10), Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Name:  "default",
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name},
						Timeout:          durationpb.New(0),
						MaxGrpcTimeout:   durationpb.New(0),
					}},
				}},
			}}}
			m := hcmConfig("inbound_0.0.0.0_"+strconv.FormatUint(uint64(ip.port), 10), "", route, filters...)
			// The app learns who called it from X-Forwarded-Client-Cert, as behind Istio's sidecar: the
			// caller's certificate appended to what earlier hops forwarded.
			m.ForwardClientCertDetails = hcmv3.HttpConnectionManager_APPEND_FORWARD
			m.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Subject: wrapperspb.Bool(true), Uri: true, Dns: true}
			f = networkFilter(nameHCM, m)
		} else {
			f = tcpProxy(name, name)
		}
		chains = append(chains, &listenerv3.FilterChain{
			Name:             name,
			FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(ip.port)},
			Filters:          []*listenerv3.Filter{f},
		})
	}
	chains = append(chains, &listenerv3.FilterChain{Name: "InboundPassthroughFilterChain", Filters: []*listenerv3.Filter{tcpProxy(ClusterInboundPassthrough, ClusterInboundPassthrough)}})
	return &listenerv3.Listener{
		Name:             ListenerVirtualInbound,
		Address:          socketAddress("0.0.0.0", InboundCapturePort),
		UseOriginalDst:   wrapperspb.Bool(true),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		ListenerFilters:  []*listenerv3.ListenerFilter{originalDstFilter()},
		FilterChains:     chains,
	}
}

func originalDstCluster(name string, bind string) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(connectTimeout),
		CircuitBreakers:      defaultCircuitBreakers(),
	}
	if bind != "" {
		c.UpstreamBindConfig = &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{Address: bind, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}}}
	}
	return c
}

func (g *sidecarGen) clusters() []*clusterv3.Cluster {
	out := append(g.outboundClusters(), g.inboundClusters()...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (g *sidecarGen) inboundClusters() []*clusterv3.Cluster {
	var out []*clusterv3.Cluster
	for _, ip := range g.inboundPorts() {
		c := originalDstCluster(InboundName(ip.port), InboundBindAddress)
		// As Istio: of the service's DestinationRule, only the connection pool applies inbound.
		if dr := g.snap.DestinationRule(ip.service.FQDN); dr != nil && dr.Policy != nil {
			applyConnectionPool(c, dr.PolicyFor(ip.servicePort, "").GetConnectionPool())
			c.Metadata = configMetadata(dr.Source)
		}
		setUpstreamProtocol(c, ip.protocol)
		out = append(out, c)
	}
	return out
}

// outboundClusters are the service clusters and the infrastructure clusters every sidecar has.
func (g *sidecarGen) outboundClusters() []*clusterv3.Cluster {
	out := []*clusterv3.Cluster{
		{
			Name:                 ClusterBlackHole,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			ConnectTimeout:       durationpb.New(connectTimeout),
		},
		originalDstCluster(ClusterInboundPassthrough, InboundBindAddress),
		originalDstCluster(ClusterPassthrough, ""),
	}
	out = append(out, outboundClusters(g.snap, g.snap.Services())...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// outboundClusters are the outbound|PORT|SUBSET|FQDN clusters of services, one per port and subset: what
// sidecars have for every service and ingress gateways for their routes' backends.
func outboundClusters(snap *model.Snapshot, services []*model.Service) []*clusterv3.Cluster {
	var out []*clusterv3.Cluster
	for _, svc := range services {
		dr := snap.DestinationRule(svc.FQDN)
		for _, p := range svc.Ports {
			out = append(out, serviceCluster(OutboundName(svc, p.Port, ""), svc, dr, p.Port, ""))
			if dr == nil {
				continue
			}
			for _, ss := range dr.Subsets {
				out = append(out, serviceCluster(OutboundName(svc, p.Port, ss.Name), svc, dr, p.Port, ss.Name))
			}
		}
	}
	return out
}

// domains lists the names a client in the sidecar's namespace may use for a service port: the FQDN, the
// shorter forms that resolve from that namespace, and the VIPs, each with and without the port.
func (g *sidecarGen) domains(svc *model.Service, port uint32) []string {
	hosts := []string{svc.FQDN}
	if svc.Namespace == g.ns {
		hosts = append(hosts, svc.Name)
	}
	hosts = append(hosts, svc.Name+"."+svc.Namespace, strings.TrimSuffix(svc.FQDN, "."+model.ClusterDomain))
	hosts = append(hosts, svc.VIPs...)
	var out []string
	ps := ":" + strconv.FormatUint(uint64(port), 10)
	for _, h := range hosts {
		out = append(out, h, h+ps)
	}
	return out
}

func (g *sidecarGen) routes() []*routev3.RouteConfiguration {
	byPort := map[uint32][]*routev3.VirtualHost{}
	for _, svc := range g.snap.Services() {
		for _, p := range svc.Ports {
			if !p.Protocol.IsHTTP() {
				continue
			}
			byPort[p.Port] = append(byPort[p.Port], &routev3.VirtualHost{
				Name:    svc.FQDN + ":" + strconv.FormatUint(uint64(p.Port), 10),
				Domains: g.domains(svc, p.Port),
				Routes:  buildRoutes(g.snap.RoutesFor(svc, p.Port), svc, p.Port, OutboundName, routeHashes{snap: g.snap, defaultRoute: true}),
			})
		}
	}
	var out []*routev3.RouteConfiguration
	for port, vhosts := range byPort {
		vhosts = append(vhosts, &routev3.VirtualHost{
			Name: "allow_any", Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:  "allow_any",
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterPassthrough},
					Timeout:          durationpb.New(0),
					MaxGrpcTimeout:   durationpb.New(0),
				}},
			}},
		})
		out = append(out, &routev3.RouteConfiguration{
			Name:             strconv.FormatUint(uint64(port), 10),
			VirtualHosts:     vhosts,
			ValidateClusters: wrapperspb.Bool(false),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LabelTLSMode is the label injection puts on sidecar pods (Istio's security.istio.io/tlsMode: istio).
const LabelTLSMode = "security.istio.io/tlsMode"

// HBONECapable reports whether a pod terminates HBONE on 15008: ambient pods (ztunnel does) and injected
// pods (their sidecar does). meshlab sidecars speak HBONE to both, one mechanism for sidecar-to-sidecar and
// sidecar-to-ambient mTLS, where Istio sidecars speak ISTIO_MUTUAL TLS to each other on the app port.
func HBONECapable(wl *model.Workload) bool {
	if wl == nil || wl.Labels[model.LabelGatewayName] != "" { // a waypoint's own 15008 is not a tunnel to it
		return false
	}
	return wl.Ambient || wl.Labels[LabelTLSMode] == "istio"
}

// sidecarEndpoint is a plain IP:PORT, or envoy://connect_originate/IP:PORT (with the waypoint's tunnel
// metadata) for a pod that takes HBONE: the sidecar then opens an HBONE stream to IP:15008.
func sidecarEndpoint(ep model.Endpoint) *endpointv3.LbEndpoint {
	if HBONECapable(ep.Workload) {
		return waypointEndpoint(ep)
	}
	return &endpointv3.LbEndpoint{
		HostIdentifier:      &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(ep.IP, ep.Port)}},
		HealthStatus:        healthStatus(ep),
		LoadBalancingWeight: wrapperspb.UInt32(1),
	}
}

func (g *sidecarGen) endpoints() []*endpointv3.ClusterLoadAssignment {
	return outboundEndpoints(g.snap, g.snap.Services())
}

// outboundEndpoints are the endpoints of outboundClusters(snap, services), sorted by cluster name.
func outboundEndpoints(snap *model.Snapshot, services []*model.Service) []*endpointv3.ClusterLoadAssignment {
	var out []*endpointv3.ClusterLoadAssignment
	add := func(name string, eps []model.Endpoint) {
		var lbs []*endpointv3.LbEndpoint
		for _, ep := range eps {
			lbs = append(lbs, sidecarEndpoint(ep))
		}
		out = append(out, cla(name, lbs))
	}
	for _, svc := range services {
		dr := snap.DestinationRule(svc.FQDN)
		for _, p := range svc.Ports {
			var eps []model.Endpoint
			for _, ep := range svc.Endpoints {
				if ep.ServicePort == p.Port {
					eps = append(eps, ep)
				}
			}
			add(OutboundName(svc, p.Port, ""), eps)
			if dr == nil {
				continue
			}
			for _, ss := range dr.Subsets {
				add(OutboundName(svc, p.Port, ss.Name), subsetEndpoints(eps, ss))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClusterName < out[j].ClusterName })
	return out
}
