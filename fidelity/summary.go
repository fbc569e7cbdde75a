package fidelity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Facts is a proxy's config normalized into comparable statements, "KIND/NAME...: field=value", one per
// thing a user reads (see docs/fidelity.md, "Normalization").
type Facts map[string]bool

func (f Facts) add(format string, args ...any) { f[fmt.Sprintf(format, args...)] = true }

// Sorted returns the facts in order.
func (f Facts) Sorted() []string {
	out := make([]string, 0, len(f))
	for k := range f {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// SummarizeEnvoy normalizes one proxy's listeners, clusters, routes and endpoints.
func SummarizeEnvoy(e *Envoy) Facts {
	f := Facts{}
	for _, l := range e.Listeners {
		summarizeListener(f, l)
	}
	for _, c := range e.Clusters {
		summarizeCluster(f, c)
	}
	for _, r := range e.Routes {
		summarizeRouteConfig(f, "route/"+r.Name, r)
	}
	for _, c := range e.Endpoints {
		summarizeCLA(f, c)
	}
	return f
}

func address(a *corev3.Address) string {
	switch {
	case a == nil:
		return "none"
	case a.GetSocketAddress() != nil:
		s := a.GetSocketAddress()
		return joinHostPort(s.Address, s.GetPortValue())
	case a.GetEnvoyInternalAddress() != nil:
		i := a.GetEnvoyInternalAddress()
		if i.EndpointId != "" {
			return "internal:" + i.GetServerListenerName() + ";" + i.EndpointId
		}
		return "internal:" + i.GetServerListenerName()
	case a.GetPipe() != nil:
		return "pipe:" + a.GetPipe().Path
	}
	return "unknown"
}

func joinHostPort(ip string, port uint32) string {
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() {
		return "[" + ip + "]:" + strconv.FormatUint(uint64(port), 10)
	}
	return ip + ":" + strconv.FormatUint(uint64(port), 10)
}

func summarizeListener(f Facts, l *listenerv3.Listener) {
	k := "listener/" + l.Name
	if l.GetInternalListener() != nil {
		f.add("%s: address=internal", k)
	} else {
		f.add("%s: address=%s", k, address(l.Address))
		for _, a := range l.AdditionalAddresses {
			f.add("%s: address=%s", k, address(a.Address))
		}
	}
	if l.GetUseOriginalDst().GetValue() {
		f.add("%s: use_original_dst=true", k)
	}
	if l.TrafficDirection != corev3.TrafficDirection_UNSPECIFIED {
		f.add("%s: direction=%s", k, l.TrafficDirection)
	}
	for _, lf := range l.ListenerFilters {
		f.add("%s: listener_filter=%s", k, lf.Name)
	}
	chains := l.FilterChains
	if l.DefaultFilterChain != nil {
		f.add("%s: default_chain=%s", k, l.DefaultFilterChain.Name)
		chains = append(chains, l.DefaultFilterChain)
	}
	for _, fc := range chains {
		ck := k + " chain/" + fc.Name
		if m := chainMatch(fc.FilterChainMatch); m != "" {
			f.add("%s: match=%s", ck, m)
		}
		if fc.TransportSocket != nil {
			f.add("%s: transport_socket=%s", ck, typeName(fc.TransportSocket.GetTypedConfig()))
		}
		for _, nf := range fc.Filters {
			f.add("%s: filter=%s", ck, nf.Name)
			summarizeNetworkFilter(f, ck, nf)
		}
	}
	if l.FilterChainMatcher != nil {
		for _, path := range flattenMatcher(l.FilterChainMatcher, nil) {
			f.add("%s: chain_matcher %s", k, path)
			// What a reader of the matcher wants to know: which destination IPs reach which chain, whatever
			// the port and protocol conditions between (a service waypoint serves VIPs, not pod IPs).
			conds, chain, _ := strings.Cut(path, " -> ")
			for _, c := range strings.Split(conds, ",") {
				if ip, ok := strings.CutPrefix(c, "ip="); ok {
					f.add("%s: serves ip=%s -> %s", k, ip, chain)
				}
			}
		}
	}
}

func chainMatch(m *listenerv3.FilterChainMatch) string {
	if m == nil {
		return ""
	}
	var parts []string
	if m.DestinationPort != nil {
		parts = append(parts, "port="+strconv.FormatUint(uint64(m.DestinationPort.Value), 10))
	}
	for _, p := range m.PrefixRanges {
		parts = append(parts, fmt.Sprintf("ip=%s/%d", p.AddressPrefix, p.GetPrefixLen().GetValue()))
	}
	if m.TransportProtocol != "" {
		parts = append(parts, "transport="+m.TransportProtocol)
	}
	if len(m.ApplicationProtocols) > 0 {
		parts = append(parts, "alpn="+strings.Join(m.ApplicationProtocols, ","))
	}
	if len(m.ServerNames) > 0 {
		parts = append(parts, "sni="+strings.Join(m.ServerNames, ","))
	}
	for _, p := range m.SourcePrefixRanges {
		parts = append(parts, fmt.Sprintf("source_ip=%s/%d", p.AddressPrefix, p.GetPrefixLen().GetValue()))
	}
	if m.SourceType != listenerv3.FilterChainMatch_ANY {
		parts = append(parts, "source_type="+m.SourceType.String())
	}
	return strings.Join(parts, " ")
}

// flattenMatcher turns a filter_chain_matcher tree into "input=value,...-> chain" lines.
func flattenMatcher(m *xdsmatcherv3.Matcher, prefix []string) []string {
	var out []string
	onMatch := func(cond string, om *xdsmatcherv3.Matcher_OnMatch) {
		p := append(append([]string(nil), prefix...), cond)
		switch {
		case om == nil:
		case om.GetMatcher() != nil:
			out = append(out, flattenMatcher(om.GetMatcher(), p)...)
		case om.GetAction() != nil:
			out = append(out, strings.Join(p, ",")+" -> "+actionName(om.GetAction()))
		}
	}
	if t := m.GetMatcherTree(); t != nil {
		in := inputName(t.Input.GetTypedConfig())
		if em := t.GetExactMatchMap(); em != nil {
			for v, om := range em.Map {
				onMatch(in+"="+v, om)
			}
		}
		if pm := t.GetPrefixMatchMap(); pm != nil {
			for v, om := range pm.Map {
				onMatch(in+"^="+v, om)
			}
		}
		if cm := t.GetCustomMatch(); cm != nil {
			// An IP trie (Istio's destination IPs): one leaf per range.
			ipm := &xdsmatcherv3.IPMatcher{}
			if err := cm.GetTypedConfig().UnmarshalTo(ipm); err == nil {
				for _, rm := range ipm.RangeMatchers {
					for _, r := range rm.Ranges {
						cidr := fmt.Sprintf("%s/%d", r.AddressPrefix, r.GetPrefixLen().GetValue())
						if p := r.GetPrefixLen().GetValue(); p == 32 || (p == 0 && r.GetPrefixLen() == nil) {
							cidr = r.AddressPrefix
						}
						onMatch(in+"="+cidr, rm.OnMatch)
					}
				}
			} else {
				onMatch(in+"~"+cm.GetTypedConfig().GetTypeUrl(), nil)
			}
		}
	}
	if l := m.GetMatcherList(); l != nil {
		for i, fm := range l.Matchers {
			onMatch(fmt.Sprintf("predicate[%d]", i), fm.OnMatch)
		}
	}
	if m.OnNoMatch != nil {
		onMatch("*", m.OnNoMatch)
	}
	return out
}

func actionName(a interface{ GetTypedConfig() *anypb.Any }) string {
	tc := a.GetTypedConfig()
	if tc == nil {
		return "?"
	}
	msg, err := tc.UnmarshalNew()
	if err != nil {
		return tc.TypeUrl
	}
	if s, ok := msg.(interface{ GetValue() string }); ok {
		return s.GetValue()
	}
	return tc.TypeUrl
}

// typeName is the message name of a typed config (transport sockets are named freely; their type is what
// they are).
func typeName(a *anypb.Any) string {
	if a == nil {
		return "none"
	}
	return a.TypeUrl[strings.LastIndex(a.TypeUrl, "/")+1:]
}

func inputName(a *anypb.Any) string {
	if a == nil {
		return "?"
	}
	n := a.TypeUrl[strings.LastIndex(a.TypeUrl, ".")+1:]
	switch n {
	case "DestinationIPInput":
		return "ip"
	case "DestinationPortInput":
		return "port"
	case "ServerNameInput":
		return "sni"
	case "TransportProtocolInput":
		return "transport"
	case "ApplicationProtocolInput":
		return "alpn"
	case "SourceIPInput":
		return "source_ip"
	}
	return n
}

func summarizeNetworkFilter(f Facts, ck string, nf *listenerv3.Filter) {
	tc := nf.GetTypedConfig()
	if tc == nil {
		return
	}
	msg, err := tc.UnmarshalNew()
	if err != nil {
		return
	}
	switch c := msg.(type) {
	case *hcmv3.HttpConnectionManager:
		if rds := c.GetRds(); rds != nil {
			f.add("%s: destination=route:%s", ck, rds.RouteConfigName)
		}
		if rc := c.GetRouteConfig(); rc != nil {
			// An inline route reads like an RDS one (istioctl lists both); only how it is delivered differs.
			f.add("%s: destination=route:%s", ck, rc.Name)
			f.add("%s: inline_route", ck)
			summarizeRouteConfig(f, "route/"+rc.Name, rc)
		}
		for _, hf := range c.HttpFilters {
			f.add("%s: http_filter=%s", ck, hf.Name)
			summarizeHTTPFilter(f, ck, hf)
		}
		if c.CodecType != hcmv3.HttpConnectionManager_AUTO {
			f.add("%s: codec=%s", ck, c.CodecType)
		}
		for _, u := range c.UpgradeConfigs {
			f.add("%s: upgrade=%s", ck, u.UpgradeType)
		}
	case *tcpproxyv3.TcpProxy:
		if cl := c.GetCluster(); cl != "" {
			f.add("%s: destination=cluster:%s", ck, cl)
		}
		if w := c.GetWeightedClusters(); w != nil {
			var parts []string
			for _, wc := range w.Clusters {
				parts = append(parts, fmt.Sprintf("%s:%d", wc.Name, wc.Weight))
			}
			f.add("%s: destination=weighted:%s", ck, strings.Join(parts, ","))
		}
		if c.TunnelingConfig != nil {
			f.add("%s: tunneling=%s", ck, c.TunnelingConfig.Hostname)
		}
	}
}

func summarizeCluster(f Facts, c *clusterv3.Cluster) {
	k := "cluster/" + c.Name
	switch {
	case c.GetClusterType() != nil:
		f.add("%s: type=%s", k, c.GetClusterType().Name)
	default:
		f.add("%s: type=%s", k, c.GetType())
	}
	if c.GetType() == clusterv3.Cluster_EDS && c.EdsClusterConfig != nil && c.EdsClusterConfig.ServiceName != "" && c.EdsClusterConfig.ServiceName != c.Name {
		f.add("%s: eds_service=%s", k, c.EdsClusterConfig.ServiceName)
	}
	f.add("%s: lb=%s", k, c.LbPolicy)
	if c.ConnectTimeout != nil {
		f.add("%s: connect_timeout=%s", k, dur(c.ConnectTimeout))
	}
	if cb := c.CircuitBreakers; cb != nil {
		for _, t := range cb.Thresholds {
			f.add("%s: circuit_breaker[%s]=max_connections:%d,max_pending_requests:%d,max_requests:%d,max_retries:%d", k, t.Priority,
				t.GetMaxConnections().GetValue(), t.GetMaxPendingRequests().GetValue(), t.GetMaxRequests().GetValue(), t.GetMaxRetries().GetValue())
		}
	}
	if od := c.OutlierDetection; od != nil {
		f.add("%s: outlier_detection=consecutive_5xx:%s,interval:%s,base_ejection:%s", k, u32(od.Consecutive_5Xx),
			dur(od.Interval), dur(od.BaseEjectionTime))
		f.add("%s: outlier_detection_gateway=consecutive:%s,enforcing:%s", k, u32(od.ConsecutiveGatewayFailure), u32(od.EnforcingConsecutiveGatewayFailure))
		f.add("%s: outlier_detection_enforcing=5xx:%s,success_rate:%s,max_ejection_percent:%s", k, u32(od.EnforcingConsecutive_5Xx),
			u32(od.EnforcingSuccessRate), u32(od.MaxEjectionPercent))
	}
	if p := c.GetCommonLbConfig().GetHealthyPanicThreshold(); p != nil {
		f.add("%s: healthy_panic_threshold=%g", k, p.Value)
	}
	if r := c.GetRingHashLbConfig(); r != nil {
		f.add("%s: ring_hash=minimum_ring_size:%d", k, r.GetMinimumRingSize().GetValue())
	}
	if m := c.GetMaglevLbConfig(); m != nil {
		f.add("%s: maglev=table_size:%d", k, m.GetTableSize().GetValue())
	}
	if cb := c.CircuitBreakers; cb != nil {
		for _, t := range cb.Thresholds {
			f.add("%s: circuit_breaker[%s].track_remaining=%t", k, t.Priority, t.TrackRemaining)
		}
	}
	for name, opt := range c.TypedExtensionProtocolOptions {
		if m, err := opt.UnmarshalNew(); err == nil {
			if hpo, ok := m.(*httpv3.HttpProtocolOptions); ok && hpo.CommonHttpProtocolOptions != nil {
				co := hpo.CommonHttpProtocolOptions
				f.add("%s: %s.common=idle_timeout:%s,max_requests_per_connection:%s", k, name, dur(co.IdleTimeout), u32(co.MaxRequestsPerConnection))
			}
		}
	}
	if c.TransportSocket != nil {
		f.add("%s: transport_socket=%s", k, typeName(c.TransportSocket.GetTypedConfig()))
	}
	for _, m := range c.TransportSocketMatches {
		f.add("%s: transport_socket_match=%s", k, m.Name)
	}
	if la := c.LoadAssignment; la != nil {
		summarizeCLA(f, la)
	}
	summarizeMetadata(f, k, c.Metadata)
}

func summarizeMetadata(f Facts, k string, md *corev3.Metadata) {
	if md == nil {
		return
	}
	for ns, s := range md.FilterMetadata {
		for _, kv := range flattenStruct(ns, s) {
			f.add("%s: metadata %s", k, kv)
		}
	}
}

func flattenStruct(prefix string, s *structpb.Struct) []string {
	var out []string
	for key, v := range s.GetFields() {
		out = append(out, flattenValue(prefix+"."+key, v)...)
	}
	return out
}

func flattenValue(prefix string, v *structpb.Value) []string {
	switch x := v.Kind.(type) {
	case *structpb.Value_StructValue:
		return flattenStruct(prefix, x.StructValue)
	case *structpb.Value_ListValue:
		var out []string
		for i, e := range x.ListValue.Values {
			out = append(out, flattenValue(fmt.Sprintf("%s[%d]", prefix, i), e)...)
		}
		return out
	case *structpb.Value_StringValue:
		return []string{prefix + "=" + x.StringValue}
	case *structpb.Value_NumberValue:
		return []string{prefix + "=" + strconv.FormatFloat(x.NumberValue, 'g', -1, 64)}
	case *structpb.Value_BoolValue:
		return []string{prefix + "=" + strconv.FormatBool(x.BoolValue)}
	}
	return []string{prefix + "=null"}
}

func dur(d *durationpb.Duration) string {
	if d == nil {
		return "none"
	}
	return d.AsDuration().String()
}

func summarizeRouteConfig(f Facts, k string, rc *routev3.RouteConfiguration) {
	for _, vh := range rc.VirtualHosts {
		vk := k + " vhost/" + vh.Name
		domains := append([]string(nil), vh.Domains...)
		sort.Strings(domains)
		f.add("%s: domains=%s", vk, strings.Join(domains, ","))
		if vh.RetryPolicy != nil {
			f.add("%s: retries=%s", vk, retry(vh.RetryPolicy))
		}
		for i, r := range vh.Routes {
			// Routes are keyed by position (their order is their precedence); the name is a fact of its own.
			rk := fmt.Sprintf("%s route[%d]", vk, i)
			f.add("%s: name=%s", rk, r.Name)
			f.add("%s: match=%s", rk, routeMatch(r.Match))
			if r.Decorator != nil {
				f.add("%s: decorator=%s", rk, r.Decorator.Operation)
			}
			if cfg := r.TypedPerFilterConfig["envoy.filters.http.cors"]; cfg != nil {
				f.add("%s: cors=%s", rk, corsPolicy(cfg))
			}
			switch a := r.Action.(type) {
			case *routev3.Route_Route:
				ra := a.Route
				switch {
				case ra.GetCluster() != "":
					f.add("%s: cluster=%s", rk, ra.GetCluster())
				case ra.GetWeightedClusters() != nil:
					var parts []string
					for _, wc := range ra.GetWeightedClusters().Clusters {
						parts = append(parts, fmt.Sprintf("%s:%d", wc.Name, wc.GetWeight().GetValue()))
					}
					f.add("%s: weighted=%s", rk, strings.Join(parts, ","))
				case ra.GetClusterHeader() != "":
					f.add("%s: cluster_header=%s", rk, ra.GetClusterHeader())
				}
				if ra.Timeout != nil {
					f.add("%s: timeout=%s", rk, dur(ra.Timeout))
				}
				if ra.RetryPolicy != nil {
					f.add("%s: retries=%s", rk, retry(ra.RetryPolicy))
				}
				if msd := ra.MaxStreamDuration; msd != nil && msd.MaxStreamDuration != nil {
					f.add("%s: max_stream_duration=%s", rk, dur(msd.MaxStreamDuration))
				}
				if ra.GetPrefixRewrite() != "" {
					f.add("%s: prefix_rewrite=%s", rk, ra.GetPrefixRewrite())
				}
				for j, hp := range ra.HashPolicy {
					f.add("%s: hash_policy[%d]=%s", rk, j, hashPolicy(hp))
				}
				for _, u := range ra.UpgradeConfigs {
					f.add("%s: upgrade=%s", rk, u.UpgradeType)
				}
			case *routev3.Route_Redirect:
				f.add("%s: redirect=host:%s,path:%s,code:%s", rk, a.Redirect.HostRedirect, a.Redirect.GetPathRedirect(), a.Redirect.ResponseCode)
			case *routev3.Route_DirectResponse:
				f.add("%s: direct_response=%d", rk, a.DirectResponse.Status)
			case *routev3.Route_NonForwardingAction:
				f.add("%s: non_forwarding", rk)
			}
		}
	}
}

// corsPolicy is a route's CORS policy as one fact: every field, in Envoy's JSON.
func corsPolicy(cfg *anypb.Any) string {
	msg, err := cfg.UnmarshalNew()
	if err != nil {
		return "undecodable:" + cfg.TypeUrl
	}
	b, err := protojson.MarshalOptions{}.Marshal(msg)
	if err != nil {
		return "unmarshalable"
	}
	// protojson's output is not byte-stable (it may add spaces); compact it.
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return string(b)
	}
	return out.String()
}

func u32(v *wrapperspb.UInt32Value) string {
	if v == nil {
		return "unset"
	}
	return strconv.FormatUint(uint64(v.Value), 10)
}

func hashPolicy(hp *routev3.RouteAction_HashPolicy) string {
	switch p := hp.PolicySpecifier.(type) {
	case *routev3.RouteAction_HashPolicy_Header_:
		return "header:" + p.Header.HeaderName
	case *routev3.RouteAction_HashPolicy_Cookie_:
		return fmt.Sprintf("cookie:%s,ttl:%s,path:%s,attributes:%d", p.Cookie.Name, dur(p.Cookie.Ttl), p.Cookie.Path, len(p.Cookie.Attributes))
	case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
		return fmt.Sprintf("source_ip:%t", p.ConnectionProperties.SourceIp)
	case *routev3.RouteAction_HashPolicy_QueryParameter_:
		return "query_parameter:" + p.QueryParameter.Name
	}
	return fmt.Sprintf("%T", hp.PolicySpecifier)
}

func retry(r *routev3.RetryPolicy) string {
	codes := make([]string, len(r.RetriableStatusCodes))
	for i, c := range r.RetriableStatusCodes {
		codes[i] = strconv.FormatUint(uint64(c), 10)
	}
	var preds []string
	for _, p := range r.RetryHostPredicate {
		preds = append(preds, p.Name)
	}
	return fmt.Sprintf("on:%s,attempts:%d,per_try_timeout:%s,host_selection_attempts:%d,status:%s,host_predicates:%s",
		r.RetryOn, r.GetNumRetries().GetValue(), dur(r.PerTryTimeout), r.HostSelectionRetryMaxAttempts,
		strings.Join(codes, "|"), strings.Join(preds, "|"))
}

func routeMatch(m *routev3.RouteMatch) string {
	if m == nil {
		return "none"
	}
	var parts []string
	switch p := m.PathSpecifier.(type) {
	case *routev3.RouteMatch_Prefix:
		parts = append(parts, "prefix:"+p.Prefix)
	case *routev3.RouteMatch_Path:
		parts = append(parts, "path:"+p.Path)
	case *routev3.RouteMatch_SafeRegex:
		parts = append(parts, "regex:"+p.SafeRegex.Regex)
	case *routev3.RouteMatch_ConnectMatcher_:
		parts = append(parts, "connect")
	case *routev3.RouteMatch_PathSeparatedPrefix:
		parts = append(parts, "path_prefix:"+p.PathSeparatedPrefix)
	}
	if m.CaseSensitive != nil && !m.CaseSensitive.Value {
		parts = append(parts, "case_insensitive")
	}
	for _, h := range m.Headers {
		parts = append(parts, "header:"+h.Name+headerMatch(h))
	}
	for _, q := range m.QueryParameters {
		parts = append(parts, "query:"+q.Name+"="+stringMatch(q.GetStringMatch()))
	}
	return strings.Join(parts, " ")
}

func headerMatch(h *routev3.HeaderMatcher) string {
	inv := ""
	if h.InvertMatch {
		inv = "!"
	}
	switch s := h.HeaderMatchSpecifier.(type) {
	case *routev3.HeaderMatcher_StringMatch:
		return inv + "=" + stringMatch(s.StringMatch)
	case *routev3.HeaderMatcher_PresentMatch:
		return inv + " present"
	case *routev3.HeaderMatcher_ExactMatch:
		return inv + "=exact:" + s.ExactMatch
	case *routev3.HeaderMatcher_PrefixMatch:
		return inv + "=prefix:" + s.PrefixMatch
	case *routev3.HeaderMatcher_SafeRegexMatch:
		return inv + "=regex:" + s.SafeRegexMatch.Regex
	}
	return inv + "?"
}

func stringMatch(m *matcherv3.StringMatcher) string {
	if m == nil {
		return "nil"
	}
	ci := ""
	if m.IgnoreCase {
		ci = "(ignore_case)"
	}
	switch p := m.MatchPattern.(type) {
	case *matcherv3.StringMatcher_Exact:
		return "exact:" + p.Exact + ci
	case *matcherv3.StringMatcher_Prefix:
		return "prefix:" + p.Prefix + ci
	case *matcherv3.StringMatcher_Suffix:
		return "suffix:" + p.Suffix + ci
	case *matcherv3.StringMatcher_SafeRegex:
		return "regex:" + p.SafeRegex.Regex + ci
	case *matcherv3.StringMatcher_Contains:
		return "contains:" + p.Contains + ci
	}
	return "?"
}

func summarizeCLA(f Facts, c *endpointv3.ClusterLoadAssignment) {
	k := "endpoints/" + c.ClusterName
	n := 0
	for _, le := range c.Endpoints {
		for _, lb := range le.LbEndpoints {
			n++
			addr := address(lb.GetEndpoint().GetAddress())
			ek := k + " " + addr
			f.add("%s: endpoint", ek)
			for _, a := range lb.GetEndpoint().GetAdditionalAddresses() {
				f.add("%s: additional_address=%s", ek, address(a.Address))
			}
			f.add("%s: health=%s", ek, lb.HealthStatus)
			if w := lb.GetLoadBalancingWeight().GetValue(); w > 1 {
				f.add("%s: weight=%d", ek, w)
			}
			if loc := le.Locality; loc != nil && (loc.Region != "" || loc.Zone != "" || loc.SubZone != "") {
				f.add("%s: locality=%s/%s/%s", ek, loc.Region, loc.Zone, loc.SubZone)
			}
			if le.Priority != 0 {
				f.add("%s: priority=%d", ek, le.Priority)
			}
			summarizeMetadata(f, ek, lb.Metadata)
		}
	}
	f.add("%s: count=%d", k, n)
}
