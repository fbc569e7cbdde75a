// Package l7test builds Envoy configs in the shape meshlab's waypoint generator emits (connect_terminate,
// main_internal with a destination IP/port matcher, connect_originate, inbound-vip clusters with
// connect_originate endpoints), so engine, waypoint and xDS tests can describe a scenario in a few lines.
package l7test

import (
	"fmt"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	"net"
	"strconv"
	"time"

	corexdsv3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	networkinputsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/common_inputs/network/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Config has the same shape as l7.Config (convert with l7.Config(c)); this package cannot import l7,
// whose own tests use it.
type Config struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
}

// Service is one service port the waypoint serves.
type Service struct {
	FQDN string
	VIP  string
	Port uint32
	// TCP makes the port a tcp_proxy chain instead of HTTP.
	TCP bool
	// Routes of the service's route configuration; nil means Istio's default route to its own cluster.
	Routes []*routev3.Route
	// Filters go before the fault filter and the router (e.g. RBACFilter).
	Filters []*hcmv3.HttpFilter
}

// Name is inbound-vip|PORT|http|FQDN (tcp for TCP ports; with a subset, http/SUBSET).
func (s Service) Name(subset string) string {
	proto := "http"
	if s.TCP {
		proto = "tcp"
	}
	if subset != "" {
		proto += "/" + subset
	}
	return "inbound-vip|" + strconv.Itoa(int(s.Port)) + "|" + proto + "|" + s.FQDN
}

// MustAny packs m.
func MustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, ResourceApiVersion: corev3.ApiVersion_V3}
}

// HTTPFilter wraps a typed HTTP filter config.
func HTTPFilter(name string, m proto.Message) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: MustAny(m)}}
}

// NetworkFilter wraps a typed network filter config.
func NetworkFilter(name string, m proto.Message) *listenerv3.Filter {
	return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: MustAny(m)}}
}

// HCM is an HTTP connection manager using RDS route rds with filters, the fault and CORS filters and the
// router, as meshlab's control plane writes it.
func HCM(statPrefix, rds string, filters ...*hcmv3.HttpFilter) *listenerv3.Filter {
	fs := append(append([]*hcmv3.HttpFilter(nil), filters...),
		HTTPFilter("envoy.filters.http.fault", &faultv3.HTTPFault{}),
		HTTPFilter("envoy.filters.http.cors", &corsv3.Cors{}),
		HTTPFilter("envoy.filters.http.router", &routerv3.Router{}))
	return NetworkFilter("envoy.filters.network.http_connection_manager", &hcmv3.HttpConnectionManager{
		StatPrefix:       statPrefix,
		CodecType:        hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier:   &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: rds}},
		HttpFilters:      fs,
		UseRemoteAddress: wrapperspb.Bool(false),
		NormalizePath:    wrapperspb.Bool(true),
	})
}

// TCPProxy is a tcp_proxy to cluster.
func TCPProxy(statPrefix, cluster string) *listenerv3.Filter {
	return NetworkFilter("envoy.filters.network.tcp_proxy", &tcpproxyv3.TcpProxy{StatPrefix: statPrefix, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}})
}

func action(name string) *xdsmatcherv3.Matcher_OnMatch {
	return &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{Action: &corexdsv3.TypedExtensionConfig{Name: name, TypedConfig: MustAny(wrapperspb.String(name))}}}
}

func tree(input proto.Message, m map[string]*xdsmatcherv3.Matcher_OnMatch, noMatch *xdsmatcherv3.Matcher_OnMatch) *xdsmatcherv3.Matcher {
	return &xdsmatcherv3.Matcher{
		MatcherType: &xdsmatcherv3.Matcher_MatcherTree_{MatcherTree: &xdsmatcherv3.Matcher_MatcherTree{
			Input:    &corexdsv3.TypedExtensionConfig{Name: "input", TypedConfig: MustAny(input)},
			TreeType: &xdsmatcherv3.Matcher_MatcherTree_ExactMatchMap{ExactMatchMap: &xdsmatcherv3.Matcher_MatcherTree_MatchMap{Map: m}},
		}},
		OnNoMatch: noMatch,
	}
}

// MainInternal builds the main_internal listener for services.
func MainInternal(svcs ...Service) *listenerv3.Listener {
	byIP := map[string]map[string]*xdsmatcherv3.Matcher_OnMatch{}
	var chains []*listenerv3.FilterChain
	for _, s := range svcs {
		name := s.Name("")
		if byIP[s.VIP] == nil {
			byIP[s.VIP] = map[string]*xdsmatcherv3.Matcher_OnMatch{}
		}
		byIP[s.VIP][strconv.Itoa(int(s.Port))] = action(name)
		f := HCM(name, name, s.Filters...)
		if s.TCP {
			f = TCPProxy(name, name)
		}
		chains = append(chains, &listenerv3.FilterChain{Name: name, Filters: []*listenerv3.Filter{f}})
	}
	ips := map[string]*xdsmatcherv3.Matcher_OnMatch{}
	for ip, ports := range byIP {
		ips[ip] = &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Matcher{Matcher: tree(&networkinputsv3.DestinationPortInput{}, ports, nil)}}
	}
	return &listenerv3.Listener{
		Name:               "main_internal",
		ListenerSpecifier:  &listenerv3.Listener_InternalListener{InternalListener: &listenerv3.Listener_InternalListenerConfig{}},
		UseOriginalDst:     wrapperspb.Bool(true),
		ListenerFilters:    []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.original_dst", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: MustAny(&originaldstv3.OriginalDst{})}}},
		FilterChainMatcher: tree(&networkinputsv3.DestinationIPInput{}, ips, nil),
		FilterChains:       chains,
	}
}

// ConnectTerminate is the HBONE terminator listener on port.
func ConnectTerminate(port uint32) *listenerv3.Listener {
	rc := &routev3.RouteConfiguration{Name: "default", VirtualHosts: []*routev3.VirtualHost{{Name: "default", Domains: []string{"*"}, Routes: []*routev3.Route{{
		Name:  "connect",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_ConnectMatcher_{ConnectMatcher: &routev3.RouteMatch_ConnectMatcher{}}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "main_internal"},
			UpgradeConfigs:   []*routev3.RouteAction_UpgradeConfig{{UpgradeType: "CONNECT", ConnectConfig: &routev3.RouteAction_UpgradeConfig_ConnectConfig{}}},
		}},
	}}}}}
	return &listenerv3.Listener{
		Name: "connect_terminate",
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}},
		FilterChains: []*listenerv3.FilterChain{{
			Name: "connect_terminate",
			TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: MustAny(&tlsv3.DownstreamTlsContext{
				CommonTlsContext: &tlsv3.CommonTlsContext{AlpnProtocols: []string{"h2"}}, RequireClientCertificate: wrapperspb.Bool(true)})}},
			Filters: []*listenerv3.Filter{NetworkFilter("envoy.filters.network.http_connection_manager", &hcmv3.HttpConnectionManager{
				StatPrefix: "connect_terminate", CodecType: hcmv3.HttpConnectionManager_HTTP2,
				RouteSpecifier:       &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc},
				HttpFilters:          []*hcmv3.HttpFilter{HTTPFilter("envoy.filters.http.router", &routerv3.Router{})},
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{AllowConnect: true},
				UpgradeConfigs:       []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "CONNECT"}},
			})},
		}},
	}
}

// ConnectOriginate is the HBONE originator internal listener.
func ConnectOriginate() *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:              "connect_originate",
		ListenerSpecifier: &listenerv3.Listener_InternalListener{InternalListener: &listenerv3.Listener_InternalListenerConfig{}},
		FilterChains: []*listenerv3.FilterChain{{Name: "connect_originate", Filters: []*listenerv3.Filter{NetworkFilter("envoy.filters.network.tcp_proxy", &tcpproxyv3.TcpProxy{
			StatPrefix: "connect_originate", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "connect_originate"},
			TunnelingConfig: &tcpproxyv3.TcpProxy_TunnelingConfig{Hostname: "%DOWNSTREAM_LOCAL_ADDRESS%"},
		})}}},
	}
}

// EDSCluster is an inbound-vip cluster fed by EDS.
func EDSCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: name},
		ConnectTimeout:       durationpb.New(2 * time.Second),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
}

// Endpoints is a ClusterLoadAssignment whose hosts ("IP:PORT") are reached through connect_originate,
// with their HBONE servers at tunnels[i] when given (else IP:15008).
func Endpoints(cluster string, hosts []string, tunnels []string) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: cluster}
	var lbs []*endpointv3.LbEndpoint
	for i, h := range hosts {
		tunnel := ""
		if i < len(tunnels) {
			tunnel = tunnels[i]
		}
		if tunnel == "" {
			ip, _, _ := net.SplitHostPort(h)
			tunnel = net.JoinHostPort(ip, "15008")
		}
		lbs = append(lbs, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
				AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: "connect_originate"}, EndpointId: h}}}}},
			HealthStatus: corev3.HealthStatus_HEALTHY,
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"tunnel": {Fields: map[string]*structpb.Value{
				"destination": structpb.NewStringValue(h), "address": structpb.NewStringValue(tunnel)}}}},
			LoadBalancingWeight: wrapperspb.UInt32(1),
		})
	}
	if len(lbs) > 0 {
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}
	}
	return cla
}

// RouteConfig is a route configuration with one "*" virtual host.
func RouteConfig(name string, routes ...*routev3.Route) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, ValidateClusters: wrapperspb.Bool(false), VirtualHosts: []*routev3.VirtualHost{{
		Name: "inbound|http|0", Domains: []string{"*"}, Routes: routes}}}
}

// DefaultRetry is Istio's default retry policy.
func DefaultRetry() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
		NumRetries: wrapperspb.UInt32(2),
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: MustAny(&previoushostsv3.PreviousHostsPredicate{})}}},
		HostSelectionRetryMaxAttempts: 5,
		RetriableStatusCodes:          []uint32{503},
	}
}

// PrefixRoute routes prefix to cluster with Istio's defaults (no timeout, default retries).
func PrefixRoute(name, prefix, cluster string) *routev3.Route {
	return &routev3.Route{Name: name, Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
			Timeout: durationpb.New(0), RetryPolicy: DefaultRetry()}}}
}

// WeightedRoute splits prefix between clusters by weights.
func WeightedRoute(name, prefix string, clusters []string, weights []uint32) *routev3.Route {
	var cw []*routev3.WeightedCluster_ClusterWeight
	for i, c := range clusters {
		cw = append(cw, &routev3.WeightedCluster_ClusterWeight{Name: c, Weight: wrapperspb.UInt32(weights[i])})
	}
	return &routev3.Route{Name: name, Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: cw}},
			Timeout: durationpb.New(0), RetryPolicy: DefaultRetry()}}}
}

// WithFault attaches a per-route fault config: delay (0: none) for delayPct percent, abort status (0: none)
// for abortPct percent.
func WithFault(r *routev3.Route, delay float64, delayPct uint32, abort uint32, abortPct uint32) *routev3.Route {
	f := &faultv3.HTTPFault{}
	if delay > 0 {
		f.Delay = &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(secs(delay))},
			Percentage: &typev3.FractionalPercent{Numerator: delayPct, Denominator: typev3.FractionalPercent_HUNDRED}}
	}
	if abort > 0 {
		f.Abort = &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: abort},
			Percentage: &typev3.FractionalPercent{Numerator: abortPct, Denominator: typev3.FractionalPercent_HUNDRED}}
	}
	r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": MustAny(f)}
	return r
}

func secs(f float64) time.Duration { return time.Duration(f * 1e9) }

// Principal matches an authenticated SPIFFE ID exactly.
func Principal(id string) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Authenticated_{Authenticated: &rbacconfigv3.Principal_Authenticated{
		PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}}}}}
}

// Namespace matches peers of a namespace as Istio expresses it: a regex over the SPIFFE URI.
func Namespace(ns string) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Authenticated_{Authenticated: &rbacconfigv3.Principal_Authenticated{
		PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".*/ns/" + ns + "/.*"}}}}}}
}

// PathPrefix permits url paths starting with p.
func PathPrefix(p string) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p}}}}}}
}

// Method permits an HTTP method.
func Method(m string) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: ":method",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m}}}}}}
}

// And combines permissions.
func And(ps ...*rbacconfigv3.Permission) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_AndRules{AndRules: &rbacconfigv3.Permission_Set{Rules: ps}}}
}

// RBACFilter is an RBAC HTTP filter with action "ALLOW" or "DENY" and one policy per entry.
func RBACFilter(act string, policies map[string]*rbacconfigv3.Policy) *hcmv3.HttpFilter {
	a := rbacconfigv3.RBAC_ALLOW
	if act == "DENY" {
		a = rbacconfigv3.RBAC_DENY
	}
	return HTTPFilter("envoy.filters.http.rbac", &rbacv3.RBAC{Rules: &rbacconfigv3.RBAC{Action: a, Policies: policies}})
}

// Policy is an RBAC policy: any of the principals and any of the permissions.
func Policy(principals []*rbacconfigv3.Principal, permissions ...*rbacconfigv3.Permission) *rbacconfigv3.Policy {
	if len(permissions) == 0 {
		permissions = []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_Any{Any: true}}}
	}
	return &rbacconfigv3.Policy{Principals: principals, Permissions: permissions}
}

// Waypoint is a whole waypoint config: the three listeners, one route config per HTTP service whose
// default route goes to its own cluster (unless the service sets Routes), and clusters for every service
// plus extra (each extra cluster an EDS cluster). endpoints maps a cluster name to its hosts.
func Waypoint(svcs []Service, extraClusters []string, endpoints map[string][]string, tunnels map[string]string) Config {
	cfg := Config{Listeners: []*listenerv3.Listener{ConnectOriginate(), ConnectTerminate(15008), MainInternal(svcs...)}}
	clusters := map[string]bool{}
	for _, s := range svcs {
		name := s.Name("")
		clusters[name] = true
		if s.TCP {
			continue
		}
		routes := s.Routes
		if routes == nil {
			routes = []*routev3.Route{PrefixRoute("default", "/", name)}
		}
		rc := RouteConfig(name, routes...)
		rc.VirtualHosts[0].Name = fmt.Sprintf("inbound|http|%d", s.Port)
		cfg.Routes = append(cfg.Routes, rc)
	}
	for _, c := range extraClusters {
		clusters[c] = true
	}
	for c := range clusters {
		cfg.Clusters = append(cfg.Clusters, EDSCluster(c))
		var tun []string
		for _, h := range endpoints[c] {
			tun = append(tun, tunnels[h])
		}
		cfg.Endpoints = append(cfg.Endpoints, Endpoints(c, endpoints[c], tun))
	}
	return cfg
}

// WithIdentities sets tunnel.identity, the SPIFFE ID the HBONE server must present, on the connect_originate
// endpoints of cfg whose destination ("IP:PORT") is a key of ids, as the control plane does for known pods.
func WithIdentities(cfg Config, ids map[string]string) Config {
	for _, cla := range cfg.Endpoints {
		for _, lle := range cla.GetEndpoints() {
			for _, lb := range lle.GetLbEndpoints() {
				tunnel := lb.GetMetadata().GetFilterMetadata()["tunnel"]
				if id, ok := ids[tunnel.GetFields()["destination"].GetStringValue()]; ok {
					tunnel.Fields["identity"] = structpb.NewStringValue(id)
				}
			}
		}
	}
	return cfg
}
