package configgen

import (
	"sort"
	"strconv"

	corexdsv3 "github.com/cncf/xds/go/xds/core/v3"
	matcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	networkinputsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/common_inputs/network/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/model"
)

// Waypoint listener and chain names (Istio's).
const (
	ListenerConnectTerminate = "connect_terminate"
	ListenerMainInternal     = "main_internal"
	ListenerConnectOriginate = "connect_originate"
	ChainDirectTCP           = "direct-tcp"
	ChainDirectHTTP          = "direct-http"
)

// InboundVIPName is the waypoint's name for a service port's chain, route and cluster:
// inbound-vip|PORT|http|FQDN, or with a subset inbound-vip|PORT|http/SUBSET|FQDN (tcp for non-HTTP ports).
func InboundVIPName(svc *model.Service, port uint32, subset string) string {
	proto := "tcp"
	if p, ok := svc.Port(port); ok && p.Protocol.IsHTTP() {
		proto = "http"
	}
	if subset != "" {
		proto += "/" + subset
	}
	return "inbound-vip|" + strconv.FormatUint(uint64(port), 10) + "|" + proto + "|" + svc.FQDN
}

// waypointGen holds one waypoint's scope while its resources are generated.
type waypointGen struct {
	snap  *model.Snapshot
	scope model.WaypointScope
}

func newWaypointGen(s *model.Snapshot, p model.Proxy) (*waypointGen, error) {
	w := s.Waypoint(p.Namespace, p.Name)
	if w == nil {
		_, err := s.Resolve(p)
		return nil, err
	}
	return &waypointGen{snap: s, scope: s.Scope(w)}, nil
}

// policies returns the authorization policies for a service's chains (svc nil: direct workload traffic).
func (g *waypointGen) policies(svc *model.Service) []*model.AuthorizationPolicy {
	var out []*model.AuthorizationPolicy
	for _, wp := range g.snap.PoliciesForWaypoint(g.scope.Waypoint) {
		if wp.Service == nil || wp.Service == svc {
			out = append(out, wp.Policy)
		}
	}
	return out
}

// httpFilters are a chain's filters before the router, in istiod's order: jwt_authn (RequestAuthentications
// for the chain), RBAC (AuthorizationPolicies), fault, CORS.
func (g *waypointGen) httpFilters(svc *model.Service) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	if f := jwtFilter(g.snap.JWTRulesForWaypoint(g.scope.Waypoint, svc), true); f != nil {
		out = append(out, f)
	}
	return append(append(out, rbacFilters(g.policies(svc))...), routeFilters()...)
}

func (g *waypointGen) listeners() []*listenerv3.Listener {
	return []*listenerv3.Listener{g.connectOriginate(), g.connectTerminate(), g.mainInternal()}
}

// connectTerminate accepts HBONE: HTTP/2 CONNECT over mTLS on 15008, handed to main_internal.
func (g *waypointGen) connectTerminate() *listenerv3.Listener {
	route := &routev3.RouteConfiguration{Name: "default", VirtualHosts: []*routev3.VirtualHost{{
		Name: "default", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Name:  "connect",
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_ConnectMatcher_{ConnectMatcher: &routev3.RouteMatch_ConnectMatcher{}}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterMainInternal},
				UpgradeConfigs:   []*routev3.RouteAction_UpgradeConfig{{UpgradeType: "CONNECT", ConnectConfig: &routev3.RouteAction_UpgradeConfig_ConnectConfig{}}},
			}},
		}},
	}}}
	// CONNECT needs HTTP/2 with extended CONNECT allowed and an upgrade config on the manager.
	m := hcmConfig(ListenerConnectTerminate, "", route)
	m.CodecType = hcmv3.HttpConnectionManager_HTTP2
	m.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{AllowConnect: true}
	m.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "CONNECT"}}
	return &listenerv3.Listener{
		Name:    ListenerConnectTerminate,
		Address: socketAddress("0.0.0.0", mesh.HBONEPort),
		FilterChains: []*listenerv3.FilterChain{{
			Name:            ListenerConnectTerminate,
			TransportSocket: downstreamMTLS(),
			Filters:         []*listenerv3.Filter{networkFilter(nameHCM, m)},
		}},
	}
}

func (g *waypointGen) connectOriginate() *listenerv3.Listener { return connectOriginateListener() }

// connectOriginateListener tunnels a connection to its original destination over HBONE: the internal
// listener behind every envoy://connect_originate/IP:PORT endpoint (waypoints and ingress gateways).
func connectOriginateListener() *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:              ListenerConnectOriginate,
		ListenerSpecifier: &listenerv3.Listener_InternalListener{InternalListener: &listenerv3.Listener_InternalListenerConfig{}},
		UseOriginalDst:    wrapperspb.Bool(true),
		ListenerFilters:   []*listenerv3.ListenerFilter{originalDstFilter()},
		FilterChains: []*listenerv3.FilterChain{{
			Name: ListenerConnectOriginate,
			Filters: []*listenerv3.Filter{networkFilter(nameTCPProxy, &tcpproxyv3.TcpProxy{
				StatPrefix:       ListenerConnectOriginate,
				ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: ClusterConnectOriginate},
				TunnelingConfig:  &tcpproxyv3.TcpProxy_TunnelingConfig{Hostname: "%DOWNSTREAM_LOCAL_ADDRESS%"},
			})},
		}},
	}
}

func ipInput() *corexdsv3.TypedExtensionConfig {
	return &corexdsv3.TypedExtensionConfig{Name: "ip", TypedConfig: mustAny(&networkinputsv3.DestinationIPInput{})}
}

func portInput() *corexdsv3.TypedExtensionConfig {
	return &corexdsv3.TypedExtensionConfig{Name: "port", TypedConfig: mustAny(&networkinputsv3.DestinationPortInput{})}
}

func chainAction(name string) *matcherv3.Matcher_OnMatch {
	return &matcherv3.Matcher_OnMatch{OnMatch: &matcherv3.Matcher_OnMatch_Action{Action: &corexdsv3.TypedExtensionConfig{
		Name: name, TypedConfig: mustAny(wrapperspb.String(name)),
	}}}
}

func exactTree(input *corexdsv3.TypedExtensionConfig, m map[string]*matcherv3.Matcher_OnMatch, noMatch *matcherv3.Matcher_OnMatch) *matcherv3.Matcher {
	return &matcherv3.Matcher{
		MatcherType: &matcherv3.Matcher_MatcherTree_{MatcherTree: &matcherv3.Matcher_MatcherTree{
			Input:    input,
			TreeType: &matcherv3.Matcher_MatcherTree_ExactMatchMap{ExactMatchMap: &matcherv3.Matcher_MatcherTree_MatchMap{Map: m}},
		}},
		OnNoMatch: noMatch,
	}
}

// mainInternal receives the inner connection of every HBONE tunnel and picks a chain by destination IP,
// then port: service VIPs get their inbound-vip chains, pod IPs the direct chains.
func (g *waypointGen) mainInternal() *listenerv3.Listener {
	byIP := map[string]*matcherv3.Matcher_OnMatch{}
	var chains []*listenerv3.FilterChain
	for _, svc := range g.scope.Services {
		ports := map[string]*matcherv3.Matcher_OnMatch{}
		for _, p := range svc.Ports {
			name := InboundVIPName(svc, p.Port, "")
			ports[strconv.FormatUint(uint64(p.Port), 10)] = chainAction(name)
			var f *listenerv3.Filter
			if p.Protocol.IsHTTP() {
				f = hcm(name, name, nil, g.httpFilters(svc)...)
			} else {
				f = serviceTCPProxy(g.snap, svc, p.Port, name, waypointTCPNames)
			}
			chains = append(chains, &listenerv3.FilterChain{Name: name, Filters: []*listenerv3.Filter{f}})
		}
		for _, vip := range svc.VIPs {
			byIP[vip] = &matcherv3.Matcher_OnMatch{OnMatch: &matcherv3.Matcher_OnMatch_Matcher{Matcher: exactTree(portInput(), ports, nil)}}
		}
	}
	if len(g.scope.Workloads) > 0 {
		for _, wl := range g.scope.Workloads {
			httpPorts := map[string]*matcherv3.Matcher_OnMatch{}
			for _, ws := range wl.Services {
				for _, pm := range ws.Ports {
					if p, ok := ws.Service.Port(pm.ServicePort); ok && p.Protocol.IsHTTP() {
						httpPorts[strconv.FormatUint(uint64(pm.TargetPort), 10)] = chainAction(ChainDirectHTTP)
					}
				}
			}
			for _, ip := range wl.IPs {
				byIP[ip] = &matcherv3.Matcher_OnMatch{OnMatch: &matcherv3.Matcher_OnMatch_Matcher{Matcher: exactTree(portInput(), httpPorts, chainAction(ChainDirectTCP))}}
			}
		}
		direct := &routev3.RouteConfiguration{Name: ChainDirectHTTP, VirtualHosts: []*routev3.VirtualHost{{
			Name: "inbound|http|0", Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:  "default",
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterEncap},
					Timeout:          durationpb.New(0),
					RetryPolicy:      DefaultRetryPolicy(),
					MaxGrpcTimeout:   durationpb.New(0),
				}},
			}},
		}}}
		chains = append(chains,
			&listenerv3.FilterChain{Name: ChainDirectHTTP, Filters: []*listenerv3.Filter{hcm(ChainDirectHTTP, "", direct, g.httpFilters(nil)...)}},
			&listenerv3.FilterChain{Name: ChainDirectTCP, Filters: []*listenerv3.Filter{tcpProxy(ChainDirectTCP, ClusterEncap)}},
		)
	}
	sort.Slice(chains, func(i, j int) bool { return chains[i].Name < chains[j].Name })
	return &listenerv3.Listener{
		Name:               ListenerMainInternal,
		ListenerSpecifier:  &listenerv3.Listener_InternalListener{InternalListener: &listenerv3.Listener_InternalListenerConfig{}},
		UseOriginalDst:     wrapperspb.Bool(true),
		ListenerFilters:    []*listenerv3.ListenerFilter{originalDstFilter()},
		FilterChainMatcher: exactTree(ipInput(), byIP, nil),
		FilterChains:       chains,
	}
}

// servedServices lists the services that get clusters: bound services and route backends.
func (g *waypointGen) servedServices() []*model.Service {
	all := append(append([]*model.Service(nil), g.scope.Services...), g.scope.Backends...)
	sort.Slice(all, func(i, j int) bool { return all[i].FQDN < all[j].FQDN })
	return all
}

func (g *waypointGen) clusters() []*clusterv3.Cluster {
	out := []*clusterv3.Cluster{
		connectOriginateCluster(),
		internalCluster(ClusterEncap, ListenerConnectOriginate),
		internalCluster(ClusterMainInternal, ListenerMainInternal),
	}
	for _, svc := range g.servedServices() {
		dr := g.snap.DestinationRule(svc.FQDN)
		for _, p := range svc.Ports {
			c := serviceCluster(InboundVIPName(svc, p.Port, ""), svc, dr, p.Port, "")
			c.TransportSocket = internalUpstream()
			out = append(out, c)
			if dr == nil {
				continue
			}
			for _, ss := range dr.Subsets {
				c := serviceCluster(InboundVIPName(svc, p.Port, ss.Name), svc, dr, p.Port, ss.Name)
				c.TransportSocket = internalUpstream()
				out = append(out, c)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// connectOriginateCluster is connect_originate's upstream: the original destination's port 15008, over
// mTLS and HTTP/2.
func connectOriginateCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 ClusterConnectOriginate,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbConfig: &clusterv3.Cluster_OriginalDstLbConfig_{OriginalDstLbConfig: &clusterv3.Cluster_OriginalDstLbConfig{
			UpstreamPortOverride: wrapperspb.UInt32(mesh.HBONEPort),
		}},
		TransportSocket:               upstreamMTLS(),
		TypedExtensionProtocolOptions: http2Options(),
		CircuitBreakers:               defaultCircuitBreakers(),
	}
}

// internalCluster is a STATIC cluster whose one endpoint is an internal listener.
func internalCluster(name, listener string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LoadAssignment: cla(name, []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: internalAddress(listener, "")}},
		}}),
		TransportSocket: internalUpstream(),
		CircuitBreakers: defaultCircuitBreakers(),
	}
}

func (g *waypointGen) routes() []*routev3.RouteConfiguration {
	var out []*routev3.RouteConfiguration
	for _, svc := range g.scope.Services {
		for _, p := range svc.Ports {
			if !p.Protocol.IsHTTP() {
				continue
			}
			name := InboundVIPName(svc, p.Port, "")
			out = append(out, &routev3.RouteConfiguration{
				Name:             name,
				ValidateClusters: wrapperspb.Bool(false),
				VirtualHosts: []*routev3.VirtualHost{{
					Name:    "inbound|http|" + strconv.FormatUint(uint64(p.Port), 10),
					Domains: []string{"*"},
					Routes:  buildRoutes(g.snap.RoutesFor(svc, p.Port), svc, p.Port, InboundVIPName, routeHashes{snap: g.snap}),
				}},
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// waypointEndpoint addresses a pod through connect_originate; the printed form is
// envoy://connect_originate/IP:PORT. Its tunnel metadata names the HBONE server and, when the pod is known,
// the identity it must present (tunnel.identity, the pod's SPIFFE ID), which the proxy checks exactly as
// ztunnel checks the workload API's identity; Istio's Envoy only checks the trust domain there.
func waypointEndpoint(ep model.Endpoint) *endpointv3.LbEndpoint {
	dest := hostPort(ep.IP, ep.Port)
	tunnel := map[string]*structpb.Value{
		"destination": structpb.NewStringValue(dest),
		"address":     structpb.NewStringValue(hostPort(ep.IP, mesh.HBONEPort)),
	}
	if ep.Workload != nil {
		tunnel["identity"] = structpb.NewStringValue(ep.Workload.Identity())
	}
	return &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: internalAddress(ListenerConnectOriginate, dest)}},
		HealthStatus:   healthStatus(ep),
		Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			nameOriginalDst: {Fields: map[string]*structpb.Value{"local": structpb.NewStringValue(dest)}},
			metadataTunnel:  {Fields: tunnel},
		}},
		LoadBalancingWeight: wrapperspb.UInt32(1),
	}
}

func (g *waypointGen) endpoints() []*endpointv3.ClusterLoadAssignment {
	var out []*endpointv3.ClusterLoadAssignment
	add := func(name string, eps []model.Endpoint) {
		var lbs []*endpointv3.LbEndpoint
		for _, ep := range eps {
			lbs = append(lbs, waypointEndpoint(ep))
		}
		out = append(out, cla(name, lbs))
	}
	for _, svc := range g.servedServices() {
		dr := g.snap.DestinationRule(svc.FQDN)
		for _, p := range svc.Ports {
			eps := g.scope.Endpoints(svc, p.Port)
			add(InboundVIPName(svc, p.Port, ""), eps)
			if dr == nil {
				continue
			}
			for _, ss := range dr.Subsets {
				add(InboundVIPName(svc, p.Port, ss.Name), subsetEndpoints(eps, ss))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClusterName < out[j].ClusterName })
	return out
}
