package validation

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/util/validation/field"

	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
)

const meshGateway = "mesh"

// ======== VirtualService ========

func (v *validator) virtualService(o *networkingv1.VirtualService) {
	vs := &o.Spec
	p := field.NewPath("spec")

	// A VirtualService without hosts is a delegate, only reachable from another one's http[].delegate.
	delegate := len(vs.Hosts) == 0
	if delegate {
		if len(vs.Gateways) > 0 {
			v.forbidden(p.Child("gateways"), "a delegate VirtualService (one without hosts) cannot name gateways")
		}
		if len(vs.Tls) > 0 {
			v.forbidden(p.Child("tls"), "a delegate VirtualService (one without hosts) cannot have tls routes")
		}
		if len(vs.Tcp) > 0 {
			v.forbidden(p.Child("tcp"), "a delegate VirtualService (one without hosts) cannot have tcp routes")
		}
	}
	for i, g := range vs.Gateways {
		v.gatewayReference(p.Child("gateways").Index(i), g)
	}
	appliesToGateway := len(vs.Gateways) > 0 && !contains(vs.Gateways, meshGateway)
	appliesToMesh := !appliesToGateway

	if !appliesToGateway {
		for i, r := range vs.Http {
			for j, m := range r.GetMatch() {
				mp := p.Child("http").Index(i).Child("match").Index(j)
				for _, hs := range []struct {
					name    string
					headers map[string]*networking.StringMatch
				}{{"headers", m.GetHeaders()}, {"withoutHeaders", m.GetWithoutHeaders()}} {
					for _, k := range sortedKeys(hs.headers) {
						if isJWTClaimRoute(k) {
							v.forbidden(mp.Child(hs.name).Key(k), "JWT claim based routing is only supported on gateways, "+
								"and this VirtualService applies to the mesh")
						}
					}
				}
			}
		}
	}

	sni := false
	for _, t := range vs.Tls {
		for _, m := range t.GetMatch() {
			sni = sni || len(m.GetSniHosts()) > 0
		}
	}
	allHostsValid := true
	for i, h := range vs.Hosts {
		hp := p.Child("hosts").Index(i)
		msg := ""
		if appliesToGateway {
			msg = gatewayBoundHostProblem(sni, h)
		} else {
			msg = domainProblem(h, true)
		}
		switch {
		case msg != "" && !isIP(h):
			v.invalid(hp, h, msg)
			allHostsValid = false
		case msg == "" && appliesToMesh && h == "*":
			v.invalid(hp, h, "the wildcard host * is not allowed for virtual services bound to the mesh")
			allHostsValid = false
		}
	}
	if allHostsValid {
		for i := range vs.Hosts {
			for j := i + 1; j < len(vs.Hosts); j++ {
				if hostMatches(vs.Hosts[i], vs.Hosts[j]) {
					v.invalid(p.Child("hosts").Index(j), vs.Hosts[j], fmt.Sprintf("duplicates or overlaps hosts[%d] %q", i, vs.Hosts[i]))
				}
			}
		}
	}

	if len(vs.Http) == 0 && len(vs.Tcp) == 0 && len(vs.Tls) == 0 {
		v.required(p.Child("http"), "at least one http, tcp or tls route is required")
	}
	for i, r := range vs.Http {
		if r == nil {
			v.invalid(p.Child("http").Index(i), nil, "must not be null")
			continue
		}
		v.httpRoute(p.Child("http").Index(i), r, delegate)
	}
	for i, r := range vs.Tls {
		v.tlsRoute(p.Child("tls").Index(i), r, vs, appliesToGateway)
	}
	for i, r := range vs.Tcp {
		v.tcpRoute(p.Child("tcp").Index(i), r)
	}
	v.exportTo(p.Child("exportTo"), o.Namespace, vs.ExportTo, false, false)

	v.unreachableHTTP(p.Child("http"), vs.Http)
	tcp := make([]ruleMatches, len(vs.Tcp))
	for i, r := range vs.Tcp {
		tcp[i].skip = r == nil
		for _, m := range r.GetMatch() {
			tcp[i].matches = append(tcp[i].matches, m)
		}
	}
	v.unreachable(p.Child("tcp"), tcp)
	tls := make([]ruleMatches, len(vs.Tls))
	for i, r := range vs.Tls {
		tls[i].skip = r == nil
		for _, m := range r.GetMatch() {
			tls[i].matches = append(tls[i].matches, m)
		}
	}
	v.unreachable(p.Child("tls"), tls)
}

// gatewayBoundHostProblem is the host rule for a VirtualService bound to gateways: a domain, or with TLS SNI
// routing the AUTO_PASSTHROUGH form outbound_.<port>_._.<hostname>.
func gatewayBoundHostProblem(sni bool, h string) string {
	if sni && strings.HasPrefix(h, "outbound_") && len(h) <= 255 {
		parts := strings.Split(h, "_")
		if len(parts) < 4 {
			return "must follow the outbound_.<PORT>_._.<HOSTNAME> format"
		}
		if port := strings.Trim(parts[1], "."); !strings.ContainsAny(port, "0123456789") {
			return fmt.Sprintf("label %q must be a port, following the outbound_.<PORT>_._.<HOSTNAME> format", port)
		}
		hostname := strings.Trim(parts[3], ".")
		if strings.IndexFunc(hostname, func(r rune) bool { return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') }) < 0 {
			return fmt.Sprintf("%q must be a hostname, following the outbound_.<PORT>_._.<HOSTNAME> format", hostname)
		}
		return ""
	}
	return domainProblem(h, true)
}

// gatewayReference checks a gateway named by a VirtualService: <namespace>/<name>, the reserved "mesh", or a
// bare name (same namespace). The legacy <name>.<namespace>... form is accepted with a warning.
func (v *validator) gatewayReference(p *field.Path, g string) {
	ns, name, qualified := strings.Cut(g, "/")
	if !qualified {
		if strings.Contains(g, ".") {
			parts := strings.Split(g, ".")
			v.warn(p, "legacy gateway name format %q; prefer <namespace>/<name>: %q", g, parts[1]+"/"+parts[0])
		}
		if msg := domainProblem(g, false); msg != "" {
			v.invalid(p, g, msg)
		}
		return
	}
	if ns == "" || name == "" {
		v.invalid(p, g, "namespace and gateway name cannot be empty in <namespace>/<name>")
		return
	}
	if !isDNSLabel(ns) {
		v.invalid(p, g, fmt.Sprintf("namespace %q is not a valid DNS label", ns))
	}
	if !isDNSLabel(name) {
		v.invalid(p, g, fmt.Sprintf("gateway name %q is not a valid DNS label", name))
	}
}

func (v *validator) httpRoute(p *field.Path, r *networking.HTTPRoute, delegateVS bool) {
	v.httpRouteConflicts(p, r, delegateVS)

	for j, m := range r.Match {
		if m != nil {
			v.httpMatch(p.Child("match").Index(j), m)
		}
	}
	v.headerOperations(p.Child("headers"), headersOf(r.Headers))
	v.cors(p.Child("corsPolicy"), r.CorsPolicy)
	v.fault(p.Child("fault"), r.Fault)

	if mp := r.MirrorPercent; mp != nil { //nolint:staticcheck // validating the deprecated field is the point
		if mp.GetValue() > 100 {
			v.invalid(p.Child("mirrorPercent"), mp.GetValue(), "must be between 0 and 100")
		}
		v.warn(p.Child("mirrorPercent"), `deprecated: use "mirrorPercentage" instead`)
	}
	if r.MirrorPercentage != nil {
		if val := r.MirrorPercentage.GetValue(); val < 0 || val > 100 {
			v.invalid(p.Child("mirrorPercentage", "value"), val, "must be between 0 and 100")
		}
	}
	v.destination(p.Child("mirror"), r.Mirror)
	for i, m := range r.Mirrors {
		mp := p.Child("mirrors").Index(i)
		switch {
		case m == nil:
			v.invalid(mp, nil, "must not be null")
		case m.Destination == nil:
			v.required(mp.Child("destination"), "a mirror needs a destination")
		default:
			v.destination(mp.Child("destination"), m.Destination)
			if m.Percentage != nil {
				if val := m.Percentage.GetValue(); val < 0 || val > 100 {
					v.invalid(mp.Child("percentage", "value"), val, "must be between 0 and 100")
				}
			}
		}
	}
	v.redirect(p, r.Redirect, r.Match)
	v.directResponse(p.Child("directResponse"), r.DirectResponse)
	v.retries(p.Child("retries"), r.Retries)
	v.rewrite(p.Child("rewrite"), r.Rewrite)
	v.authorityRewrite(p, r.Rewrite, r.Headers)

	var total int64
	for i, d := range r.Route {
		dp := p.Child("route").Index(i)
		if d == nil {
			v.invalid(dp, nil, "must not be null")
			continue
		}
		if d.Destination == nil {
			v.required(dp.Child("destination"), "each route needs a destination")
		}
		v.headerOperations(dp.Child("headers"), headersOf(d.Headers))
		v.destination(dp.Child("destination"), d.Destination)
		v.weight(dp.Child("weight"), d.Weight)
		total += int64(d.Weight)
	}
	if len(r.Route) > 1 && total == 0 {
		v.invalid(p.Child("route"), field.OmitValueType{}, "the weights of several destinations cannot all be 0 (weights are relative)")
	}
	v.duration(p.Child("timeout"), r.Timeout)
}

// weight is Istio's rule: weights are relative (a destination gets weight/sum), so only negatives are wrong.
func (v *validator) weight(p *field.Path, w int32) {
	if w < 0 {
		v.invalid(p, w, "must not be negative")
	}
}

// httpRouteConflicts checks which of route, redirect, directResponse and delegate a route may combine.
func (v *validator) httpRouteConflicts(p *field.Path, r *networking.HTTPRoute, delegateVS bool) {
	if !delegateVS && r.Delegate != nil {
		if r.Redirect != nil {
			v.forbidden(p.Child("redirect"), "a route that delegates cannot also redirect")
		}
		if r.Route != nil {
			v.forbidden(p.Child("route"), "a route that delegates cannot also have destinations")
		}
		return
	}
	if delegateVS && r.Delegate != nil {
		v.forbidden(p.Child("delegate"), "a delegate VirtualService cannot delegate again (one level only)")
	}
	switch {
	case r.Redirect != nil:
		if len(r.Route) > 0 {
			v.forbidden(p.Child("route"), "cannot be set together with redirect")
		}
		if r.Fault != nil {
			v.forbidden(p.Child("fault"), "cannot be set together with redirect")
		}
		if r.Rewrite != nil {
			v.forbidden(p.Child("rewrite"), "cannot be set together with redirect")
		}
		if r.DirectResponse != nil {
			v.forbidden(p.Child("directResponse"), "cannot be set together with redirect")
		}
	case r.DirectResponse != nil:
		if len(r.Route) > 0 {
			v.forbidden(p.Child("route"), "cannot be set together with directResponse")
		}
		if r.Fault != nil {
			v.forbidden(p.Child("fault"), "cannot be set together with directResponse")
		}
		if r.Rewrite != nil {
			v.forbidden(p.Child("rewrite"), "cannot be set together with directResponse")
		}
	case len(r.Route) == 0:
		v.required(p.Child("route"), "an HTTP route needs route destinations, a redirect or a directResponse")
	}
	if r.Mirror != nil && len(r.Mirrors) > 0 {
		v.forbidden(p.Child("mirrors"), "cannot be set together with mirror")
	}
}

func (v *validator) httpMatch(p *field.Path, m *networking.HTTPMatchRequest) {
	for _, k := range sortedKeys(m.Headers) {
		hp := p.Child("headers").Key(k)
		v.matchHeaderName(hp, k)
		if m.Headers[k] == nil {
			v.invalid(hp, nil, "header match must not be null")
			continue
		}
		v.stringMatch(hp, m.Headers[k], false)
	}
	for _, k := range sortedKeys(m.WithoutHeaders) {
		hp := p.Child("withoutHeaders").Key(k)
		v.matchHeaderName(hp, k)
		// regex "*" is not a regex here: it means "present".
		if sm := m.WithoutHeaders[k]; sm != nil && sm.GetRegex() != "*" {
			v.stringMatch(hp, sm, false)
		}
	}
	// An empty uri prefix is valid (it matches everything); scheme, method and authority need a value.
	v.stringMatch(p.Child("uri"), m.Uri, true)
	v.stringMatch(p.Child("scheme"), m.Scheme, false)
	v.stringMatch(p.Child("method"), m.Method, false)
	v.stringMatch(p.Child("authority"), m.Authority, false)
	for _, k := range sortedKeys(m.QueryParams) {
		v.stringMatch(p.Child("queryParams").Key(k), m.QueryParams[k], false)
	}
	if m.Port != 0 {
		v.port(p.Child("port"), m.Port)
	}
	v.labels(p.Child("sourceLabels"), m.SourceLabels)
	for i, g := range m.Gateways {
		v.gatewayReference(p.Child("gateways").Index(i), g)
	}
	if m.SourceNamespace != "" && !isDNSLabel(m.SourceNamespace) {
		v.invalid(p.Child("sourceNamespace"), m.SourceNamespace, "not a valid namespace name")
	}
}

// stringMatch checks a StringMatch. An unset oneof ({}) is valid: for headers and query parameters it is a
// presence match, for the others it matches anything.
func (v *validator) stringMatch(p *field.Path, sm *networking.StringMatch, emptyPrefixOK bool) {
	switch m := sm.GetMatchType().(type) {
	case *networking.StringMatch_Prefix:
		if m.Prefix == "" && !emptyPrefixOK {
			v.invalid(p.Child("prefix"), m.Prefix, "prefix match must not be empty")
		}
	case *networking.StringMatch_Regex:
		v.regex(p.Child("regex"), m.Regex)
	}
}

func headersOf(h *networking.Headers) *headerOps {
	if h == nil {
		return nil
	}
	return &headerOps{
		reqSet: h.GetRequest().GetSet(), reqAdd: h.GetRequest().GetAdd(), reqRemove: h.GetRequest().GetRemove(),
		respSet: h.GetResponse().GetSet(), respAdd: h.GetResponse().GetAdd(), respRemove: h.GetResponse().GetRemove(),
	}
}

var corsMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace, "*"}

func (v *validator) cors(p *field.Path, c *networking.CorsPolicy) {
	if c == nil {
		return
	}
	for i, o := range c.AllowOrigins {
		op := p.Child("allowOrigins").Index(i)
		value := ""
		switch m := o.GetMatchType().(type) {
		case *networking.StringMatch_Exact:
			value = m.Exact
		case *networking.StringMatch_Prefix:
			value = m.Prefix
		case *networking.StringMatch_Regex:
			value = m.Regex
			if value != "" {
				v.regex(op.Child("regex"), value)
			}
		}
		if value == "" {
			v.invalid(op, field.OmitValueType{}, "an allowed origin needs a non-empty exact, prefix or regex")
		}
	}
	for i, m := range c.AllowMethods {
		if !contains(corsMethods, m) {
			v.add(field.NotSupported(p.Child("allowMethods").Index(i), m, corsMethods))
		}
	}
	for name, list := range map[string][]string{"allowHeaders": c.AllowHeaders, "exposeHeaders": c.ExposeHeaders} {
		for i, h := range list {
			if h == "" || (h != "*" && !headerNameRegexp.MatchString(h)) {
				v.invalid(p.Child(name).Index(i), h, "not a valid HTTP header name")
			}
		}
	}
	if c.MaxAge != nil {
		v.duration(p.Child("maxAge"), c.MaxAge)
		if c.MaxAge.Nanos > 0 {
			v.invalid(p.Child("maxAge"), c.MaxAge.AsDuration().String(), "only second precision is supported")
		}
	}
}

// grpcStatuses are the gRPC status names an abort may use.
var grpcStatuses = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

func (v *validator) fault(p *field.Path, f *networking.HTTPFaultInjection) {
	if f == nil {
		return
	}
	if f.Abort == nil && f.Delay == nil {
		v.required(p, "fault injection needs an abort, a delay or both")
	}
	if a := f.Abort; a != nil {
		ap := p.Child("abort")
		if a.Percentage != nil {
			v.percentage(ap.Child("percentage", "value"), a.Percentage.GetValue())
		}
		switch e := a.ErrorType.(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			v.httpStatus(ap.Child("httpStatus"), int64(e.HttpStatus))
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if !contains(grpcStatuses, e.GrpcStatus) {
				v.add(field.NotSupported(ap.Child("grpcStatus"), e.GrpcStatus, grpcStatuses))
			}
		case *networking.HTTPFaultInjection_Abort_Http2Error:
			v.forbidden(ap.Child("http2Error"), "HTTP/2 abort fault injection is not supported yet")
		default:
			v.warn(ap, "abort configured, but no error type (httpStatus or grpcStatus) set")
		}
	}
	if d := f.Delay; d != nil {
		dp := p.Child("delay")
		if d.Percentage != nil {
			v.percentage(dp.Child("percentage", "value"), d.Percentage.GetValue())
		}
		switch t := d.HttpDelayType.(type) {
		case *networking.HTTPFaultInjection_Delay_FixedDelay:
			v.duration(dp.Child("fixedDelay"), t.FixedDelay)
		case *networking.HTTPFaultInjection_Delay_ExponentialDelay:
			v.duration(dp.Child("exponentialDelay"), t.ExponentialDelay)
			v.forbidden(dp.Child("exponentialDelay"), "exponentialDelay is not supported yet")
		}
	}
}

func (v *validator) httpStatus(p *field.Path, status int64) {
	if status < 200 || status > 599 {
		v.invalid(p, status, "must be an HTTP status between 200 and 599")
	}
}

// destination checks a Destination (route, mirror). nil is checked by the caller where it is required.
func (v *validator) destination(p *field.Path, d *networking.Destination) {
	if d == nil {
		return
	}
	switch {
	case d.Host == "":
		v.required(p.Child("host"), "destination host is required")
	case d.Host == "*":
		v.invalid(p.Child("host"), d.Host, "a destination host cannot be *")
	default:
		if msg := domainProblem(d.Host, true); msg != "" {
			v.invalid(p.Child("host"), d.Host, msg)
		}
	}
	if d.Subset != "" && !isDNSLabel(d.Subset) {
		v.invalid(p.Child("subset"), d.Subset, "subset name must be a DNS label")
	}
	if d.Port != nil {
		v.port(p.Child("port", "number"), d.Port.GetNumber())
	}
}

func (v *validator) redirect(routePath *field.Path, r *networking.HTTPRedirect, matches []*networking.HTTPMatchRequest) {
	if r == nil {
		return
	}
	p := routePath.Child("redirect")
	if r.Uri != "" && r.PrefixRewrite != "" {
		v.forbidden(p.Child("prefixRewrite"), "cannot be set together with uri")
	}
	if r.PrefixRewrite != "" {
		for j, m := range matches {
			if m.GetUri() == nil {
				continue
			}
			if _, ok := m.GetUri().GetMatchType().(*networking.StringMatch_Prefix); !ok {
				v.invalid(routePath.Child("match").Index(j).Child("uri"), field.OmitValueType{},
					"redirect.prefixRewrite requires every uri match to be a prefix match")
			}
		}
	}
	if r.Uri == "" && r.PrefixRewrite == "" && r.Authority == "" && r.RedirectPort == nil && r.Scheme == "" {
		v.required(p, "a redirect must set uri, prefixRewrite, authority, scheme, port or derivePort")
	}
	if r.RedirectCode != 0 && (r.RedirectCode < 300 || r.RedirectCode > 399) {
		v.invalid(p.Child("redirectCode"), r.RedirectCode, "must be a 3xx status")
	}
	if r.Scheme != "" && r.Scheme != "http" && r.Scheme != "https" {
		v.add(field.NotSupported(p.Child("scheme"), r.Scheme, []string{"http", "https"}))
	}
	switch rp := r.RedirectPort.(type) {
	case *networking.HTTPRedirect_Port:
		if rp.Port > 0 {
			v.port(p.Child("port"), rp.Port)
		}
	case *networking.HTTPRedirect_DerivePort:
		if _, ok := networking.HTTPRedirect_RedirectPortSelection_name[int32(rp.DerivePort)]; !ok {
			v.add(field.NotSupported(p.Child("derivePort"), rp.DerivePort.String(), []string{"FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"}))
		}
	}
}

const (
	kib = 1024
	mib = 1024 * kib
)

func (v *validator) directResponse(p *field.Path, d *networking.HTTPDirectResponse) {
	if d == nil {
		return
	}
	size := 0
	switch b := d.GetBody().GetSpecifier().(type) {
	case *networking.HTTPBody_String_:
		size = len(b.String_)
	case *networking.HTTPBody_Bytes:
		size = len(b.Bytes)
	}
	switch {
	case size > mib:
		v.invalid(p.Child("body"), field.OmitValueType{}, fmt.Sprintf("must be less than 1MB (is %d bytes): large direct responses impact control plane performance", size))
	case size > 100*kib:
		v.warn(p.Child("body"), "large direct responses (%d bytes) may impact control plane performance", size)
	}
	v.httpStatus(p.Child("status"), int64(d.Status))
}

// retryOnPolicies are the Envoy retry conditions (x-envoy-retry-on and x-envoy-retry-grpc-on) retryOn accepts,
// besides HTTP status codes.
var retryOnPolicies = []string{"5xx", "gateway-error", "reset", "reset-before-request", "connect-failure",
	"retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers", "envoy-ratelimited",
	"http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}

func (v *validator) retries(p *field.Path, r *networking.HTTPRetry) {
	if r == nil {
		return
	}
	if r.Attempts < 0 {
		v.invalid(p.Child("attempts"), r.Attempts, "must not be negative")
	}
	if r.Attempts == 0 && (r.PerTryTimeout != nil || r.RetryOn != "" || r.RetryRemoteLocalities != nil) {
		v.invalid(p.Child("attempts"), r.Attempts,
			"retries are disabled (attempts 0) but perTryTimeout, retryOn or retryRemoteLocalities is set")
	}
	v.duration(p.Child("perTryTimeout"), r.PerTryTimeout)
	if r.RetryOn != "" {
		for _, policy := range strings.Split(r.RetryOn, ",") {
			code, _ := strconv.Atoi(policy)
			if http.StatusText(code) == "" && !contains(retryOnPolicies, policy) {
				v.invalid(p.Child("retryOn"), policy, "not a valid retryOn policy (an Envoy retry condition or an HTTP status code)")
			}
		}
	}
	v.duration(p.Child("backoff"), r.Backoff)
}

func (v *validator) rewrite(p *field.Path, r *networking.HTTPRewrite) {
	if r == nil {
		return
	}
	if r.Uri != "" && r.UriRegexRewrite != nil {
		v.forbidden(p.Child("uriRegexRewrite"), "cannot be set together with uri")
	}
	if r.Uri == "" && r.UriRegexRewrite == nil && r.Authority == "" {
		v.required(p, "a rewrite must set uri, uriRegexRewrite or authority")
	}
	if rr := r.UriRegexRewrite; rr != nil {
		rp := p.Child("uriRegexRewrite")
		if rr.Match == "" {
			v.required(rp.Child("match"), "uriRegexRewrite needs both match and rewrite")
		} else {
			v.regex(rp.Child("match"), rr.Match)
		}
		if rr.Rewrite == "" {
			v.required(rp.Child("rewrite"), "uriRegexRewrite needs both match and rewrite")
		}
	}
}

// authorityRewrite makes sure the authority is rewritten in one place only.
func (v *validator) authorityRewrite(p *field.Path, r *networking.HTTPRewrite, h *networking.Headers) {
	current := r.GetAuthority()
	for _, op := range []struct {
		name   string
		values map[string]string
	}{{"set", h.GetRequest().GetSet()}, {"add", h.GetRequest().GetAdd()}} {
		for _, k := range sortedKeys(op.values) {
			if !isAuthorityHeader(k) {
				continue
			}
			if current != "" {
				v.invalid(p.Child("headers", "request", op.name).Key(k), op.values[k],
					fmt.Sprintf("the authority is already rewritten to %q; it can be set in one place only", current))
			}
			current = op.values[k]
		}
	}
}

func (v *validator) tlsRoute(p *field.Path, r *networking.TLSRoute, vs *networking.VirtualService, appliesToGateway bool) {
	if r == nil {
		return
	}
	if len(r.Match) == 0 {
		v.required(p.Child("match"), "a TLS route needs at least one match")
	}
	for i, m := range r.Match {
		mp := p.Child("match").Index(i)
		if m == nil {
			v.invalid(mp, nil, "must not be null")
			continue
		}
		if len(m.SniHosts) == 0 {
			v.required(mp.Child("sniHosts"), "a TLS match needs at least one SNI host")
		}
		for j, h := range m.SniHosts {
			v.sniHost(mp.Child("sniHosts").Index(j), h, vs, appliesToGateway)
		}
		for j, s := range m.DestinationSubnets {
			if msg := ipOrCIDRProblem(s); msg != "" {
				v.invalid(mp.Child("destinationSubnets").Index(j), s, msg)
			}
		}
		if m.Port != 0 {
			v.port(mp.Child("port"), m.Port)
		}
		v.labels(mp.Child("sourceLabels"), m.SourceLabels)
		for j, g := range m.Gateways {
			v.gatewayReference(mp.Child("gateways").Index(j), g)
		}
	}
	if len(r.Route) == 0 {
		v.required(p.Child("route"), "a TLS route needs route destinations")
	}
	v.routeDestinations(p.Child("route"), r.Route)
}

func (v *validator) sniHost(p *field.Path, h string, vs *networking.VirtualService, appliesToGateway bool) {
	msg := ""
	if appliesToGateway {
		msg = gatewayBoundHostProblem(true, h)
	} else {
		msg = domainProblem(h, true)
	}
	if msg != "" {
		if isIP(h) {
			v.warn(p, "using an IP address (%q) as SNI goes against the SNI spec; most clients do not support it", h)
			return
		}
		v.invalid(p, h, msg)
		return
	}
	for _, host := range vs.Hosts {
		if hostSubsetOf(h, host) {
			return
		}
	}
	v.invalid(p, h, fmt.Sprintf("SNI host is not a subset of any of the VirtualService's hosts [%s]", strings.Join(vs.Hosts, ", ")))
}

func (v *validator) tcpRoute(p *field.Path, r *networking.TCPRoute) {
	if r == nil {
		return
	}
	for i, m := range r.Match {
		mp := p.Child("match").Index(i)
		if m == nil {
			v.invalid(mp, nil, "must not be null")
			continue
		}
		for j, s := range m.DestinationSubnets {
			if msg := ipOrCIDRProblem(s); msg != "" {
				v.invalid(mp.Child("destinationSubnets").Index(j), s, msg)
			}
		}
		if m.Port != 0 {
			v.port(mp.Child("port"), m.Port)
		}
		v.labels(mp.Child("sourceLabels"), m.SourceLabels)
		for j, g := range m.Gateways {
			v.gatewayReference(mp.Child("gateways").Index(j), g)
		}
	}
	if len(r.Route) == 0 {
		v.required(p.Child("route"), "a TCP route needs route destinations")
	}
	v.routeDestinations(p.Child("route"), r.Route)
}

func (v *validator) routeDestinations(p *field.Path, route []*networking.RouteDestination) {
	var total int64
	for i, d := range route {
		dp := p.Index(i)
		if d == nil {
			v.invalid(dp, nil, "must not be null")
			continue
		}
		if d.Destination == nil {
			v.required(dp.Child("destination"), "each route needs a destination")
		}
		v.destination(dp.Child("destination"), d.Destination)
		v.weight(dp.Child("weight"), d.Weight)
		total += int64(d.Weight)
	}
	if len(route) > 1 && total == 0 {
		v.invalid(p, field.OmitValueType{}, "the weights of several destinations cannot all be 0 (weights are relative)")
	}
}

// ruleMatches are the matches of one route rule, for the reachability analysis.
type ruleMatches struct {
	skip    bool // a null rule, reported elsewhere
	matches []proto.Message
}

// unreachableHTTP warns, as Istio does, about HTTP rules that can never match: rules after a rule without
// matches, and matches that repeat an earlier one.
func (v *validator) unreachableHTTP(p *field.Path, routes []*networking.HTTPRoute) {
	rules := make([]ruleMatches, len(routes))
	for i, r := range routes {
		rules[i].skip = r == nil
		for _, m := range r.GetMatch() {
			if m != nil && m.Name != "" {
				m = proto.Clone(m).(*networking.HTTPMatchRequest)
				m.Name = "" // names are for logs, not for matching
			}
			rules[i].matches = append(rules[i].matches, m)
		}
	}
	v.unreachable(p, rules)
}

// unreachable does the analysis of unreachableHTTP for any kind of route rule.
func (v *validator) unreachable(p *field.Path, rules []ruleMatches) {
	seen := map[string]int{}
	catchAll := -1
	for i, r := range rules {
		if r.skip {
			continue
		}
		rp := p.Index(i)
		if len(r.matches) == 0 {
			if catchAll >= 0 {
				v.warn(rp, "rule not used: only the last rule can have no matches (%s has none)", p.Index(catchAll))
			}
			catchAll = i
			continue
		}
		if catchAll >= 0 {
			v.warn(rp, "rule not used: %s before it has no matches and catches every request", p.Index(catchAll))
			continue
		}
		dup := 0
		for j, m := range r.matches {
			b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
			key := string(b)
			if k, ok := seen[key]; ok {
				v.warn(rp.Child("match").Index(j), "match not used: it repeats a match of %s", p.Index(k))
				dup++
				continue
			}
			seen[key] = i
		}
		if dup == len(r.matches) {
			v.warn(rp, "rule not used: all its matches are used by earlier rules")
		}
	}
}

// ======== DestinationRule ========

func (v *validator) destinationRule(o *networkingv1.DestinationRule) {
	dr := &o.Spec
	p := field.NewPath("spec")
	if dr.Host == "" {
		v.required(p.Child("host"), "host is required")
	} else if msg := domainProblem(dr.Host, true); msg != "" {
		v.invalid(p.Child("host"), dr.Host, msg)
	}
	v.trafficPolicy(p.Child("trafficPolicy"), dr.TrafficPolicy)
	names := map[string]bool{}
	for i, s := range dr.Subsets {
		sp := p.Child("subsets").Index(i)
		if s == nil {
			v.invalid(sp, nil, "must not be null")
			continue
		}
		if names[s.Name] {
			v.add(field.Duplicate(sp.Child("name"), s.Name))
		}
		names[s.Name] = true
		switch {
		case s.Name == "":
			v.required(sp.Child("name"), "subset name is required")
		case !isDNSLabel(s.Name):
			v.invalid(sp.Child("name"), s.Name, "subset name must be a DNS label")
		}
		v.labels(sp.Child("labels"), s.Labels)
		v.trafficPolicy(sp.Child("trafficPolicy"), s.TrafficPolicy)
	}
	v.exportTo(p.Child("exportTo"), o.Namespace, dr.ExportTo, false, dr.WorkloadSelector != nil)
	v.workloadSelector(p.Child("workloadSelector"), dr.GetWorkloadSelector().GetMatchLabels(), dr.WorkloadSelector != nil)
}

func (v *validator) trafficPolicy(p *field.Path, tp *networking.TrafficPolicy) {
	if tp == nil {
		return
	}
	if tp.OutlierDetection == nil && tp.ConnectionPool == nil && tp.LoadBalancer == nil && tp.Tls == nil &&
		tp.PortLevelSettings == nil && tp.Tunnel == nil && tp.ProxyProtocol == nil && tp.RetryBudget == nil {
		v.required(p, "a traffic policy must set at least one field")
		return
	}
	if tp.Tunnel != nil && tp.ProxyProtocol != nil {
		v.forbidden(p.Child("proxyProtocol"), "cannot be set together with tunnel")
		return
	}
	v.outlierDetection(p.Child("outlierDetection"), tp.OutlierDetection)
	v.connectionPool(p.Child("connectionPool"), tp.ConnectionPool)
	v.loadBalancer(p.Child("loadBalancer"), tp.LoadBalancer, tp.OutlierDetection)
	v.clientTLS(p.Child("tls"), tp.Tls)
	pls := p.Child("portLevelSettings")
	if len(tp.PortLevelSettings) > 4096 {
		v.add(field.TooMany(pls, len(tp.PortLevelSettings), 4096))
	}
	for i, pl := range tp.PortLevelSettings {
		pp := pls.Index(i)
		if pl == nil {
			v.invalid(pp, nil, "must not be null")
			continue
		}
		if pl.Port == nil {
			v.required(pp.Child("port"), "a port traffic policy needs the port it applies to")
		}
		if pl.OutlierDetection == nil && pl.ConnectionPool == nil && pl.LoadBalancer == nil && pl.Tls == nil {
			v.required(pp, "a port traffic policy must set loadBalancer, connectionPool, outlierDetection or tls")
			continue
		}
		v.outlierDetection(pp.Child("outlierDetection"), pl.OutlierDetection)
		v.connectionPool(pp.Child("connectionPool"), pl.ConnectionPool)
		v.loadBalancer(pp.Child("loadBalancer"), pl.LoadBalancer, pl.OutlierDetection)
		v.clientTLS(pp.Child("tls"), pl.Tls)
	}
	if t := tp.Tunnel; t != nil {
		tp := p.Child("tunnel")
		if t.Protocol != "" && t.Protocol != "CONNECT" && t.Protocol != "POST" {
			v.add(field.NotSupported(tp.Child("protocol"), t.Protocol, []string{"CONNECT", "POST"}))
		}
		if domainProblem(t.TargetHost, false) != "" && !isIP(t.TargetHost) {
			v.invalid(tp.Child("targetHost"), t.TargetHost, "must be a valid FQDN or IP address")
		}
		v.port(tp.Child("targetPort"), t.TargetPort)
	}
	if pp := tp.ProxyProtocol; pp != nil {
		if _, ok := networking.TrafficPolicy_ProxyProtocol_VERSION_name[int32(pp.Version)]; !ok {
			v.add(field.NotSupported(p.Child("proxyProtocol", "version"), pp.Version.String(), []string{"V1", "V2"}))
		}
	}
	if rb := tp.RetryBudget; rb != nil && rb.Percent != nil {
		if val := rb.Percent.GetValue(); val < 0 || val > 100 {
			v.invalid(p.Child("retryBudget", "percent"), val, "must be between 0 and 100")
		}
	}
}

func (v *validator) outlierDetection(p *field.Path, o *networking.OutlierDetection) {
	if o == nil {
		return
	}
	v.duration(p.Child("baseEjectionTime"), o.BaseEjectionTime)
	v.duration(p.Child("interval"), o.Interval)
	if o.ConsecutiveErrors != 0 { //nolint:staticcheck // validating the deprecated field is the point
		v.warn(p.Child("consecutiveErrors"), "deprecated: use consecutiveGatewayErrors or consecutive5xxErrors instead")
	}
	if !o.SplitExternalLocalOriginErrors && o.ConsecutiveLocalOriginFailures.GetValue() > 0 {
		v.invalid(p.Child("consecutiveLocalOriginFailures"), o.ConsecutiveLocalOriginFailures.GetValue(),
			"only takes effect with splitExternalLocalOriginErrors: true")
	}
	v.percent(p.Child("maxEjectionPercent"), o.MaxEjectionPercent)
	v.percent(p.Child("minHealthPercent"), o.MinHealthPercent)
	for i, c := range o.OutlierDetectionHttpErrorCodes {
		if c < 100 || c > 599 {
			v.invalid(p.Child("outlierDetectionHttpErrorCodes").Index(i), c, "must be an HTTP status between 100 and 599")
		}
	}
}

func (v *validator) connectionPool(p *field.Path, c *networking.ConnectionPoolSettings) {
	if c == nil {
		return
	}
	if c.Http == nil && c.Tcp == nil {
		v.required(p, "a connection pool must set tcp or http")
		return
	}
	if h := c.Http; h != nil {
		hp := p.Child("http")
		for _, f := range []struct {
			name  string
			value int32
		}{{"http1MaxPendingRequests", h.Http1MaxPendingRequests}, {"http2MaxRequests", h.Http2MaxRequests},
			{"maxRequestsPerConnection", h.MaxRequestsPerConnection}, {"maxRetries", h.MaxRetries},
			{"maxConcurrentStreams", h.MaxConcurrentStreams}} {
			if f.value < 0 {
				v.invalid(hp.Child(f.name), f.value, "must not be negative")
			}
		}
		v.duration(hp.Child("idleTimeout"), h.IdleTimeout)
		if h.H2UpgradePolicy == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE && h.UseClientProtocol {
			v.forbidden(hp.Child("useClientProtocol"), "cannot be true when h2UpgradePolicy is UPGRADE")
		}
		if _, ok := networking.ConnectionPoolSettings_HTTPSettings_H2UpgradePolicy_name[int32(h.H2UpgradePolicy)]; !ok {
			v.add(field.NotSupported(hp.Child("h2UpgradePolicy"), h.H2UpgradePolicy.String(), []string{"DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"}))
		}
		if ka := h.Http2KeepAlive; ka != nil {
			kp := hp.Child("http2KeepAlive")
			if ka.Interval == nil {
				v.required(kp.Child("interval"), "required when http2KeepAlive is set")
			}
			if ka.Timeout == nil {
				v.required(kp.Child("timeout"), "required when http2KeepAlive is set")
			}
			v.duration(kp.Child("interval"), ka.Interval)
			v.duration(kp.Child("timeout"), ka.Timeout)
		}
	}
	if t := c.Tcp; t != nil {
		tp := p.Child("tcp")
		if t.MaxConnections < 0 {
			v.invalid(tp.Child("maxConnections"), t.MaxConnections, "must not be negative")
		}
		v.duration(tp.Child("connectTimeout"), t.ConnectTimeout)
		v.duration(tp.Child("maxConnectionDuration"), t.MaxConnectionDuration)
		if t.IdleTimeout != nil && t.IdleTimeout.AsDuration() != 0 { // 0s disables the idle timeout
			v.duration(tp.Child("idleTimeout"), t.IdleTimeout)
		}
		if ka := t.TcpKeepalive; ka != nil {
			v.duration(tp.Child("tcpKeepalive", "time"), ka.Time)
			v.duration(tp.Child("tcpKeepalive", "interval"), ka.Interval)
		}
	}
}

var simpleLBNames = []string{"UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"}

func (v *validator) loadBalancer(p *field.Path, lb *networking.LoadBalancerSettings, outlier *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if s, ok := lb.LbPolicy.(*networking.LoadBalancerSettings_Simple); ok {
		if _, known := networking.LoadBalancerSettings_SimpleLB_name[int32(s.Simple)]; !known {
			v.add(field.NotSupported(p.Child("simple"), s.Simple.String(), simpleLBNames))
		}
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		cp := p.Child("consistentHash")
		if c := ch.GetHttpCookie(); c != nil {
			kp := cp.Child("httpCookie")
			if c.Name == "" {
				v.required(kp.Child("name"), "the cookie name is required")
			}
			attrs := map[string]bool{}
			for i, a := range c.Attributes {
				ap := kp.Child("attributes").Index(i).Child("name")
				switch {
				case a.GetName() == "":
					v.required(ap, "cookie attribute name is required")
				case attrs[a.GetName()]:
					v.add(field.Duplicate(ap, a.GetName()))
				}
				attrs[a.GetName()] = true
			}
		}
		if ch.GetHashKey() == nil {
			// Not an Istio rule: meshlab's own hint, as Envoy then hashes nothing and the balancing is random.
			v.warn(cp, "no hash key (httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName) is set: requests are not hashed consistently")
		}
		if ch.MinimumRingSize != 0 { //nolint:staticcheck // validating the deprecated field is the point
			v.warn(cp.Child("minimumRingSize"), "deprecated: use ringHash.minimumRingSize instead")
			if ch.GetHashAlgorithm() != nil {
				v.forbidden(cp.Child("minimumRingSize"), "cannot be set together with ringHash or maglev")
			}
		}
		if ml := ch.GetMaglev(); ml != nil {
			tp := cp.Child("maglev", "tableSize")
			switch {
			case ml.TableSize == 0:
				v.required(tp, "tableSize must be set for maglev")
			case ml.TableSize >= 5000011:
				v.invalid(tp, ml.TableSize, "must be less than 5000011")
			case !isPrime(ml.TableSize):
				v.invalid(tp, ml.TableSize, "must be a prime number")
			}
		}
	}
	if lb.LocalityLbSetting != nil && lb.ZoneAwareLbSetting != nil {
		v.forbidden(p.Child("zoneAwareLbSetting"), "cannot be set together with localityLbSetting")
	}
	v.localityLB(p.Child("localityLbSetting"), lb.LocalityLbSetting, outlier)
	v.zoneAwareLB(p.Child("zoneAwareLbSetting"), lb.ZoneAwareLbSetting, outlier)
	if w := lb.Warmup; w != nil {
		wp := p.Child("warmup")
		if w.Duration == nil {
			v.required(wp.Child("duration"), "warmup needs a duration")
		}
		v.duration(wp.Child("duration"), w.Duration)
		if w.MinimumPercent != nil {
			if val := w.MinimumPercent.GetValue(); val < 0 || val > 100 {
				v.invalid(wp.Child("minimumPercent"), val, "must be between 0 and 100")
			}
		}
		if w.Aggression != nil && w.Aggression.GetValue() <= 0 {
			v.invalid(wp.Child("aggression"), w.Aggression.GetValue(), "must be greater than 0")
		}
	}
	v.duration(p.Child("warmupDurationSecs"), lb.WarmupDurationSecs)
}

// isPrime is the primality test Envoy applies to a Maglev table size.
func isPrime(x uint64) bool {
	if x < 2 {
		return false
	}
	if x < 4 {
		return true
	}
	if x%2 == 0 {
		return false
	}
	for f := uint64(3); f*f <= x; f += 2 {
		if x%f == 0 {
			return false
		}
	}
	return true
}

var topologyLabels = []string{"topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone"}

func (v *validator) localityLB(p *field.Path, lb *networking.LocalityLoadBalancerSetting, outlier *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if len(lb.Distribute) > 0 && len(lb.Failover) > 0 {
		v.forbidden(p.Child("failover"), "cannot be set together with distribute")
		return
	}
	if len(lb.Failover) > 0 {
		for i, l := range lb.FailoverPriority {
			if contains(topologyLabels, l) {
				v.forbidden(p.Child("failoverPriority").Index(i), fmt.Sprintf("topology label %s cannot be used together with failover", l))
				return
			}
		}
	}
	var from []string
	for i, d := range lb.Distribute {
		dp := p.Child("distribute").Index(i)
		from = append(from, d.GetFrom())
		var total uint32
		for _, loc := range sortedKeys(d.GetTo()) {
			w := d.GetTo()[loc]
			if w == 0 || w > 100 {
				v.invalid(dp.Child("to").Key(loc), w, "locality weight must be between 1 and 100")
			}
			total += w
		}
		if total != 100 {
			v.invalid(dp.Child("to"), total, "locality weights must sum to 100")
		}
		v.localities(dp.Child("to"), sortedKeys(d.GetTo()))
	}
	v.localities(p.Child("distribute"), from)
	if (len(lb.Failover) > 0 || len(lb.FailoverPriority) > 0) && outlier == nil {
		v.warn(p, "failover needs outlier detection: set outlierDetection in the same traffic policy")
	}
	for i, f := range lb.Failover {
		v.failover(p.Child("failover").Index(i), f.GetFrom(), f.GetTo())
	}
}

func (v *validator) zoneAwareLB(p *field.Path, lb *networking.ZoneAwareLoadBalancerSetting, outlier *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	for i, l := range lb.FailoverPriority {
		if contains(topologyLabels, l) {
			v.forbidden(p.Child("failoverPriority").Index(i),
				fmt.Sprintf("topology label %s cannot be used: region and zone routing are automatic with zone-aware load balancing", l))
		}
	}
	if (len(lb.Failover) > 0 || len(lb.FailoverPriority) > 0) && outlier == nil {
		v.warn(p, "failover needs outlier detection: set outlierDetection in the same traffic policy")
	}
	for i, f := range lb.Failover {
		v.failover(p.Child("failover").Index(i), f.GetFrom(), f.GetTo())
	}
	if lb.MinClusterSize != nil && lb.MinClusterSize.GetValue() < 1 {
		v.invalid(p.Child("minClusterSize"), lb.MinClusterSize.GetValue(), "must be at least 1")
	}
}

func (v *validator) failover(p *field.Path, from, to string) {
	if from == to {
		v.invalid(p.Child("to"), to, "failover must go to a different region")
	}
	for name, val := range map[string]string{"from": from, "to": to} {
		if strings.Contains(val, "/") {
			v.invalid(p.Child(name), val, "failover names regions only (no zone or subzone)")
		}
		if strings.Contains(val, "*") {
			v.invalid(p.Child(name), val, "a failover region cannot contain the * wildcard")
		}
	}
}

// localities checks region/zone/subzone strings: an optional trailing "*", no empty parts, no overlaps.
func (v *validator) localities(p *field.Path, locs []string) {
	var prev [][]string
	for _, loc := range locs {
		if n := strings.Count(loc, "*"); n > 1 || (n == 1 && !strings.HasSuffix(loc, "*")) {
			v.invalid(p, loc, "a locality may have one * wildcard, at the end")
			continue
		}
		parts := strings.SplitN(loc, "/", 3)
		if contains(parts, "") {
			v.invalid(p, loc, "a locality cannot have an empty region, zone or subzone")
			continue
		}
		for _, q := range prev {
			if localitiesOverlap(parts, q) {
				v.invalid(p, loc, fmt.Sprintf("overlaps locality %q listed before", strings.Join(q, "/")))
				break
			}
		}
		prev = append(prev, parts)
	}
}

func localitiesOverlap(a, b []string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] && a[i] != "*" && b[i] != "*" {
			return false
		}
	}
	return true
}

var clientTLSModes = []string{"DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"}

func (v *validator) clientTLS(p *field.Path, t *networking.ClientTLSSettings) {
	if t == nil {
		return
	}
	if _, ok := networking.ClientTLSSettings_TLSmode_name[int32(t.Mode)]; !ok {
		v.add(field.NotSupported(p.Child("mode"), t.Mode.String(), clientTLSModes))
		return
	}
	if t.GetInsecureSkipVerify().GetValue() {
		switch t.Mode {
		case networking.ClientTLSSettings_SIMPLE:
			if t.CaCertificates != "" || t.CredentialName != "" || t.SubjectAltNames != nil {
				v.forbidden(p.Child("insecureSkipVerify"), "cannot be true with caCertificates, credentialName or subjectAltNames")
			}
		case networking.ClientTLSSettings_MUTUAL:
			if t.CaCertificates != "" || t.SubjectAltNames != nil {
				v.forbidden(p.Child("insecureSkipVerify"), "cannot be true with caCertificates or subjectAltNames")
			}
		}
	}
	if (t.Mode == networking.ClientTLSSettings_SIMPLE || t.Mode == networking.ClientTLSSettings_MUTUAL) && t.CredentialName != "" {
		for name, val := range map[string]string{"clientCertificate": t.ClientCertificate, "caCertificates": t.CaCertificates,
			"privateKey": t.PrivateKey, "caCrl": t.CaCrl} {
			if val != "" {
				v.forbidden(p.Child(name), "cannot be set together with credentialName (the credential holds the certificates)")
			}
		}
		return
	}
	if t.Mode == networking.ClientTLSSettings_MUTUAL {
		if t.ClientCertificate == "" {
			v.required(p.Child("clientCertificate"), "MUTUAL mode needs a client certificate (or credentialName)")
		}
		if t.PrivateKey == "" {
			v.required(p.Child("privateKey"), "MUTUAL mode needs a private key (or credentialName)")
		}
	}
}

// ======== ServiceEntry ========

// Protocols a port may name (case-insensitive); empty means "sniff".
var knownProtocols = []string{"TCP", "UDP", "GRPC", "GRPC-WEB", "HTTP", "HTTP_PROXY", "HTTP2", "HTTPS", "TLS", "MONGO", "REDIS", "MYSQL"}

func protocolOf(s string) string {
	u := strings.ToUpper(s)
	if contains(knownProtocols, u) {
		return u
	}
	return ""
}

func isHTTPProtocol(p string) bool {
	switch p {
	case "HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-WEB":
		return true
	}
	return false
}

func isTLSProtocol(p string) bool { return p == "HTTPS" || p == "TLS" }

func isTCPProtocol(p string) bool {
	switch p {
	case "TCP", "HTTPS", "TLS", "MONGO", "REDIS", "MYSQL":
		return true
	}
	return false
}

const (
	labelAutoallocate = "networking.istio.io/enable-autoallocate-ip"
	labelUseWaypoint  = "istio.io/use-waypoint"
)

var (
	seResolutions = []string{"NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"}
	seLocations   = []string{"MESH_EXTERNAL", "MESH_INTERNAL"}
)

func (v *validator) serviceEntry(o *networkingv1.ServiceEntry) {
	se := &o.Spec
	p := field.NewPath("spec")

	if ws := se.WorkloadSelector; ws != nil {
		wp := p.Child("workloadSelector")
		for _, k := range sortedKeys(ws.Labels) {
			switch {
			case k == "":
				v.invalid(wp.Child("labels"), k, "empty label key is not supported in a selector")
			case strings.Contains(k, "*") || strings.Contains(ws.Labels[k], "*"):
				v.invalid(wp.Child("labels").Key(k), ws.Labels[k], "wildcards are not supported in a selector")
			}
		}
		if len(ws.Labels) == 0 {
			v.warn(wp, "workload selector specified without labels: the service entry applies to every workload in the namespace")
		}
		if se.Endpoints != nil {
			v.forbidden(p.Child("endpoints"), "cannot be set together with workloadSelector")
		}
	}

	if _, ok := networking.ServiceEntry_Location_name[int32(se.Location)]; !ok {
		v.add(field.NotSupported(p.Child("location"), se.Location.String(), seLocations))
	}
	if len(se.Hosts) == 0 {
		v.required(p.Child("hosts"), "a service entry needs at least one host")
	}
	for i, h := range se.Hosts {
		hp := p.Child("hosts").Index(i)
		if h == "*" {
			v.invalid(hp, h, "a service entry host cannot be the wildcard *")
			continue
		}
		if msg := domainProblem(h, true); msg != "" {
			v.invalid(hp, h, msg)
		} else if se.Resolution != networking.ServiceEntry_DYNAMIC_DNS && strings.Contains(h, "*") && !strings.HasPrefix(h, "*.") {
			v.warn(hp, "partial wildcard %q not allowed", h)
		}
	}

	cidr := false
	for i, a := range se.Addresses {
		cidr = cidr || strings.Contains(a, "/")
		if msg := ipOrCIDRProblem(a); msg != "" {
			v.invalid(p.Child("addresses").Index(i), a, msg)
		}
	}
	if cidr && se.Resolution != networking.ServiceEntry_NONE && se.Resolution != networking.ServiceEntry_STATIC {
		v.invalid(p.Child("resolution"), se.Resolution.String(), "CIDR addresses are allowed only with resolution NONE or STATIC")
	}

	autoAllocate := se.Resolution != networking.ServiceEntry_NONE && !strings.EqualFold(o.Labels[labelAutoallocate], "false")
	portNames := map[string]bool{}
	portNumbers := map[uint32]bool{}
	for i, port := range se.Ports {
		pp := p.Child("ports").Index(i)
		if port == nil {
			v.invalid(pp, nil, "must not be null")
			continue
		}
		if portNames[port.Name] {
			v.add(field.Duplicate(pp.Child("name"), port.Name))
		}
		portNames[port.Name] = true
		if portNumbers[port.Number] {
			v.add(field.Duplicate(pp.Child("number"), port.Number))
		}
		portNumbers[port.Number] = true
		if port.TargetPort != 0 {
			v.port(pp.Child("targetPort"), port.TargetPort)
		}
		if len(se.Addresses) == 0 && !autoAllocate && (port.Protocol == "" || strings.EqualFold(port.Protocol, "TCP")) {
			v.warn(pp, "addresses are required for ports serving TCP (or unset) protocol when IP autoallocation is not enabled")
		}
		if !isDNSLabel(port.Name) {
			v.invalid(pp.Child("name"), port.Name, "port name must be a DNS label")
		}
		if port.Protocol != "" && protocolOf(port.Protocol) == "" {
			v.add(field.NotSupported(pp.Child("protocol"), port.Protocol, knownProtocols))
		}
		v.port(pp.Child("number"), port.Number)
	}

	ep := p.Child("endpoints")
	switch se.Resolution {
	case networking.ServiceEntry_NONE:
		if len(se.Endpoints) > 0 {
			v.forbidden(ep, "endpoints cannot be set with resolution NONE")
		}
		if se.WorkloadSelector != nil {
			v.warn(p.Child("workloadSelector"), "workloadSelector should not be set when resolution is NONE")
		}
	case networking.ServiceEntry_STATIC:
		for i, e := range se.Endpoints {
			v.workloadEntry(ep.Index(i), e, portNames, false)
		}
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		if len(se.Endpoints) == 0 {
			for i, h := range se.Hosts {
				if msg := domainProblem(h, false); msg != "" && h != "*" {
					v.invalid(p.Child("hosts").Index(i), h, fmt.Sprintf("without endpoints, resolution %s needs fully qualified hosts (no wildcards): %s", se.Resolution, msg))
					break
				}
			}
		}
		if se.Resolution == networking.ServiceEntry_DNS_ROUND_ROBIN && len(se.Endpoints) > 1 {
			v.add(field.TooMany(ep, len(se.Endpoints), 1))
		}
		for i, e := range se.Endpoints {
			v.workloadEntry(ep.Index(i), e, portNames, true)
		}
		if len(se.Addresses) > 0 && len(se.Hosts) > 1 {
			for _, port := range se.Ports {
				if isTCPProtocol(protocolOf(port.GetProtocol())) {
					v.warn(p.Child("hosts"), "a service entry with addresses and a TCP port should not have more than one host")
					break
				}
			}
		}
	case networking.ServiceEntry_DYNAMIC_DNS:
		for i, h := range se.Hosts {
			if !strings.HasPrefix(h, "*") {
				v.invalid(p.Child("hosts").Index(i), h, "resolution DYNAMIC_DNS needs wildcard hosts")
			}
		}
		if len(se.Addresses) > 0 {
			v.forbidden(p.Child("addresses"), "cannot be set with resolution DYNAMIC_DNS (routes are built from the hosts)")
		}
		if len(se.Endpoints) > 0 {
			v.forbidden(ep, "cannot be set with resolution DYNAMIC_DNS (the destination comes from the host name)")
		}
		for i, port := range se.Ports {
			switch protocolOf(port.GetProtocol()) {
			case "HTTP", "TLS", "GRPC", "HTTP2":
			default:
				v.add(field.NotSupported(p.Child("ports").Index(i).Child("protocol"), port.GetProtocol(), []string{"HTTP", "TLS", "GRPC", "HTTP2"}))
			}
		}
		if se.Location == networking.ServiceEntry_MESH_INTERNAL {
			if w := o.Labels[labelUseWaypoint]; w != "" && !strings.EqualFold(w, "none") {
				v.forbidden(p.Child("location"), "MESH_INTERNAL with resolution DYNAMIC_DNS is not supported with a waypoint")
			}
		}
	default:
		v.add(field.NotSupported(p.Child("resolution"), se.Resolution.String(), seResolutions))
	}

	// Plain TCP cannot tell hosts apart, so several hosts need HTTP or TLS ports (NONE ignores the hosts).
	if se.Resolution != networking.ServiceEntry_NONE && len(se.Hosts) > 1 {
		for i, port := range se.Ports {
			proto := protocolOf(port.GetProtocol())
			if !isHTTPProtocol(proto) && !isTLSProtocol(proto) {
				v.invalid(p.Child("ports").Index(i).Child("protocol"), port.GetProtocol(),
					"several hosts need HTTP or TLS ports: plain TCP cannot tell the hosts apart")
				break
			}
		}
	}
	v.exportTo(p.Child("exportTo"), o.Namespace, se.ExportTo, true, false)
}

const unixPrefix = "unix://"

// workloadEntry checks a ServiceEntry endpoint. With DNS resolution the address is an IP address or a host
// name; with STATIC it is an IP address or a unix domain socket.
func (v *validator) workloadEntry(p *field.Path, e *networking.WorkloadEntry, servicePorts map[string]bool, dns bool) {
	if e == nil {
		v.invalid(p, nil, "must not be null")
		return
	}
	ap := p.Child("address")
	addr := e.Address
	switch {
	case dns:
		if !isIP(addr) && domainProblem(addr, false) != "" {
			v.invalid(ap, addr, "must be an IP address or a fully qualified host name")
		}
	case addr == "" && e.Network == "":
		v.required(ap, "an endpoint needs an address (or a network)")
		return
	case addr == "":
		v.warn(ap, "address is unset with network %q", e.Network)
	case strings.HasPrefix(addr, unixPrefix):
		path := strings.TrimPrefix(addr, unixPrefix)
		switch {
		case path == "":
			v.invalid(ap, addr, "unix socket path must not be empty")
		case strings.HasPrefix(path, "@"): // abstract socket
		case !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/"):
			v.invalid(ap, addr, "must be an absolute path to a socket file (or an abstract socket @name)")
		}
		if len(e.Ports) > 0 {
			v.forbidden(p.Child("ports"), "a unix socket endpoint cannot have ports")
		}
		if len(servicePorts) != 1 {
			v.invalid(ap, addr, "a unix socket endpoint needs exactly one service port")
		}
	case !isIP(addr):
		v.invalid(ap, addr, "must be an IP address with resolution STATIC")
	}
	for _, name := range sortedKeys(e.Ports) {
		pp := p.Child("ports").Key(name)
		if !servicePorts[name] {
			v.invalid(pp, name, "not a port name defined in spec.ports")
		}
		if !isDNSLabel(name) {
			v.invalid(pp, name, "port name must be a DNS label")
		}
		v.port(pp, e.Ports[name])
	}
	v.labels(p.Child("labels"), e.Labels)
}

// ======== Gateway (networking.istio.io) ========

var serverTLSModes = []string{"PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"}

func (v *validator) gateway(o *networkingv1.Gateway) {
	gw := &o.Spec
	p := field.NewPath("spec")
	if len(gw.Servers) == 0 {
		v.required(p.Child("servers"), "a gateway needs at least one server")
	}
	portNames := map[string]int{}
	for i, s := range gw.Servers {
		sp := p.Child("servers").Index(i)
		if s == nil {
			v.invalid(sp, nil, "must not be null")
			continue
		}
		v.server(sp, s)
		if s.Port != nil {
			if j, dup := portNames[s.Port.Name]; dup {
				v.invalid(sp.Child("port", "name"), s.Port.Name, fmt.Sprintf("port names must be unique across servers (also used by servers[%d])", j))
			} else {
				portNames[s.Port.Name] = i
			}
			if s.GetTls().GetHttpsRedirect() && !isHTTPProtocol(protocolOf(s.Port.Protocol)) {
				v.warn(sp.Child("tls", "httpsRedirect"), "httpsRedirect should only be used with HTTP servers")
			}
		}
	}
}

func (v *validator) server(p *field.Path, s *networking.Server) {
	if len(s.Hosts) == 0 {
		v.required(p.Child("hosts"), "a server needs at least one host")
	}
	for i, h := range s.Hosts {
		v.serverHost(p.Child("hosts").Index(i), h)
	}
	portOK := true
	pp := p.Child("port")
	if s.Port == nil {
		v.required(pp, "a server needs a port")
		portOK = false
	} else {
		n := len(v.errs)
		proto := protocolOf(s.Port.Protocol)
		if proto == "" {
			v.add(field.NotSupported(pp.Child("protocol"), s.Port.Protocol, knownProtocols))
		}
		if s.Port.Number > 0 || !strings.HasPrefix(s.Bind, unixPrefix) {
			v.port(pp.Child("number"), s.Port.Number)
		}
		if s.Port.TargetPort > 0 { //nolint:staticcheck // validating the deprecated field is the point
			v.forbidden(pp.Child("targetPort"), "targetPort has no effect on Gateways")
		}
		if s.Port.Name == "" {
			v.required(pp.Child("name"), "port name is required")
		}
		portOK = len(v.errs) == n
	}
	if path, ok := strings.CutPrefix(s.Bind, unixPrefix); ok {
		if path == "" || (!strings.HasPrefix(path, "@") && (!strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/"))) {
			v.invalid(p.Child("bind"), s.Bind, "must be an absolute path to a socket file (or an abstract socket @name)")
		}
		if s.Port != nil && s.Port.Number != 0 {
			v.invalid(pp.Child("number"), s.Port.Number, "must be 0 when binding to a unix domain socket")
		}
	} else if s.Bind != "" && !isIP(s.Bind) {
		v.invalid(p.Child("bind"), s.Bind, "must be an IP address or unix://<path>")
	}
	v.serverTLS(p.Child("tls"), s.Tls)

	if portOK {
		proto := protocolOf(s.Port.Protocol)
		switch {
		case isTLSProtocol(proto) && s.Tls == nil:
			v.required(p.Child("tls"), "HTTPS and TLS servers need TLS settings")
		case !isTLSProtocol(proto) && s.Tls != nil:
			passthrough := s.Tls.Mode == networking.ServerTLSSettings_PASSTHROUGH || s.Tls.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH
			if !isHTTPProtocol(proto) {
				v.forbidden(p.Child("tls"), "only HTTPS and TLS servers can have TLS settings")
			} else if !passthrough || s.Tls.CaCertificates != "" || s.Tls.PrivateKey != "" || s.Tls.ServerCertificate != "" {
				// A plain HTTP server may only carry tls for httpsRedirect.
				v.forbidden(p.Child("tls"), "a plain-text HTTP server cannot have TLS settings (other than httpsRedirect)")
			}
		}
	}
}

// serverHost checks a gateway server host: [<namespace>/]<host>, where namespace is *, . or a namespace and
// host a fully qualified name, a wildcard (*, *.example.com) or an IP address.
func (v *validator) serverHost(p *field.Path, h string) {
	ns, host, qualified := strings.Cut(h, "/")
	if !qualified {
		host = h
	} else {
		if ns == "" || host == "" {
			v.invalid(p, h, "namespace and host cannot be empty in <namespace>/<host>")
			return
		}
		if ns != "*" && ns != "." && !isDNSLabel(ns) {
			v.invalid(p, h, fmt.Sprintf("namespace %q must be *, . or a namespace name", ns))
		}
	}
	if host != "*" && !strings.Contains(host, ".") {
		v.invalid(p, h, "short names (non FQDN) are not allowed")
	}
	if msg := domainProblem(host, true); msg != "" && !isIP(host) {
		v.invalid(p, h, msg)
	}
	if strings.Contains(host, "*") && host != "*" && !strings.HasPrefix(host, "*.") {
		v.invalid(p, h, "partial wildcards are not allowed (use * or *.<domain>)")
	}
}

var cipherSuites = []string{"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
	"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-SHA",
	"ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA", "AES128-GCM-SHA256", "AES256-GCM-SHA384",
	"AES128-SHA", "AES256-SHA", "DES-CBC3-SHA"}

func validCipherSuite(cs string) bool {
	if cs == "" || cs == "ALL" {
		return true
	}
	c := cs[0]
	if !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') {
		return true // BoringSSL operators such as -X or +X are passed through
	}
	return contains(cipherSuites, cs)
}

func (v *validator) serverTLS(p *field.Path, t *networking.ServerTLSSettings) {
	if t == nil {
		return
	}
	if _, ok := networking.ServerTLSSettings_TLSmode_name[int32(t.Mode)]; !ok {
		v.add(field.NotSupported(p.Child("mode"), t.Mode.String(), serverTLSModes))
		return
	}
	if (t.MinProtocolVersion == networking.ServerTLSSettings_TLSV1_0 || t.MinProtocolVersion == networking.ServerTLSSettings_TLSV1_1) &&
		len(t.CipherSuites) == 0 {
		v.warn(p.Child("minProtocolVersion"), "TLS versions below TLSV1_2 need compatible cipherSuites: the defaults no longer include them")
	}
	seen := map[string]bool{}
	for i, cs := range t.CipherSuites {
		switch {
		case !validCipherSuite(cs):
			v.warn(p.Child("cipherSuites").Index(i), "ignoring invalid cipher suite %q", cs)
		case seen[cs]:
			v.warn(p.Child("cipherSuites").Index(i), "ignoring duplicate cipher suite %q", cs)
		}
		seen[cs] = true
	}
	for _, l := range []struct {
		name string
		n    int
	}{{"credentialNames", len(t.CredentialNames)}, {"tlsCertificates", len(t.TlsCertificates)}} {
		if l.n > 2 {
			v.add(field.TooMany(p.Child(l.name), l.n, 2))
		}
	}

	if t.Mode == networking.ServerTLSSettings_ISTIO_MUTUAL {
		// ISTIO_MUTUAL uses the workload's own certificates.
		for name, set := range map[string]bool{"serverCertificate": t.ServerCertificate != "", "privateKey": t.PrivateKey != "",
			"caCertificates": t.CaCertificates != "", "tlsCertificates": len(t.TlsCertificates) > 0,
			"credentialName": t.CredentialName != "", "credentialNames": len(t.CredentialNames) > 0} {
			if set {
				v.forbidden(p.Child(name), "cannot be set with mode ISTIO_MUTUAL")
			}
		}
		return
	}
	if t.Mode == networking.ServerTLSSettings_PASSTHROUGH || t.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
		if t.CaCrl != "" || t.ServerCertificate != "" || t.PrivateKey != "" || t.CaCertificates != "" ||
			len(t.TlsCertificates) > 0 || t.CredentialName != "" || len(t.CredentialNames) > 0 {
			v.warn(p, "%s mode does not use certificates, they will be ignored", t.Mode)
		}
	}
	sources := 0
	for _, set := range []bool{t.ServerCertificate != "" && t.PrivateKey != "", t.CredentialName != "", len(t.CredentialNames) > 0,
		len(t.TlsCertificates) > 0} {
		if set {
			sources++
		}
	}
	if sources > 1 {
		v.invalid(p, field.OmitValueType{}, "only one of credentialName, credentialNames, serverCertificate/privateKey or tlsCertificates may be set")
	}
	mutual := t.Mode == networking.ServerTLSSettings_MUTUAL || t.Mode == networking.ServerTLSSettings_OPTIONAL_MUTUAL
	terminating := mutual || t.Mode == networking.ServerTLSSettings_SIMPLE
	if terminating && (t.CredentialName != "" || len(t.CredentialNames) > 0) {
		return // the certificates come from the credential
	}
	if terminating {
		mode := "SIMPLE"
		if mutual {
			mode = "MUTUAL"
			if t.CaCertificates == "" {
				v.required(p.Child("caCertificates"), "MUTUAL TLS needs a client CA bundle (or credentialName)")
			}
		}
		if len(t.TlsCertificates) > 0 {
			for i, c := range t.TlsCertificates {
				cp := p.Child("tlsCertificates").Index(i)
				if c.GetServerCertificate() == "" {
					v.required(cp.Child("serverCertificate"), mode+" TLS needs a server certificate")
				}
				if c.GetPrivateKey() == "" {
					v.required(cp.Child("privateKey"), mode+" TLS needs a private key")
				}
			}
		} else {
			if t.ServerCertificate == "" {
				v.required(p.Child("serverCertificate"), mode+" TLS needs a server certificate (or credentialName)")
			}
			if t.PrivateKey == "" {
				v.required(p.Child("privateKey"), mode+" TLS needs a private key (or credentialName)")
			}
		}
	}
	if t.CaCrl != "" {
		if t.CredentialName != "" {
			v.forbidden(p.Child("caCrl"), "not supported with credentialName: put the CRL in the credential")
		}
		if t.Mode == networking.ServerTLSSettings_SIMPLE {
			v.forbidden(p.Child("caCrl"), "not supported with SIMPLE TLS")
		}
	}
}
