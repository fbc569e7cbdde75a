package l7

import (
	"fmt"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// RouteTable is a compiled RouteConfiguration.
type RouteTable struct {
	Name string
	// vhosts in Envoy's precedence: exact domains, then suffix wildcards (longest first), then prefix
	// wildcards (longest first), then "*".
	exact    map[string]*virtualHost
	suffixes []domainHost // "*.example.com" stored as ".example.com"
	prefixes []domainHost // "example.*" stored as "example."
	any      *virtualHost
}

type domainHost struct {
	affix string
	vh    *virtualHost
}

type virtualHost struct {
	name                string
	routes              []*Route
	includeAttemptCount bool
}

// Route is one compiled route: its match and what to do.
type Route struct {
	Name string
	// Source is the object that produced the route, from its metadata filter_metadata.istio.config (Istio's
	// API path of the VirtualService or HTTPRoute); empty when the control plane did not say.
	Source string
	// match
	pathKind      string // prefix, exact, regex, separated, connect
	path          string
	re            *regexp.Regexp
	caseSensitive bool
	headers       []*headerMatch
	query         []*queryMatch

	// action: exactly one of Direct, Redirect or (Cluster | Weighted)
	Direct   *DirectResponse
	Redirect *redirectAction
	Cluster  string
	Weighted []WeightedCluster
	// totalWeight is the sum of weights (or the configured total_weight).
	totalWeight uint64
	// Timeout bounds the whole request including retries; 0 disables it.
	Timeout time.Duration
	Retry   *RetryPolicy
	// attemptCount adds x-envoy-attempt-count upstream (the virtual host's include_request_attempt_count).
	attemptCount bool
	// Fault overrides the HCM fault filter for this route (typed_per_filter_config).
	Fault *Fault
	// cors is the route's CORS policy, executed when the chain has the CORS filter; nil: none.
	cors *corsPolicy

	// Request and response header manipulation and request rewrites; nil or empty when the route has none,
	// so that plain routes pay a nil check only.
	reqHeaders, respHeaders *headerMutation
	hostRewrite             string
	prefixRewrite           string
	hasPrefixRewrite        bool
	regexRewrite            *regexRewrite
	// mirrors are the request mirror policies; nil for routes without (a length check on the request path).
	mirrors []mirrorPolicy
	// hash is what a consistent-hash cluster hashes (hash_policy); nil for none.
	hash []hashPolicy
}

// WeightedCluster is one backend of a traffic split.
type WeightedCluster struct {
	Name   string
	Weight uint32
	// Header manipulation and host rewrite when this cluster is picked; applied before the route's.
	reqHeaders, respHeaders *headerMutation
	hostRewrite             string
}

// DirectResponse answers without an upstream.
type DirectResponse struct {
	Status int
	Body   string
}

type queryMatch struct {
	name    string
	str     *stringMatch
	present bool
}

// defaultRouteTimeout is Envoy's when a route sets none.
const defaultRouteTimeout = 15 * time.Second

func compileRouteConfig(rc *routev3.RouteConfiguration) (*RouteTable, error) {
	if err := checkFields(rc, "name", "virtual_hosts", "validate_clusters", "max_direct_response_body_size_bytes", "ignore_port_in_host_matching"); err != nil {
		return nil, err
	}
	t := &RouteTable{Name: rc.GetName(), exact: map[string]*virtualHost{}}
	for i, v := range rc.GetVirtualHosts() {
		vh, err := compileVirtualHost(v)
		if err != nil {
			return nil, fmt.Errorf("virtual host %d (%s): %w", i, v.GetName(), err)
		}
		for _, d := range v.GetDomains() {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				if t.any != nil {
					return nil, fmt.Errorf("virtual host %d (%s): domain \"*\" is already used by %s", i, v.GetName(), t.any.name)
				}
				t.any = vh
			case strings.HasPrefix(d, "*"):
				t.suffixes = append(t.suffixes, domainHost{d[1:], vh})
			case strings.HasSuffix(d, "*"):
				t.prefixes = append(t.prefixes, domainHost{d[:len(d)-1], vh})
			default:
				if _, dup := t.exact[d]; dup {
					return nil, fmt.Errorf("virtual host %d (%s): duplicate domain %q", i, v.GetName(), d)
				}
				t.exact[d] = vh
			}
		}
	}
	longestFirst := func(s []domainHost) {
		sort.SliceStable(s, func(i, j int) bool { return len(s[i].affix) > len(s[j].affix) })
	}
	longestFirst(t.suffixes)
	longestFirst(t.prefixes)
	return t, nil
}

// VirtualHost picks the virtual host for a Host header; with a port that matches nothing, the port is
// dropped and the lookup repeated.
func (t *RouteTable) virtualHost(host string) *virtualHost {
	host = strings.ToLower(host)
	if vh := t.lookup(host); vh != nil {
		return vh
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		if vh := t.lookup(h); vh != nil {
			return vh
		}
	}
	return t.any
}

func (t *RouteTable) lookup(host string) *virtualHost {
	if vh, ok := t.exact[host]; ok {
		return vh
	}
	for _, s := range t.suffixes {
		// A wildcard must cover at least one character: "*.foo.com" does not match ".foo.com".
		if len(host) > len(s.affix) && strings.HasSuffix(host, s.affix) {
			return s.vh
		}
	}
	for _, p := range t.prefixes {
		if len(host) > len(p.affix) && strings.HasPrefix(host, p.affix) {
			return p.vh
		}
	}
	return nil
}

// Match returns the first route matching r, or nil (Envoy answers 404).
func (t *RouteTable) Match(r *http.Request) *Route {
	vh := t.virtualHost(r.Host)
	if vh == nil {
		return nil
	}
	for _, rt := range vh.routes {
		if rt.matches(r) {
			return rt
		}
	}
	return nil
}

func compileVirtualHost(v *routev3.VirtualHost) (*virtualHost, error) {
	if err := checkFields(v, "name", "domains", "routes", "include_request_attempt_count"); err != nil {
		return nil, err
	}
	vh := &virtualHost{name: v.GetName(), includeAttemptCount: v.GetIncludeRequestAttemptCount()}
	for i, r := range v.GetRoutes() {
		rt, err := compileRoute(r)
		if err != nil {
			return nil, fmt.Errorf("route %d (%s): %w", i, r.GetName(), err)
		}
		rt.attemptCount = vh.includeAttemptCount
		vh.routes = append(vh.routes, rt)
	}
	return vh, nil
}

func compileRoute(r *routev3.Route) (*Route, error) {
	if err := checkFields(r, "name", "match", "route", "direct_response", "redirect", "decorator", "metadata", "typed_per_filter_config",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"); err != nil {
		return nil, err
	}
	rt := &Route{Name: r.GetName(), Source: r.GetMetadata().GetFilterMetadata()["istio"].GetFields()["config"].GetStringValue()}
	var err error
	if rt.reqHeaders, err = compileHeaderMutation(r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove()); err != nil {
		return nil, fmt.Errorf("request headers: %w", err)
	}
	if rt.respHeaders, err = compileHeaderMutation(r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove()); err != nil {
		return nil, fmt.Errorf("response headers: %w", err)
	}
	if err := rt.compileMatch(r.GetMatch()); err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	for name, cfg := range r.GetTypedPerFilterConfig() {
		if err := rt.perFilter(name, cfg); err != nil {
			return nil, fmt.Errorf("typed_per_filter_config %s: %w", name, err)
		}
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		if err := rt.compileAction(a.Route); err != nil {
			return nil, fmt.Errorf("route: %w", err)
		}
	case *routev3.Route_DirectResponse:
		if err := checkFields(a.DirectResponse, "status", "body"); err != nil {
			return nil, fmt.Errorf("direct_response: %w", err)
		}
		d := &DirectResponse{Status: int(a.DirectResponse.GetStatus())}
		if d.Status < 200 || d.Status > 599 {
			return nil, fmt.Errorf("direct_response: status %d out of range", d.Status)
		}
		if b := a.DirectResponse.GetBody(); b != nil {
			if err := checkFields(b, "inline_string", "inline_bytes"); err != nil {
				return nil, fmt.Errorf("direct_response.body: %w", err)
			}
			d.Body = b.GetInlineString() + string(b.GetInlineBytes())
		}
		rt.Direct = d
	case *routev3.Route_Redirect:
		d, err := compileRedirect(a.Redirect)
		if err != nil {
			return nil, fmt.Errorf("redirect: %w", err)
		}
		rt.Redirect = d
	case nil:
		return nil, fmt.Errorf("no action")
	default:
		return nil, fmt.Errorf("unsupported action %T", a)
	}
	return rt, nil
}

func (rt *Route) perFilter(name string, cfg *anypb.Any) error {
	msg, err := cfg.UnmarshalNew()
	if err != nil {
		return fmt.Errorf("decoding %s: %w", cfg.GetTypeUrl(), err)
	}
	switch m := msg.(type) {
	case *httpfaultv3.HTTPFault:
		f, err := compileFault(m)
		if err != nil {
			return err
		}
		rt.Fault = f
		return nil
	case *corsv3.CorsPolicy:
		c, err := compileCORS(m)
		if err != nil {
			return err
		}
		rt.cors = c
		return nil
	}
	return fmt.Errorf("unsupported per-route config %s", cfg.GetTypeUrl())
}

func (rt *Route) compileMatch(m *routev3.RouteMatch) error {
	if m == nil {
		return fmt.Errorf("missing")
	}
	if err := checkFields(m, "prefix", "path", "safe_regex", "path_separated_prefix", "connect_matcher", "headers", "query_parameters", "case_sensitive"); err != nil {
		return err
	}
	rt.caseSensitive = m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		rt.pathKind, rt.path = "prefix", p.Prefix
	case *routev3.RouteMatch_Path:
		rt.pathKind, rt.path = "exact", p.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		rt.pathKind, rt.path = "separated", p.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(p.SafeRegex)
		if err != nil {
			return fmt.Errorf("safe_regex: %w", err)
		}
		rt.pathKind, rt.re = "regex", re
	case *routev3.RouteMatch_ConnectMatcher_:
		rt.pathKind = "connect"
	default:
		return fmt.Errorf("no path specifier")
	}
	if !rt.caseSensitive {
		rt.path = strings.ToLower(rt.path)
	}
	for _, h := range m.GetHeaders() {
		hm, err := compileHeader(h)
		if err != nil {
			return err
		}
		rt.headers = append(rt.headers, hm)
	}
	for _, q := range m.GetQueryParameters() {
		if err := checkFields(q, "name", "string_match", "present_match"); err != nil {
			return fmt.Errorf("query parameter %q: %w", q.GetName(), err)
		}
		qm := &queryMatch{name: q.GetName(), present: q.GetPresentMatch()}
		if sm := q.GetStringMatch(); sm != nil {
			s, err := compileString(sm)
			if err != nil {
				return fmt.Errorf("query parameter %q: %w", q.GetName(), err)
			}
			qm.str = s
		}
		rt.query = append(rt.query, qm)
	}
	return nil
}

func (rt *Route) matches(r *http.Request) bool { return rt.mismatch(r) == "" }

// mismatch says why r does not match the route ("" when it does): the first condition that fails, in the
// order the router checks them (path, headers, query parameters).
func (rt *Route) mismatch(r *http.Request) string {
	path := r.URL.Path
	if r.URL.RawPath != "" {
		path = r.URL.RawPath
	}
	if !rt.caseSensitive {
		path = strings.ToLower(path)
	}
	switch rt.pathKind {
	case "prefix":
		if !strings.HasPrefix(path, rt.path) {
			return fmt.Sprintf("path %s does not start with %s", path, rt.path)
		}
	case "exact":
		if path != rt.path {
			return fmt.Sprintf("path %s is not %s", path, rt.path)
		}
	case "separated":
		if path != rt.path && !strings.HasPrefix(path, strings.TrimSuffix(rt.path, "/")+"/") {
			return fmt.Sprintf("path %s is not under %s", path, rt.path)
		}
	case "regex":
		if !rt.re.MatchString(path) {
			return fmt.Sprintf("path %s does not match regex %s", path, rt.re)
		}
	case "connect":
		if r.Method != http.MethodConnect {
			return fmt.Sprintf("method %s is not CONNECT", r.Method)
		}
	}
	for _, h := range rt.headers {
		if !h.match(r) {
			v, ok := headerValue(r, h.name)
			if !ok {
				return fmt.Sprintf("header %s is absent (want %s)", h.name, h)
			}
			return fmt.Sprintf("header %s: %q does not match %s", h.name, v, h)
		}
	}
	if len(rt.query) > 0 {
		q := r.URL.Query()
		for _, qm := range rt.query {
			vs, ok := q[qm.name]
			switch {
			case qm.str != nil:
				if !ok {
					return fmt.Sprintf("query parameter %s is absent (want %s)", qm.name, qm.str)
				}
				if !qm.str.match(vs[0]) {
					return fmt.Sprintf("query parameter %s: %q does not match %s", qm.name, vs[0], qm.str)
				}
			case qm.present && !ok:
				return fmt.Sprintf("query parameter %s is absent", qm.name)
			}
		}
	}
	return ""
}

// Describe says what the route matches, as Envoy's config spells it: "prefix /", "path /x",
// "header end-user exact jason"...
func (rt *Route) Describe() string {
	var parts []string
	switch rt.pathKind {
	case "prefix":
		parts = append(parts, "prefix "+rt.path)
	case "exact":
		parts = append(parts, "path "+rt.path)
	case "separated":
		parts = append(parts, "path_separated_prefix "+rt.path)
	case "regex":
		parts = append(parts, "safe_regex "+strings.TrimSuffix(strings.TrimPrefix(rt.re.String(), "^(?:"), ")$"))
	case "connect":
		parts = append(parts, "CONNECT")
	}
	for _, h := range rt.headers {
		parts = append(parts, "header "+h.name+" "+h.String())
	}
	for _, q := range rt.query {
		switch {
		case q.str != nil:
			parts = append(parts, "query "+q.name+" "+q.str.String())
		case q.present:
			parts = append(parts, "query "+q.name+" present")
		}
	}
	return strings.Join(parts, ", ")
}

func (rt *Route) compileAction(a *routev3.RouteAction) error {
	if err := checkFields(a, "cluster", "weighted_clusters", "timeout", "retry_policy", "max_grpc_timeout", "upgrade_configs", "idle_timeout", "cluster_not_found_response_code",
		"prefix_rewrite", "regex_rewrite", "host_rewrite_literal", "request_mirror_policies", "hash_policy"); err != nil {
		return err
	}
	if hps := a.GetHashPolicy(); len(hps) > 0 {
		hs, err := compileHashPolicies(hps)
		if err != nil {
			return err
		}
		rt.hash = hs
	}
	if ms := a.GetRequestMirrorPolicies(); len(ms) > 0 {
		m, err := compileMirrors(ms)
		if err != nil {
			return err
		}
		rt.mirrors = m
	}
	rt.hostRewrite = a.GetHostRewriteLiteral()
	if a.GetPrefixRewrite() != "" {
		rt.prefixRewrite, rt.hasPrefixRewrite = a.GetPrefixRewrite(), true
	}
	if rr := a.GetRegexRewrite(); rr != nil {
		if rt.hasPrefixRewrite {
			return fmt.Errorf("prefix_rewrite and regex_rewrite are exclusive")
		}
		re, err := compileRegexRewrite(rr)
		if err != nil {
			return fmt.Errorf("regex_rewrite: %w", err)
		}
		rt.regexRewrite = re
	}
	switch c := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		if c.Cluster == "" {
			return fmt.Errorf("empty cluster")
		}
		rt.Cluster = c.Cluster
	case *routev3.RouteAction_WeightedClusters:
		wc := c.WeightedClusters
		if err := checkFields(wc, "clusters", "total_weight"); err != nil {
			return fmt.Errorf("weighted_clusters: %w", err)
		}
		var sum uint64
		for i, cw := range wc.GetClusters() {
			if err := checkFields(cw, "name", "weight", "request_headers_to_add", "request_headers_to_remove",
				"response_headers_to_add", "response_headers_to_remove", "host_rewrite_literal"); err != nil {
				return fmt.Errorf("weighted_clusters.clusters %d (%s): %w", i, cw.GetName(), err)
			}
			if cw.GetName() == "" {
				return fmt.Errorf("weighted_clusters.clusters %d: empty name", i)
			}
			w := WeightedCluster{Name: cw.GetName(), Weight: cw.GetWeight().GetValue(), hostRewrite: cw.GetHostRewriteLiteral()}
			var err error
			if w.reqHeaders, err = compileHeaderMutation(cw.GetRequestHeadersToAdd(), cw.GetRequestHeadersToRemove()); err != nil {
				return fmt.Errorf("weighted_clusters.clusters %d (%s): request headers: %w", i, cw.GetName(), err)
			}
			if w.respHeaders, err = compileHeaderMutation(cw.GetResponseHeadersToAdd(), cw.GetResponseHeadersToRemove()); err != nil {
				return fmt.Errorf("weighted_clusters.clusters %d (%s): response headers: %w", i, cw.GetName(), err)
			}
			rt.Weighted = append(rt.Weighted, w)
			sum += uint64(cw.GetWeight().GetValue())
		}
		if sum == 0 {
			return fmt.Errorf("weighted_clusters: weights sum to 0")
		}
		if tw := wc.GetTotalWeight(); tw != nil && uint64(tw.GetValue()) != sum {
			return fmt.Errorf("weighted_clusters: total_weight %d but weights sum to %d", tw.GetValue(), sum)
		}
		rt.totalWeight = sum
	default:
		return fmt.Errorf("unsupported cluster specifier %T", a.GetClusterSpecifier())
	}
	for _, u := range a.GetUpgradeConfigs() {
		// Only CONNECT, and only on a CONNECT route: the HBONE terminator, which meshlab runs natively.
		if !strings.EqualFold(u.GetUpgradeType(), "CONNECT") || rt.pathKind != "connect" {
			return fmt.Errorf("upgrade_configs: unsupported upgrade %q", u.GetUpgradeType())
		}
	}
	rt.Timeout = defaultRouteTimeout
	if a.GetTimeout() != nil {
		rt.Timeout = a.GetTimeout().AsDuration()
	}
	if p := a.GetRetryPolicy(); p != nil {
		rp, err := compileRetry(p)
		if err != nil {
			return fmt.Errorf("retry_policy: %w", err)
		}
		rt.Retry = rp
	}
	return nil
}

// pickCluster returns the route's cluster, choosing a weighted one with rnd (uniform in [0, 2^64)).
func (rt *Route) pickCluster(rnd func() uint64) string {
	name, _ := rt.pick(rnd)
	return name
}

// pick is pickCluster that also returns the chosen weighted cluster (nil for a single cluster).
func (rt *Route) pick(rnd func() uint64) (string, *WeightedCluster) {
	if len(rt.Weighted) == 0 {
		return rt.Cluster, nil
	}
	w := pickWeighted(rt.Weighted, rt.totalWeight, rnd())
	return w.Name, w
}

// pickWeighted maps r onto the cumulative weights.
func pickWeighted(ws []WeightedCluster, total uint64, r uint64) *WeightedCluster {
	x := r % total
	for i := range ws {
		if x < uint64(ws[i].Weight) {
			return &ws[i]
		}
		x -= uint64(ws[i].Weight)
	}
	return &ws[len(ws)-1]
}
