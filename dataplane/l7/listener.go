package l7

import (
	"fmt"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	"net/netip"
	"strconv"
	"strings"

	corexdsv3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	networkinputsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/common_inputs/network/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Listener is a compiled listener.
type Listener struct {
	Name string
	// Address is the socket address; zero for internal listeners.
	Address  netip.AddrPort
	Internal bool
	Chains   []*FilterChain
	matcher  *chainMatcher // filter_chain_matcher, if set
	fallback *FilterChain  // default_filter_chain
}

// FilterChain is one compiled filter chain: an HTTP connection manager or a TCP proxy.
type FilterChain struct {
	Name string
	HTTP *HTTPManager
	TCP  *TCPProxy
	// TLS says the chain terminates TLS (connect_terminate); the embedding proxy does that natively.
	TLS bool

	ports    []uint32 // filter_chain_match.destination_port (at most one)
	prefixes []netip.Prefix
}

// HTTPManager is a compiled HTTP connection manager.
type HTTPManager struct {
	StatPrefix string
	// RDS names the route configuration; Inline is set instead for an inline route_config.
	RDS    string
	Inline *RouteTable
	// Filters run in order before the router: jwt_authn, RBAC, fault, CORS.
	jwt                  *JWTAuthn
	rbac                 []*RBAC
	fault                *Fault // HCM-level fault filter config; nil: no fault filter
	cors                 bool   // the CORS filter is in the chain (after fault): routes' CORS policies apply
	generateRequestID    bool
	useRemoteAddress     bool
	skipXFFAppend        bool
	suppressEnvoyHeaders bool
	connect              bool // accepts CONNECT (the HBONE terminator)
	xfcc                 xfcc // forward_client_cert_details
}

// TCPProxy is a compiled tcp_proxy filter.
type TCPProxy struct {
	StatPrefix string
	Cluster    string
	Weighted   []WeightedCluster
	total      uint64
	// Tunnel is set on connect_originate: the connection is carried over HBONE (done natively).
	Tunnel bool
}

const (
	filterHCM      = "envoy.filters.network.http_connection_manager"
	filterTCPProxy = "envoy.filters.network.tcp_proxy"
)

func compileListener(l *listenerv3.Listener) (*Listener, error) {
	if err := checkFields(l, "name", "address", "filter_chains", "filter_chain_matcher", "default_filter_chain",
		"listener_filters", "use_original_dst", "internal_listener", "traffic_direction", "stat_prefix",
		"continue_on_listener_filters_timeout", "listener_filters_timeout", "metadata"); err != nil {
		return nil, err
	}
	out := &Listener{Name: l.GetName(), Internal: l.GetInternalListener() != nil}
	if a := l.GetAddress(); a != nil {
		sa := a.GetSocketAddress()
		if sa == nil {
			return nil, fmt.Errorf("address: only socket addresses are supported")
		}
		ip, err := netip.ParseAddr(sa.GetAddress())
		if err != nil {
			return nil, fmt.Errorf("address: %w", err)
		}
		out.Address = netip.AddrPortFrom(ip, uint16(sa.GetPortValue()))
	} else if !out.Internal {
		return nil, fmt.Errorf("address: missing (and not an internal listener)")
	}
	for i, lf := range l.GetListenerFilters() {
		msg, err := lf.GetTypedConfig().UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("listener filter %d: unsupported filter %s (unknown type %s)", i, lf.GetName(), lf.GetTypedConfig().GetTypeUrl())
		}
		switch msg.(type) {
		case *originaldstv3.OriginalDst, *httpinspectorv3.HttpInspector, *tlsinspectorv3.TlsInspector:
			// The destination comes from the HBONE target or SO_ORIGINAL_DST, and protocols are sniffed
			// by the HTTP server: these filters have nothing left to do.
		default:
			return nil, fmt.Errorf("listener filter %d: unsupported filter %s", i, lf.GetName())
		}
	}
	names := map[string]*FilterChain{}
	for i, fc := range l.GetFilterChains() {
		c, err := compileChain(fc)
		if err != nil {
			return nil, fmt.Errorf("filter chain %d: %w", i, err)
		}
		if c.Name != "" {
			if _, dup := names[c.Name]; dup {
				return nil, fmt.Errorf("filter chain %d: duplicate name %q", i, c.Name)
			}
			names[c.Name] = c
		}
		out.Chains = append(out.Chains, c)
	}
	if d := l.GetDefaultFilterChain(); d != nil {
		c, err := compileChain(d)
		if err != nil {
			return nil, fmt.Errorf("default_filter_chain: %w", err)
		}
		out.fallback = c
	}
	if m := l.GetFilterChainMatcher(); m != nil {
		cm, err := compileChainMatcher(m, names)
		if err != nil {
			return nil, fmt.Errorf("filter_chain_matcher: %w", err)
		}
		out.matcher = cm
	}
	return out, nil
}

func compileChain(fc *listenerv3.FilterChain) (*FilterChain, error) {
	if err := checkFields(fc, "name", "filters", "filter_chain_match", "transport_socket", "metadata"); err != nil {
		return nil, err
	}
	c := &FilterChain{Name: fc.GetName()}
	if m := fc.GetFilterChainMatch(); m != nil {
		if err := checkFields(m, "destination_port", "prefix_ranges"); err != nil {
			return nil, fmt.Errorf("filter_chain_match: %w", err)
		}
		if p := m.GetDestinationPort(); p != nil {
			c.ports = []uint32{p.GetValue()}
		}
		for _, r := range m.GetPrefixRanges() {
			p, err := cidrPrefix(r)
			if err != nil {
				return nil, fmt.Errorf("filter_chain_match.prefix_ranges: %w", err)
			}
			c.prefixes = append(c.prefixes, p)
		}
	}
	if ts := fc.GetTransportSocket(); ts != nil {
		msg, err := ts.GetTypedConfig().UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("transport_socket: %w", err)
		}
		d, ok := msg.(*tlsv3.DownstreamTlsContext)
		if !ok {
			return nil, fmt.Errorf("transport_socket: unsupported transport socket %s", ts.GetName())
		}
		if !d.GetRequireClientCertificate().GetValue() {
			return nil, fmt.Errorf("transport_socket: TLS without require_client_certificate is not supported (HBONE is mutual TLS)")
		}
		c.TLS = true
	}
	if len(fc.GetFilters()) != 1 {
		// Every chain meshlab generates has exactly one terminal filter.
		for _, f := range fc.GetFilters() {
			if f.GetName() != filterHCM && f.GetName() != filterTCPProxy {
				return nil, fmt.Errorf("unsupported filter %s", f.GetName())
			}
		}
		return nil, fmt.Errorf("filters: want exactly one (http_connection_manager or tcp_proxy), have %d", len(fc.GetFilters()))
	}
	f := fc.GetFilters()[0]
	msg, err := f.GetTypedConfig().UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("unsupported filter %s (unknown type %s)", f.GetName(), f.GetTypedConfig().GetTypeUrl())
	}
	switch m := msg.(type) {
	case *hcmv3.HttpConnectionManager:
		h, err := compileHCM(m)
		if err != nil {
			return nil, fmt.Errorf("filter %s: %w", f.GetName(), err)
		}
		c.HTTP = h
	case *tcpproxyv3.TcpProxy:
		t, err := compileTCPProxy(m)
		if err != nil {
			return nil, fmt.Errorf("filter %s: %w", f.GetName(), err)
		}
		c.TCP = t
	default:
		return nil, fmt.Errorf("unsupported filter %s", f.GetName())
	}
	return c, nil
}

func compileHCM(m *hcmv3.HttpConnectionManager) (*HTTPManager, error) {
	if err := checkFields(m, "stat_prefix", "codec_type", "rds", "route_config", "http_filters", "use_remote_address",
		"normalize_path", "merge_slashes", "http2_protocol_options", "http_protocol_options", "upgrade_configs",
		"generate_request_id", "preserve_external_request_id", "server_name", "stream_idle_timeout",
		"skip_xff_append", "xff_num_trusted_hops", "forward_client_cert_details", "set_current_client_cert_details"); err != nil {
		return nil, err
	}
	x, err := compileXFCC(m)
	if err != nil {
		return nil, err
	}
	h := &HTTPManager{
		StatPrefix:        m.GetStatPrefix(),
		generateRequestID: boolOr(m.GetGenerateRequestId(), true),
		useRemoteAddress:  m.GetUseRemoteAddress().GetValue(),
		skipXFFAppend:     m.GetSkipXffAppend(),
		xfcc:              x,
	}
	for _, u := range m.GetUpgradeConfigs() {
		if u.GetUpgradeType() != "CONNECT" {
			return nil, fmt.Errorf("upgrade_configs: unsupported upgrade %q", u.GetUpgradeType())
		}
		h.connect = true
	}
	switch r := m.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		if err := checkADS(r.Rds.GetConfigSource()); err != nil {
			return nil, fmt.Errorf("rds.config_source: %w", err)
		}
		if r.Rds.GetRouteConfigName() == "" {
			return nil, fmt.Errorf("rds: empty route_config_name")
		}
		h.RDS = r.Rds.GetRouteConfigName()
	case *hcmv3.HttpConnectionManager_RouteConfig:
		rt, err := compileRouteConfig(r.RouteConfig)
		if err != nil {
			return nil, fmt.Errorf("route_config %s: %w", r.RouteConfig.GetName(), err)
		}
		h.Inline = rt
	default:
		return nil, fmt.Errorf("unsupported route specifier %T", r)
	}
	filters := m.GetHttpFilters()
	if len(filters) == 0 {
		return nil, fmt.Errorf("http_filters: the router must be last")
	}
	for i, hf := range filters {
		msg, err := hf.GetTypedConfig().UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("http filter %d: unsupported filter %s (unknown type %s)", i, hf.GetName(), hf.GetTypedConfig().GetTypeUrl())
		}
		last := i == len(filters)-1
		switch f := msg.(type) {
		case *jwtv3.JwtAuthentication:
			if h.jwt != nil || len(h.rbac) > 0 || h.fault != nil {
				// RBAC reads what jwt_authn writes: only the order Istio generates is executed.
				return nil, fmt.Errorf("http filter %d (%s): jwt_authn must come once, before rbac and fault", i, hf.GetName())
			}
			j, err := compileJWTAuthn(f)
			if err != nil {
				return nil, fmt.Errorf("http filter %d (%s): %w", i, hf.GetName(), err)
			}
			h.jwt = j
		case *rbacv3.RBAC:
			r, err := compileRBAC(f)
			if err != nil {
				return nil, fmt.Errorf("http filter %d (%s): %w", i, hf.GetName(), err)
			}
			h.rbac = append(h.rbac, r)
		case *faultv3.HTTPFault:
			if h.fault != nil {
				return nil, fmt.Errorf("http filter %d (%s): more than one fault filter", i, hf.GetName())
			}
			ft, err := compileFault(f)
			if err != nil {
				return nil, fmt.Errorf("http filter %d (%s): %w", i, hf.GetName(), err)
			}
			h.fault = ft
		case *corsv3.Cors:
			if h.cors {
				return nil, fmt.Errorf("http filter %d (%s): more than one CORS filter", i, hf.GetName())
			}
			if err := checkFields(f); err != nil {
				return nil, fmt.Errorf("http filter %d (%s): %w", i, hf.GetName(), err)
			}
			h.cors = true
		case *routerv3.Router:
			if !last {
				return nil, fmt.Errorf("http filter %d (%s): the router must be last", i, hf.GetName())
			}
			if err := checkFields(f, "suppress_envoy_headers", "start_child_span"); err != nil {
				return nil, fmt.Errorf("http filter %d (%s): %w", i, hf.GetName(), err)
			}
			h.suppressEnvoyHeaders = f.GetSuppressEnvoyHeaders()
			continue
		default:
			return nil, fmt.Errorf("http filter %d: unsupported filter %s", i, hf.GetName())
		}
		if last {
			return nil, fmt.Errorf("http_filters: the router must be last")
		}
	}
	return h, nil
}

func boolOr(v *wrapperspb.BoolValue, def bool) bool {
	if v == nil {
		return def
	}
	return v.GetValue()
}

func compileTCPProxy(m *tcpproxyv3.TcpProxy) (*TCPProxy, error) {
	if err := checkFields(m, "stat_prefix", "cluster", "weighted_clusters", "tunneling_config", "idle_timeout", "max_connect_attempts"); err != nil {
		return nil, err
	}
	t := &TCPProxy{StatPrefix: m.GetStatPrefix()}
	switch c := m.GetClusterSpecifier().(type) {
	case *tcpproxyv3.TcpProxy_Cluster:
		t.Cluster = c.Cluster
	case *tcpproxyv3.TcpProxy_WeightedClusters:
		for _, w := range c.WeightedClusters.GetClusters() {
			if err := checkFields(w, "name", "weight"); err != nil {
				return nil, fmt.Errorf("weighted_clusters %s: %w", w.GetName(), err)
			}
			t.Weighted = append(t.Weighted, WeightedCluster{Name: w.GetName(), Weight: w.GetWeight()})
			t.total += uint64(w.GetWeight())
		}
		if t.total == 0 {
			return nil, fmt.Errorf("weighted_clusters: weights sum to 0")
		}
	default:
		return nil, fmt.Errorf("no cluster")
	}
	if tc := m.GetTunnelingConfig(); tc != nil {
		if err := checkFields(tc, "hostname"); err != nil {
			return nil, fmt.Errorf("tunneling_config: %w", err)
		}
		if tc.GetHostname() != "%DOWNSTREAM_LOCAL_ADDRESS%" {
			return nil, fmt.Errorf("tunneling_config.hostname: only %%DOWNSTREAM_LOCAL_ADDRESS%% is supported, got %q", tc.GetHostname())
		}
		t.Tunnel = true
	}
	return t, nil
}

// chainMatcher is a compiled xds.type.matcher.v3.Matcher over destination IP or port.
type chainMatcher struct {
	input   string // "ip" or "port"
	exact   map[string]*chainOnMatch
	noMatch *chainOnMatch
}

type chainOnMatch struct {
	chain *FilterChain
	next  *chainMatcher
}

func compileChainMatcher(m *xdsmatcherv3.Matcher, chains map[string]*FilterChain) (*chainMatcher, error) {
	if err := checkFields(m, "matcher_tree", "on_no_match"); err != nil {
		return nil, err
	}
	tree := m.GetMatcherTree()
	if tree == nil {
		return nil, fmt.Errorf("only matcher_tree is supported")
	}
	if err := checkFields(tree, "input", "exact_match_map"); err != nil {
		return nil, fmt.Errorf("matcher_tree: %w", err)
	}
	out := &chainMatcher{exact: map[string]*chainOnMatch{}}
	in, err := tree.GetInput().GetTypedConfig().UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("matcher_tree.input %s: %w", tree.GetInput().GetName(), err)
	}
	switch in.(type) {
	case *networkinputsv3.DestinationIPInput:
		out.input = "ip"
	case *networkinputsv3.DestinationPortInput:
		out.input = "port"
	default:
		return nil, fmt.Errorf("matcher_tree.input: unsupported input %s", tree.GetInput().GetTypedConfig().GetTypeUrl())
	}
	for key, om := range tree.GetExactMatchMap().GetMap() {
		c, err := compileOnMatch(om, chains)
		if err != nil {
			return nil, fmt.Errorf("matcher_tree[%q]: %w", key, err)
		}
		if out.input == "ip" {
			// Keys are compared with the canonical form of the destination address.
			a, err := netip.ParseAddr(key)
			if err != nil {
				return nil, fmt.Errorf("matcher_tree[%q]: not an IP address", key)
			}
			key = a.String()
		}
		out.exact[key] = c
	}
	if nm := m.GetOnNoMatch(); nm != nil {
		c, err := compileOnMatch(nm, chains)
		if err != nil {
			return nil, fmt.Errorf("on_no_match: %w", err)
		}
		out.noMatch = c
	}
	return out, nil
}

func compileOnMatch(om *xdsmatcherv3.Matcher_OnMatch, chains map[string]*FilterChain) (*chainOnMatch, error) {
	switch x := om.GetOnMatch().(type) {
	case *xdsmatcherv3.Matcher_OnMatch_Matcher:
		next, err := compileChainMatcher(x.Matcher, chains)
		if err != nil {
			return nil, err
		}
		return &chainOnMatch{next: next}, nil
	case *xdsmatcherv3.Matcher_OnMatch_Action:
		name, err := actionChainName(x.Action)
		if err != nil {
			return nil, err
		}
		c, ok := chains[name]
		if !ok {
			return nil, fmt.Errorf("action names filter chain %q, which the listener does not have", name)
		}
		return &chainOnMatch{chain: c}, nil
	}
	return nil, fmt.Errorf("empty on_match")
}

// actionChainName reads a filter-chain action: a StringValue holding the chain name.
func actionChainName(a *corexdsv3.TypedExtensionConfig) (string, error) {
	msg, err := a.GetTypedConfig().UnmarshalNew()
	if err != nil {
		return "", fmt.Errorf("action %s: %w", a.GetName(), err)
	}
	sv, ok := msg.(*wrapperspb.StringValue)
	if !ok {
		return "", fmt.Errorf("action %s: want a google.protobuf.StringValue chain name, got %s", a.GetName(), a.GetTypedConfig().GetTypeUrl())
	}
	return sv.GetValue(), nil
}

// find walks the matcher tree for dst; trail, when not nil, records each step ("destination IP
// 10.96.10.13", "destination port 9080", "no match: on_no_match").
func (m *chainMatcher) find(dst netip.AddrPort, trail *[]string) *FilterChain {
	key := dst.Addr().Unmap().String()
	what := "destination IP "
	if m.input == "port" {
		key, what = strconv.Itoa(int(dst.Port())), "destination port "
	}
	if om, ok := m.exact[key]; ok {
		note(trail, what+key)
		if c := om.resolve(dst, trail); c != nil {
			return c
		}
	}
	if m.noMatch != nil {
		note(trail, what+key+" matches no entry: on_no_match")
		return m.noMatch.resolve(dst, trail)
	}
	note(trail, what+key+" matches no entry")
	return nil
}

func note(trail *[]string, step string) {
	if trail != nil {
		*trail = append(*trail, step)
	}
}

func (o *chainOnMatch) resolve(dst netip.AddrPort, trail *[]string) *FilterChain {
	if o.chain != nil {
		return o.chain
	}
	return o.next.find(dst, trail)
}

// Match selects the filter chain for a connection to dst: through filter_chain_matcher when the listener
// has one, else Envoy's filter_chain_match order (destination port, then the longest destination prefix),
// falling back to the default chain. nil means no chain: Envoy closes such connections.
func (l *Listener) Match(dst netip.AddrPort) *FilterChain { return l.match(dst, nil) }

// MatchTrail is Match that also says how the chain was selected, step by step.
func (l *Listener) MatchTrail(dst netip.AddrPort) (*FilterChain, []string) {
	var trail []string
	c := l.match(dst, &trail)
	return c, trail
}

func (l *Listener) match(dst netip.AddrPort, trail *[]string) *FilterChain {
	if l.matcher != nil {
		note(trail, "filter_chain_matcher")
		if c := l.matcher.find(dst, trail); c != nil {
			return c
		}
		if l.fallback != nil {
			note(trail, "default_filter_chain")
		}
		return l.fallback
	}
	var best *FilterChain
	bestPort, bestBits := false, -1
	for _, c := range l.Chains {
		portMatch := false
		if len(c.ports) > 0 {
			if c.ports[0] != uint32(dst.Port()) {
				continue
			}
			portMatch = true
		}
		bits := 0
		if len(c.prefixes) > 0 {
			bits = -1
			for _, p := range c.prefixes {
				if p.Contains(dst.Addr().Unmap()) && p.Bits() > bits {
					bits = p.Bits()
				}
			}
			if bits < 0 {
				continue
			}
		}
		if best == nil || (portMatch && !bestPort) || (portMatch == bestPort && bits > bestBits) {
			best, bestPort, bestBits = c, portMatch, bits
		}
	}
	if best == nil {
		if l.fallback != nil {
			note(trail, "no filter_chain_match fits "+dst.String()+": default_filter_chain")
		}
		return l.fallback
	}
	if trail != nil {
		var m []string
		if bestPort {
			m = append(m, "destination_port "+strconv.Itoa(int(dst.Port())))
		}
		for _, p := range best.prefixes {
			if p.Contains(dst.Addr().Unmap()) && p.Bits() == bestBits {
				m = append(m, "prefix_ranges "+p.String())
				break
			}
		}
		if len(m) == 0 {
			m = append(m, "no filter_chain_match (matches any destination)")
		}
		note(trail, "filter_chain_match: "+strings.Join(m, ", "))
	}
	return best
}
