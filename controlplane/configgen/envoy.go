package configgen

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	httpfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	internalupstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/internal_upstream/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
)

// Extension names, as Envoy and Istio spell them.
const (
	nameHCM            = "envoy.filters.network.http_connection_manager"
	nameTCPProxy       = "envoy.filters.network.tcp_proxy"
	nameRouter         = "envoy.filters.http.router"
	nameFault          = "envoy.filters.http.fault"
	nameCORS           = "envoy.filters.http.cors"
	nameRBAC           = "envoy.filters.http.rbac"
	nameJWTAuthn       = "envoy.filters.http.jwt_authn"
	nameOriginalDst    = "envoy.filters.listener.original_dst"
	nameTLS            = "envoy.transport_sockets.tls"
	nameInternal       = "envoy.transport_sockets.internal_upstream"
	nameRawBuffer      = "envoy.transport_sockets.raw_buffer"
	namePreviousHosts  = "envoy.retry_host_predicates.previous_hosts"
	nameHTTPProtocol   = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	metadataTunnel     = "tunnel"
	metadataIstio      = "istio"
	sdsCertificateName = "default"
	sdsRootName        = "ROOTCA"
)

// Well-known cluster names.
const (
	ClusterMainInternal       = "main_internal"
	ClusterEncap              = "encap"
	ClusterConnectOriginate   = "connect_originate"
	ClusterPassthrough        = "PassthroughCluster"
	ClusterInboundPassthrough = "InboundPassthroughCluster"
	ClusterBlackHole          = "BlackHoleCluster"
)

const connectTimeout = 10 * time.Second

func mustAny(m proto.Message) *anypb.Any {
	// Deterministic, so equal config packs to equal bytes (maps would otherwise encode in random order).
	a := &anypb.Any{}
	err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true})
	if err != nil {
		panic(fmt.Sprintf("packing %T: %v", m, err)) // only fails for a nil or unregistered message: a bug
	}
	return a
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func internalAddress(listener, endpointID string) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
		AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: listener},
		EndpointId:           endpointID,
	}}}
}

func hostPort(ip string, port uint32) string {
	return net.JoinHostPort(ip, strconv.FormatUint(uint64(port), 10))
}

func rawBuffer() *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: nameRawBuffer, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&rawbufferv3.RawBuffer{})}}
}

// internalUpstream hands the host's "tunnel" metadata (the HBONE destination) to the internal listener.
func internalUpstream() *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: nameInternal, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&internalupstreamv3.InternalUpstreamTransport{
		PassthroughMetadata: []*internalupstreamv3.InternalUpstreamTransport_MetadataValueSource{{
			Kind: &metadatav3.MetadataKind{Kind: &metadatav3.MetadataKind_Host_{Host: &metadatav3.MetadataKind_Host{}}},
			Name: metadataTunnel,
		}},
		TransportSocket: rawBuffer(),
	})}}
}

func commonTLS() *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsParams:     &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3, TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
		AlpnProtocols: []string{"h2"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{
			Name: sdsCertificateName, SdsConfig: ads(),
		}},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: sdsRootName, SdsConfig: ads()},
		}},
	}
}

func downstreamMTLS() *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: nameTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.DownstreamTlsContext{
		CommonTlsContext:         commonTLS(),
		RequireClientCertificate: wrapperspb.Bool(true),
	})}}
}

func upstreamMTLS() *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: nameTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{
		CommonTlsContext: commonTLS(),
	})}}
}

func http2Options() map[string]*anypb.Any {
	return map[string]*anypb.Any{nameHTTPProtocol: mustAny(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}},
	})}
}

func originalDstFilter() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{Name: nameOriginalDst, ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&originaldstv3.OriginalDst{})}}
}

func networkFilter(name string, m proto.Message) *listenerv3.Filter {
	return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(m)}}
}

func httpFilter(name string, m proto.Message) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(m)}}
}

func tcpProxy(statPrefix, cluster string) *listenerv3.Filter {
	return networkFilter(nameTCPProxy, &tcpproxyv3.TcpProxy{StatPrefix: statPrefix, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}})
}

// hcm builds an HTTP connection manager with RDS (rds != "") or an inline route, and the given filters
// before the router.
func hcm(statPrefix, rds string, inline *routev3.RouteConfiguration, filters ...*hcmv3.HttpFilter) *listenerv3.Filter {
	return networkFilter(nameHCM, hcmConfig(statPrefix, rds, inline, filters...))
}

func hcmConfig(statPrefix, rds string, inline *routev3.RouteConfiguration, filters ...*hcmv3.HttpFilter) *hcmv3.HttpConnectionManager {
	m := &hcmv3.HttpConnectionManager{
		StatPrefix:       statPrefix,
		CodecType:        hcmv3.HttpConnectionManager_AUTO,
		UseRemoteAddress: wrapperspb.Bool(false),
		NormalizePath:    wrapperspb.Bool(true),
	}
	if rds != "" {
		m.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: rds}}
	} else {
		m.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: inline}
	}
	m.HttpFilters = append(append(m.HttpFilters, filters...), httpFilter(nameRouter, &routerv3.Router{}))
	return m
}

func faultFilter() *hcmv3.HttpFilter { return httpFilter(nameFault, &httpfaultv3.HTTPFault{}) }

// routeFilters are the filters every HTTP chain carries, as istiod's do, because routes may configure
// them per route (typed_per_filter_config): fault, then CORS.
func routeFilters() []*hcmv3.HttpFilter {
	return []*hcmv3.HttpFilter{faultFilter(), httpFilter(nameCORS, &corsv3.Cors{})}
}

// corsConfig is a route's CORS policy in Envoy's per-route form, as Istio writes it: the filter enabled for
// every request, origins as string matchers, lists joined by commas, max age in seconds.
func corsConfig(c *model.CORS) *anypb.Any {
	out := &corsv3.CorsPolicy{
		AllowMethods:                 strings.Join(c.AllowMethods, ","),
		AllowHeaders:                 strings.Join(c.AllowHeaders, ","),
		ExposeHeaders:                strings.Join(c.ExposeHeaders, ","),
		FilterEnabled:                &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}},
		ForwardNotMatchingPreflights: wrapperspb.Bool(c.ForwardUnmatchedPreflights),
	}
	for _, o := range c.AllowOrigins {
		out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, stringMatcher(o))
	}
	if c.MaxAge != nil {
		out.MaxAge = strconv.FormatInt(int64(c.MaxAge.Seconds()), 10)
	}
	if c.AllowCredentials != nil {
		out.AllowCredentials = wrapperspb.Bool(*c.AllowCredentials)
	}
	return mustAny(out)
}

// perFilterConfig is a route's typed_per_filter_config: its fault and CORS policies; nil when it has neither.
func perFilterConfig(r *model.RouteRule) map[string]*anypb.Any {
	if r.Fault == nil && r.CORS == nil {
		return nil
	}
	out := map[string]*anypb.Any{}
	if r.Fault != nil {
		out[nameFault] = faultConfig(r.Fault)
	}
	if r.CORS != nil {
		out[nameCORS] = corsConfig(r.CORS)
	}
	return out
}

func edsCluster(name string, svc *model.Service, dr *model.DestinationRule) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: name},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		CommonLbConfig:       &clusterv3.Cluster_CommonLbConfig{},
		Metadata:             serviceMetadata(svc, dr),
	}
	return c
}

// serviceMetadata records which service (and DestinationRule) a cluster came from, as Istio does; istioctl
// prints the DestinationRule column from it.
func serviceMetadata(svc *model.Service, dr *model.DestinationRule) *corev3.Metadata {
	fields := map[string]*structpb.Value{
		"services": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"host":      structpb.NewStringValue(svc.FQDN),
			"name":      structpb.NewStringValue(svc.Name),
			"namespace": structpb.NewStringValue(svc.Namespace),
		}})}}),
	}
	if dr != nil {
		fields["config"] = structpb.NewStringValue(configPath(dr.Source))
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{metadataIstio: {Fields: fields}}}
}

// configPath is the API path Istio writes into metadata to say which object produced a resource.
func configPath(k ingest.Key) string {
	switch k.Kind {
	case ingest.KindVirtualService:
		return "/apis/networking.istio.io/v1/namespaces/" + k.Namespace + "/virtual-service/" + k.Name
	case ingest.KindDestinationRule:
		return "/apis/networking.istio.io/v1/namespaces/" + k.Namespace + "/destination-rule/" + k.Name
	case ingest.KindHTTPRoute:
		return "/apis/gateway.networking.k8s.io/v1/namespaces/" + k.Namespace + "/httproute/" + k.Name
	case ingest.KindGRPCRoute:
		return "/apis/gateway.networking.k8s.io/v1/namespaces/" + k.Namespace + "/grpcroute/" + k.Name
	case ingest.KindAuthorizationPolicy:
		return "/apis/security.istio.io/v1/namespaces/" + k.Namespace + "/authorization-policy/" + k.Name
	}
	return ""
}

func configMetadata(k ingest.Key) *corev3.Metadata {
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{metadataIstio: {Fields: map[string]*structpb.Value{
		"config": structpb.NewStringValue(configPath(k)),
	}}}}
}

// subsetEndpoints keeps the endpoints whose workload labels match a subset.
func subsetEndpoints(eps []model.Endpoint, subset model.Subset) []model.Endpoint {
	var out []model.Endpoint
	for _, ep := range eps {
		if matchLabels(subset.Labels, ep.Labels()) {
			out = append(out, ep)
		}
	}
	return out
}

func matchLabels(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func healthStatus(ep model.Endpoint) corev3.HealthStatus {
	if ep.Ready {
		return corev3.HealthStatus_HEALTHY
	}
	return corev3.HealthStatus_UNHEALTHY
}

// cla groups lb endpoints into one locality-less ClusterLoadAssignment.
func cla(name string, lbs []*endpointv3.LbEndpoint) *endpointv3.ClusterLoadAssignment {
	c := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	if len(lbs) > 0 {
		c.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs, LoadBalancingWeight: wrapperspb.UInt32(uint32(len(lbs)))}}
	}
	return c
}

// DefaultRetryPolicy is Istio's retry policy for routes without explicit retries.
func DefaultRetryPolicy() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
		NumRetries: wrapperspb.UInt32(2),
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name:       namePreviousHosts,
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushostsv3.PreviousHostsPredicate{})},
		}},
		HostSelectionRetryMaxAttempts: 5,
		RetriableStatusCodes:          []uint32{503},
	}
}

func retryPolicy(r *model.Retry) *routev3.RetryPolicy {
	if r == nil {
		return DefaultRetryPolicy()
	}
	if r.Attempts == 0 {
		return nil
	}
	p := DefaultRetryPolicy()
	p.NumRetries = wrapperspb.UInt32(r.Attempts)
	if r.RetryOn != "" {
		// As Istio: status codes in the list become retriable_status_codes (with the
		// retriable-status-codes condition), the rest stay conditions.
		var on []string
		var codes []uint32
		for _, c := range strings.Split(r.RetryOn, ",") {
			c = strings.TrimSpace(c)
			if n, err := strconv.ParseUint(c, 10, 32); err == nil {
				codes = append(codes, uint32(n))
			} else if c != "" {
				on = append(on, c)
			}
		}
		p.RetriableStatusCodes = codes
		if len(codes) > 0 {
			if !slices.Contains(on, "retriable-status-codes") {
				on = append(on, "retriable-status-codes")
			}
		}
		p.RetryOn = strings.Join(on, ",")
	}
	if r.PerTryTimeout > 0 {
		p.PerTryTimeout = durationpb.New(r.PerTryTimeout)
	}
	return p
}

func stringMatcher(m model.StringMatch) *matcherv3.StringMatcher {
	switch m.Type {
	case model.MatchPrefix:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: m.Value}}
	case model.MatchRegex:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Value}}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Value}}
}

func routeMatch(m model.RouteMatch) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if p := m.Path; p != nil {
		switch p.Type {
		case model.MatchExact:
			rm.PathSpecifier = &routev3.RouteMatch_Path{Path: p.Value}
		case model.MatchPrefix:
			rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: p.Value}
		case model.MatchPathPrefix:
			rm.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: p.Value}
		case model.MatchRegex:
			rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: p.Value}}
		}
	}
	if m.Method != "" {
		rm.Headers = append(rm.Headers, &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Method}},
		}})
	}
	for _, h := range m.Headers {
		hm := &routev3.HeaderMatcher{Name: h.Name, InvertMatch: h.Invert}
		if h.Match.Type == model.MatchPresent {
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
		} else {
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(h.Match)}
		}
		rm.Headers = append(rm.Headers, hm)
	}
	for _, q := range m.QueryParams {
		qm := &routev3.QueryParameterMatcher{Name: q.Name}
		if q.Match.Type == model.MatchPresent {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		} else {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: stringMatcher(q.Match)}
		}
		rm.QueryParameters = append(rm.QueryParameters, qm)
	}
	return rm
}

// fractionalPercent turns a 0-100 percentage into Envoy's per-million fraction.
func fractionalPercent(pct float64) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: uint32(pct * 10000), Denominator: typev3.FractionalPercent_MILLION}
}

func faultConfig(f *model.Fault) *anypb.Any {
	out := &httpfaultv3.HTTPFault{}
	if f.Delay > 0 {
		out.Delay = &faultv3.FaultDelay{
			FaultDelaySecifier: &faultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(f.Delay)},
			Percentage:         fractionalPercent(f.DelayPercent),
		}
	}
	if f.AbortStatus > 0 {
		out.Abort = &httpfaultv3.FaultAbort{
			ErrorType:  &httpfaultv3.FaultAbort_HttpStatus{HttpStatus: f.AbortStatus},
			Percentage: fractionalPercent(f.AbortPercent),
		}
	}
	return mustAny(out)
}

// headerOptions turns header operations into Envoy's lists as Istio does: set entries (overwrite) before
// add entries (append), each sorted by name; pseudo headers and Host are dropped, and an :authority or
// Host value is returned for a host rewrite (set wins over add).
func headerOptions(o model.HeaderOps) (add []*corev3.HeaderValueOption, remove []string, authority string) {
	list := func(hs []model.HeaderValue, action corev3.HeaderValueOption_HeaderAppendAction) string {
		auth := ""
		for _, h := range hs {
			if strings.EqualFold(h.Name, ":authority") || strings.EqualFold(h.Name, "host") {
				auth = h.Value
			}
			if internalHeader(h.Name) {
				continue
			}
			add = append(add, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: h.Name, Value: h.Value}, AppendAction: action})
		}
		return auth
	}
	setAuth := list(o.Set, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)
	authority = list(o.Add, corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD)
	if setAuth != "" {
		authority = setAuth
	}
	for _, k := range o.Remove {
		if !internalHeader(k) {
			remove = append(remove, k)
		}
	}
	return add, remove, authority
}

func internalHeader(name string) bool {
	return strings.HasPrefix(name, ":") || strings.EqualFold(name, "host")
}

var redirectCodes = map[uint32]routev3.RedirectAction_RedirectResponseCode{
	0:   routev3.RedirectAction_MOVED_PERMANENTLY,
	301: routev3.RedirectAction_MOVED_PERMANENTLY,
	302: routev3.RedirectAction_FOUND,
	303: routev3.RedirectAction_SEE_OTHER,
	307: routev3.RedirectAction_TEMPORARY_REDIRECT,
	308: routev3.RedirectAction_PERMANENT_REDIRECT,
}

// redirectAction is Istio's redirect for a route served on port: a derived request port is the port
// itself, and the scheme's default port is left out.
func redirectAction(rd *model.Redirect, port uint32, gatewayAPI bool) *routev3.Route_Redirect {
	a := &routev3.RedirectAction{
		HostRedirect:         rd.Authority,
		PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: rd.URI},
		ResponseCode:         redirectCodes[rd.Code], // the model maps unsupported codes to 301
	}
	if gatewayAPI && rd.PrefixReplace {
		a.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: rd.URI}
	}
	if rd.Scheme != "" {
		a.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: rd.Scheme}
	}
	if rd.PortMode != model.RedirectPortNone {
		switch rd.PortMode {
		case model.RedirectPortFixed:
			a.PortRedirect = rd.Port
		case model.RedirectPortFromRequest:
			a.PortRedirect = port
		}
		scheme := rd.Scheme
		if scheme == "" {
			scheme = "http" // mesh routes are never TLS-terminated by the proxy
		}
		if (a.PortRedirect == 80 && scheme == "http") || (a.PortRedirect == 443 && scheme == "https") {
			a.PortRedirect = 0
		}
	}
	return &routev3.Route_Redirect{Redirect: a}
}

// clusterNamer names the cluster for a destination: the waypoint and the sidecar spell them differently.
type clusterNamer func(svc *model.Service, port uint32, subset string) string

// routeHashes finds the DestinationRules whose consistent hash a route's destinations use. defaultRoute
// says whether a service's default route (no VirtualService or HTTPRoute) hashes too: a sidecar's outbound
// route does, a waypoint's inbound one does not (as in Istio).
type routeHashes struct {
	snap         *model.Snapshot
	defaultRoute bool
}

// buildRoutes turns a service port's routing rules into Envoy routes; with no rules, one default route.
func buildRoutes(rules []*model.RouteRule, svc *model.Service, port uint32, name clusterNamer, hashes routeHashes) []*routev3.Route {
	operation := svc.FQDN + ":" + strconv.FormatUint(uint64(port), 10) + "/*"
	if len(rules) == 0 {
		action := &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name(svc, port, "")},
			Timeout:          durationpb.New(0),
			RetryPolicy:      DefaultRetryPolicy(),
			MaxGrpcTimeout:   durationpb.New(0),
		}
		if hashes.defaultRoute {
			if hp := hashPolicy(hashes.snap.DestinationRule(svc.FQDN).ServiceHashFor(port)); hp != nil {
				action.HashPolicy = []*routev3.RouteAction_HashPolicy{hp}
			}
		}
		return []*routev3.Route{{
			Name:      "default",
			Match:     &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Decorator: &routev3.Decorator{Operation: operation},
			Action:    &routev3.Route_Route{Route: action},
		}}
	}
	return ruleRoutes(rules, port, name, hashes, func(*model.RouteRule) string { return operation })
}

// ruleRoutes turns routing rules served on port into Envoy routes, each with the decorator operation
// operation gives it and the consistent hashes of its destinations' DestinationRules.
func ruleRoutes(rules []*model.RouteRule, port uint32, name clusterNamer, hashes routeHashes, operation func(*model.RouteRule) string) []*routev3.Route {
	var out []*routev3.Route
	for _, r := range rules {
		matches := r.Matches
		if len(matches) == 0 {
			matches = []model.RouteMatch{{}}
		}
		for _, m := range matches {
			route := &routev3.Route{
				Name:      r.Name,
				Match:     routeMatch(m),
				Decorator: &routev3.Decorator{Operation: operation(r)},
				Metadata:  configMetadata(r.Source),
			}
			authority := ""
			if r.Headers != nil {
				route.RequestHeadersToAdd, route.RequestHeadersToRemove, authority = headerOptions(r.Headers.Request)
				route.ResponseHeadersToAdd, route.ResponseHeadersToRemove, _ = headerOptions(r.Headers.Response)
			}
			if r.Redirect != nil {
				route.Action = redirectAction(r.Redirect, port, r.Source.Kind == ingest.KindHTTPRoute)
				route.TypedPerFilterConfig = perFilterConfig(r)
				out = append(out, route)
				continue
			}
			if r.DirectStatus != 0 {
				route.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: r.DirectStatus}}
				if r.CORS != nil {
					route.TypedPerFilterConfig = map[string]*anypb.Any{nameCORS: corsConfig(r.CORS)}
				}
				out = append(out, route)
				continue
			}
			action := &routev3.RouteAction{
				Timeout:        durationpb.New(0),
				RetryPolicy:    retryPolicy(r.Retry),
				MaxGrpcTimeout: durationpb.New(0),
			}
			if r.Timeout != nil {
				action.Timeout = durationpb.New(*r.Timeout)
				action.MaxGrpcTimeout = durationpb.New(*r.Timeout)
			}
			for _, m := range r.Mirrors {
				// As Istio: the mirror's cluster in this proxy's naming, the fraction as runtime_fraction's
				// default, and trace_sampled false (the copy does not force tracing).
				mp := m.Destination.Port
				if mp == 0 {
					mp = port
				}
				den := typev3.FractionalPercent_HUNDRED
				if m.PerMillion {
					den = typev3.FractionalPercent_MILLION
				}
				action.RequestMirrorPolicies = append(action.RequestMirrorPolicies, &routev3.RouteAction_RequestMirrorPolicy{
					Cluster:         name(m.Destination.Service, mp, m.Destination.Subset),
					RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: m.Numerator, Denominator: den}},
					TraceSampled:    wrapperspb.Bool(false),
				})
			}
			if rw := r.Rewrite; rw != nil {
				switch {
				case rw.RegexMatch != "":
					action.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: rw.RegexMatch}, Substitution: rw.RegexRewrite}
				case rw.URI == "/" && r.Source.Kind == ingest.KindHTTPRoute:
					// Gateway API: replacing the prefix with "/" removes it, keeping one slash.
					action.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
						Pattern:      &matcherv3.RegexMatcher{Regex: `^` + regexp.QuoteMeta(route.Match.GetPathSeparatedPrefix()) + `(/?)(.*)`},
						Substitution: `/\2`,
					}
				case rw.URI != "":
					action.PrefixRewrite = rw.URI
				}
				if rw.Authority != "" {
					authority = rw.Authority
				}
			}
			if authority != "" {
				action.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: authority}
			}
			var weighted []*routev3.WeightedCluster_ClusterWeight
			for _, d := range r.Destinations {
				p := d.Port
				if p == 0 {
					p = port
				}
				cw := &routev3.WeightedCluster_ClusterWeight{Name: name(d.Service, p, d.Subset), Weight: wrapperspb.UInt32(d.Weight)}
				if d.Headers != nil {
					var auth string
					cw.RequestHeadersToAdd, cw.RequestHeadersToRemove, auth = headerOptions(d.Headers.Request)
					cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove, _ = headerOptions(d.Headers.Response)
					if auth != "" {
						cw.HostRewriteSpecifier = &routev3.WeightedCluster_ClusterWeight_HostRewriteLiteral{HostRewriteLiteral: auth}
					}
				}
				weighted = append(weighted, cw)
				// As Istio: every destination's hash policy goes on the route, in destination order.
				if hp := hashPolicy(hashes.snap.DestinationRule(d.Service.FQDN).HashFor(d.Port, d.Subset)); hp != nil {
					action.HashPolicy = append(action.HashPolicy, hp)
				}
			}
			if len(weighted) == 1 && len(action.HashPolicy) > 0 && action.RetryPolicy != nil {
				// A consistent hash must not move a retry to another host: no previous_hosts predicate.
				action.RetryPolicy.RetryHostPredicate = nil
			}
			if len(weighted) == 1 {
				// One destination: Istio moves its header operations onto the route, after the route's own,
				// and its authority only when the route sets none.
				cw := weighted[0]
				action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: cw.Name}
				route.RequestHeadersToAdd = append(route.RequestHeadersToAdd, cw.RequestHeadersToAdd...)
				route.RequestHeadersToRemove = append(route.RequestHeadersToRemove, cw.RequestHeadersToRemove...)
				route.ResponseHeadersToAdd = append(route.ResponseHeadersToAdd, cw.ResponseHeadersToAdd...)
				route.ResponseHeadersToRemove = append(route.ResponseHeadersToRemove, cw.ResponseHeadersToRemove...)
				if h := cw.GetHostRewriteLiteral(); h != "" && action.HostRewriteSpecifier == nil {
					action.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: h}
				}
			} else {
				action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: weighted}}
			}
			route.Action = &routev3.Route_Route{Route: action}
			route.TypedPerFilterConfig = perFilterConfig(r)
			out = append(out, route)
		}
	}
	return out
}
