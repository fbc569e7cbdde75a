package model

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/controlplane/ingest"
)

// byAge sorts objects oldest first, then by namespace/name: the precedence Istio gives conflicting config.
func byAge[T metav1.Object](objs []T) []T {
	out := append([]T(nil), objs...)
	sort.SliceStable(out, func(i, j int) bool {
		ti, tj := out[i].GetCreationTimestamp(), out[j].GetCreationTimestamp()
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		if out[i].GetNamespace() != out[j].GetNamespace() {
			return out[i].GetNamespace() < out[j].GetNamespace()
		}
		return out[i].GetName() < out[j].GetName()
	})
	return out
}

func (b *builder) buildDestinationRules() {
	for _, dr := range byAge(b.objs.DestinationRules) {
		key := ingest.Key{Kind: ingest.KindDestinationRule, Namespace: dr.Namespace, Name: dr.Name}
		host := resolveHost(dr.Spec.Host, dr.Namespace)
		if strings.Contains(host, "*") {
			b.problem(key, "wildcard host %q is not supported", dr.Spec.Host)
			continue
		}
		if b.s.byHost[host] == nil {
			b.problem(key, "host %s matches no service", host)
			continue
		}
		if prev := b.s.drs[host]; prev != nil {
			b.problem(key, "ignored: DestinationRule %s/%s already configures host %s", prev.Source.Namespace, prev.Source.Name, host)
			continue
		}
		d := &DestinationRule{Host: host, Source: key, Policy: dr.Spec.TrafficPolicy}
		seen := map[string]bool{}
		for _, ss := range dr.Spec.Subsets {
			if ss.Name == "" || seen[ss.Name] {
				b.problem(key, "subset with empty or duplicate name %q ignored", ss.Name)
				continue
			}
			seen[ss.Name] = true
			d.Subsets = append(d.Subsets, Subset{Name: ss.Name, Labels: ss.Labels, Policy: ss.TrafficPolicy})
		}
		sort.Slice(d.Subsets, func(i, j int) bool { return d.Subsets[i].Name < d.Subsets[j].Name })
		b.s.drs[host] = d
	}
}

func (b *builder) claimHost(key ingest.Key, host string) bool {
	if prev, ok := b.s.routeSrc[host]; ok && prev != key {
		if isGatewayRoute(prev.Kind) && isGatewayRoute(key.Kind) {
			return true // several HTTPRoutes and GRPCRoutes may attach to one service; their rules merge
		}
		b.problem(key, "ignored for host %s: %s %s/%s already routes it", host, prev.Kind, prev.Namespace, prev.Name)
		return false
	}
	b.s.routeSrc[host] = key
	return true
}

// isGatewayRoute reports whether k is a Gateway API route kind meshlab routes.
func isGatewayRoute(k ingest.Kind) bool {
	return k == ingest.KindHTTPRoute || k == ingest.KindGRPCRoute
}

func (b *builder) buildVirtualServices() {
	for _, vs := range byAge(b.objs.VirtualServices) {
		key := ingest.Key{Kind: ingest.KindVirtualService, Namespace: vs.Namespace, Name: vs.Name}
		spec := &vs.Spec
		if len(spec.Gateways) > 0 && !contains(spec.Gateways, "mesh") {
			continue // for ingress gateways only
		}
		if len(spec.Tcp) > 0 || len(spec.Tls) > 0 {
			b.problem(key, "tcp and tls routes are not supported; ignored")
		}
		var rules []*RouteRule
		for i, h := range spec.Http {
			if r := b.vsRule(key, vs.Namespace, i, h); r != nil {
				rules = append(rules, r)
			}
		}
		for _, h := range spec.Hosts {
			host := resolveHost(h, vs.Namespace)
			if b.s.byHost[host] == nil {
				b.problem(key, "host %s matches no service", host)
				continue
			}
			if b.claimHost(key, host) {
				b.s.routes[host] = append(b.s.routes[host], rules...)
			}
		}
	}
}

func (b *builder) vsRule(key ingest.Key, ns string, i int, h *networkingv1alpha3.HTTPRoute) *RouteRule {
	r := &RouteRule{Name: h.Name, Source: key, Index: i}
	if r.Name == "" {
		r.Name = fmt.Sprintf("%s.%s.%d", key.Name, key.Namespace, i)
	}
	if h.Delegate != nil {
		b.problem(key, "http[%d]: delegate is not supported; ignored", i)
	}
	r.Headers = istioHeaders(h.Headers)
	for _, m := range h.Match {
		rm := RouteMatch{}
		if m.Uri != nil {
			sm := istioMatch(m.Uri)
			rm.Path = &sm
		}
		if m.Method != nil {
			rm.Method = m.Method.GetExact()
		}
		for _, name := range sortedKeys(m.Headers) {
			rm.Headers = append(rm.Headers, HeaderMatch{Name: strings.ToLower(name), Match: istioMatch(m.Headers[name])})
		}
		for _, name := range sortedKeys(m.WithoutHeaders) {
			rm.Headers = append(rm.Headers, HeaderMatch{Name: strings.ToLower(name), Match: istioMatch(m.WithoutHeaders[name]), Invert: true})
		}
		for _, name := range sortedKeys(m.QueryParams) {
			rm.QueryParams = append(rm.QueryParams, QueryParamMatch{Name: name, Match: istioMatch(m.QueryParams[name])})
		}
		if m.Port != 0 {
			if p, ok := b.s.ruleRefs[r]; ok && p != m.Port {
				b.problem(key, "http[%d]: matches on different ports are not supported; using port %d", i, p)
			} else {
				b.s.ruleRefs[r] = m.Port
			}
		}
		r.Matches = append(r.Matches, rm)
	}
	r.CORS = istioCORS(h.CorsPolicy)
	if rd := h.Redirect; rd != nil {
		// Istio: a redirect wins over directResponse and route.
		r.Redirect = &Redirect{URI: rd.Uri, Authority: rd.Authority, Scheme: rd.Scheme, Code: rd.RedirectCode}
		switch p := rd.RedirectPort.(type) {
		case *networkingv1alpha3.HTTPRedirect_Port:
			r.Redirect.PortMode, r.Redirect.Port = RedirectPortFixed, p.Port
		case *networkingv1alpha3.HTTPRedirect_DerivePort:
			r.Redirect.PortMode = RedirectPortDefault
			if p.DerivePort == networkingv1alpha3.HTTPRedirect_FROM_REQUEST_PORT {
				r.Redirect.PortMode = RedirectPortFromRequest
			}
		}
		if !validRedirectCode(rd.RedirectCode) {
			b.problem(key, "http[%d]: redirectCode %d is not supported; requests get 301", i, rd.RedirectCode)
			r.Redirect.Code = 301
		}
		r.Fault = istioFault(h.Fault)
		return r
	}
	if h.DirectResponse != nil {
		r.DirectStatus = h.DirectResponse.Status
		return r
	}
	if rw := h.Rewrite; rw != nil {
		r.Rewrite = &Rewrite{URI: rw.Uri, Authority: rw.Authority}
		if rr := rw.UriRegexRewrite; rr != nil {
			r.Rewrite.URI, r.Rewrite.RegexMatch, r.Rewrite.RegexRewrite = "", rr.Match, rr.Rewrite
		}
	}
	// Weights are relative. Validation rejects negative ones, but the model must never wrap one into a huge
	// uint32: a negative weight counts as 0 (the destination gets no traffic) and is reported.
	var total int64
	for j, d := range h.Route {
		if d.Weight < 0 {
			b.problem(key, "http[%d].route[%d]: weight %d is negative; the destination gets no traffic", i, j, d.Weight)
			continue
		}
		total += int64(d.Weight)
	}
	for j, d := range h.Route {
		if d.Weight < 0 {
			continue
		}
		dest, ok := b.istioDestination(key, ns, fmt.Sprintf("http[%d].route[%d]", i, j), "", d.GetDestination())
		if !ok {
			continue
		}
		dest.Weight, dest.Headers = uint32(d.Weight), istioHeaders(d.Headers)
		if total == 0 {
			dest.Weight = 1 // one destination, or weights left out: share equally
		}
		r.Destinations = append(r.Destinations, dest)
	}
	if len(r.Destinations) == 0 {
		b.problem(key, "http[%d]: no valid destination; requests get 503", i)
		r.DirectStatus = 503
	}
	r.Mirrors = b.vsMirrors(key, ns, i, h)
	if h.Timeout != nil {
		t := h.Timeout.AsDuration()
		r.Timeout = &t
	}
	if h.Retries != nil {
		r.Retry = &Retry{Attempts: uint32(h.Retries.Attempts), RetryOn: h.Retries.RetryOn}
		if h.Retries.PerTryTimeout != nil {
			r.Retry.PerTryTimeout = h.Retries.PerTryTimeout.AsDuration()
		}
	}
	r.Fault = istioFault(h.Fault)
	return r
}

// istioCORS converts a corsPolicy as Istio does: allowOrigins, else the deprecated allowOrigin as exact
// matches; lists kept as given; preflights from other origins forwarded unless unmatchedPreflights is IGNORE.
func istioCORS(c *networkingv1alpha3.CorsPolicy) *CORS {
	if c == nil {
		return nil
	}
	out := &CORS{
		AllowMethods:               c.AllowMethods,
		AllowHeaders:               c.AllowHeaders,
		ExposeHeaders:              c.ExposeHeaders,
		ForwardUnmatchedPreflights: c.UnmatchedPreflights != networkingv1alpha3.CorsPolicy_IGNORE,
	}
	if c.AllowOrigins != nil {
		for _, o := range c.AllowOrigins {
			out.AllowOrigins = append(out.AllowOrigins, istioMatch(o))
		}
	} else {
		for _, o := range c.AllowOrigin { //nolint:staticcheck // the deprecated field, still accepted by Istio
			out.AllowOrigins = append(out.AllowOrigins, StringMatch{Type: MatchExact, Value: o})
		}
	}
	if c.MaxAge != nil {
		d := c.MaxAge.AsDuration()
		out.MaxAge = &d
	}
	if c.AllowCredentials != nil {
		v := c.AllowCredentials.GetValue()
		out.AllowCredentials = &v
	}
	return out
}

// istioDestination resolves a VirtualService destination (a route's or a mirror's, named by where) to its
// Service, port (the only one when unset) and subset. A host matching no Service or a port the Service
// lacks is a problem (followed by consequence) and no destination; an undefined subset is a problem only.
func (b *builder) istioDestination(key ingest.Key, ns, where, consequence string, d *networkingv1alpha3.Destination) (Destination, bool) {
	host := resolveHost(d.GetHost(), ns)
	svc := b.s.byHost[host]
	if svc == nil {
		b.problem(key, "%s: destination host %s matches no service%s", where, host, consequence)
		return Destination{}, false
	}
	dest := Destination{Service: svc, Port: d.GetPort().GetNumber(), Subset: d.GetSubset()}
	if dest.Port == 0 && len(svc.Ports) == 1 {
		dest.Port = svc.Ports[0].Port
	}
	if dest.Port != 0 {
		if _, ok := svc.Port(dest.Port); !ok {
			b.problem(key, "%s: service %s has no port %d%s", where, host, dest.Port, consequence)
			return Destination{}, false
		}
	}
	if dest.Subset != "" {
		if _, ok := b.s.drs[host].Subset(dest.Subset); !ok {
			b.problem(key, "%s: subset %q of %s is not defined by any DestinationRule", where, dest.Subset, host)
		}
	}
	return dest, true
}

// vsMirrors converts mirror (with mirrorPercentage, else the deprecated mirrorPercent, else 100%) and
// mirrors[] (each with its percentage, else 100%) as Istio does: a percentage given as a Percent is kept in
// millionths, an integer one (and the 100% default) in hundredths; an explicit 0 mirrors nothing.
func (b *builder) vsMirrors(key ingest.Key, ns string, i int, h *networkingv1alpha3.HTTPRoute) []Mirror {
	var out []Mirror
	add := func(what string, d *networkingv1alpha3.Destination, pct *networkingv1alpha3.Percent, legacy *wrapperspb.UInt32Value) {
		m := Mirror{Numerator: 100}
		switch {
		case pct != nil:
			if pct.GetValue() <= 0 {
				return
			}
			m.Numerator, m.PerMillion = uint32(pct.GetValue()*10000), true
		case legacy != nil:
			if legacy.GetValue() == 0 {
				return
			}
			m.Numerator = legacy.GetValue()
		}
		dest, ok := b.istioDestination(key, ns, fmt.Sprintf("http[%d].%s", i, what), "; not mirrored", d)
		if !ok {
			return
		}
		dest.Weight = 1
		m.Destination = dest
		out = append(out, m)
	}
	if h.Mirror != nil {
		add("mirror", h.Mirror, h.MirrorPercentage, h.MirrorPercent)
	}
	for j, mp := range h.Mirrors {
		if mp.GetDestination() != nil {
			add(fmt.Sprintf("mirrors[%d]", j), mp.GetDestination(), mp.GetPercentage(), nil)
		}
	}
	return out
}

func istioFault(f *networkingv1alpha3.HTTPFaultInjection) *Fault {
	if f == nil {
		return nil
	}
	out := &Fault{}
	if d := f.Delay; d != nil {
		out.Delay = d.GetFixedDelay().AsDuration()
		out.DelayPercent = percent(d.Percentage, d.Percent)
	}
	if a := f.Abort; a != nil {
		out.AbortStatus = uint32(a.GetHttpStatus())
		out.AbortPercent = percent(a.Percentage, 100)
	}
	return out
}

// validRedirectCode reports whether Istio can express the redirect status (0 means 301).
func validRedirectCode(c uint32) bool {
	switch c {
	case 0, 301, 302, 303, 307, 308:
		return true
	}
	return false
}

// istioHeaders converts VirtualService header operations; nil when there are none.
func istioHeaders(h *networkingv1alpha3.Headers) *Headers {
	if h == nil {
		return nil
	}
	ops := func(o *networkingv1alpha3.Headers_HeaderOperations) HeaderOps {
		return HeaderOps{Set: headerValues(o.GetSet()), Add: headerValues(o.GetAdd()), Remove: append([]string(nil), o.GetRemove()...)}
	}
	out := &Headers{Request: ops(h.Request), Response: ops(h.Response)}
	if out.Request.empty() && out.Response.empty() {
		return nil
	}
	return out
}

func (o HeaderOps) empty() bool { return len(o.Set) == 0 && len(o.Add) == 0 && len(o.Remove) == 0 }

func headerValues(m map[string]string) []HeaderValue {
	var out []HeaderValue
	for _, k := range sortedKeys(m) {
		out = append(out, HeaderValue{Name: k, Value: m[k]})
	}
	return out
}

// gatewayHeaders converts a Gateway API header modifier as Istio does: names lower-cased, the first of
// equivalent names kept.
func gatewayHeaders(f *gwv1.HTTPHeaderFilter) HeaderOps {
	list := func(hs []gwv1.HTTPHeader) []HeaderValue {
		m := map[string]string{}
		for _, h := range hs {
			k := strings.ToLower(string(h.Name))
			if _, dup := m[k]; !dup {
				m[k] = h.Value
			}
		}
		return headerValues(m)
	}
	return HeaderOps{Set: list(f.Set), Add: list(f.Add), Remove: append([]string(nil), f.Remove...)}
}

// gatewayFilters applies the header modifiers of Gateway API filters to h (created when needed) and
// reports the other filter types to unsupported.
func gatewayHeaderFilters(h *Headers, filters []gwv1.HTTPRouteFilter, unsupported func(gwv1.HTTPRouteFilterType)) *Headers {
	for _, f := range filters {
		switch {
		case f.Type == gwv1.HTTPRouteFilterRequestHeaderModifier && f.RequestHeaderModifier != nil:
			if h == nil {
				h = &Headers{}
			}
			h.Request = gatewayHeaders(f.RequestHeaderModifier)
		case f.Type == gwv1.HTTPRouteFilterResponseHeaderModifier && f.ResponseHeaderModifier != nil:
			if h == nil {
				h = &Headers{}
			}
			h.Response = gatewayHeaders(f.ResponseHeaderModifier)
		default:
			unsupported(f.Type)
		}
	}
	return h
}

func percent(p *networkingv1alpha3.Percent, legacy int32) float64 {
	if p != nil {
		return p.Value
	}
	return float64(legacy)
}

func istioMatch(m *networkingv1alpha3.StringMatch) StringMatch {
	switch {
	case m.GetPrefix() != "":
		return StringMatch{Type: MatchPrefix, Value: m.GetPrefix()}
	case m.GetRegex() != "":
		return StringMatch{Type: MatchRegex, Value: m.GetRegex()}
	case m.GetExact() != "":
		return StringMatch{Type: MatchExact, Value: m.GetExact()}
	}
	return StringMatch{Type: MatchPresent}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// isServiceRef reports whether a Gateway API reference (group, kind) names a core Service.
func isServiceRef(group *gwv1.Group, kind *gwv1.Kind) bool {
	g := ""
	if group != nil {
		g = string(*group)
	}
	k := "Service"
	if kind != nil {
		k = string(*kind)
	}
	return (g == "" || g == "core") && k == "Service"
}

func (b *builder) buildHTTPRoutes() {
	sorted := map[string]bool{} // hosts HTTPRoutes route
	for _, gr := range gatewayRoutes(b.objs) {
		key, hr := gr.key, gr.route
		for _, parent := range hr.Spec.ParentRefs {
			kind := gwv1.Kind("Gateway")
			if parent.Kind != nil {
				kind = *parent.Kind
			}
			if !isServiceRef(parent.Group, &kind) {
				g := b.ingressGateway(parent, hr.Namespace)
				switch {
				case g != nil && kind == "Gateway":
					b.attachToGateway(g, gr, parent)
				case !b.isWaypointParent(parent, hr.Namespace):
					ns := hr.Namespace
					if parent.Namespace != nil {
						ns = string(*parent.Namespace)
					}
					b.problem(key, "parentRef %s %s/%s is neither a Service nor a Gateway of class %s; meshlab does not route for it", kind, ns, parent.Name, IngressGatewayClass)
				}
				continue // a Gateway parent: ingress config (above) or a waypoint's, not mesh routing
			}
			ns := hr.Namespace
			if parent.Namespace != nil {
				ns = string(*parent.Namespace)
			}
			host := FQDN(string(parent.Name), ns)
			svc := b.s.byHost[host]
			if svc == nil {
				b.problem(key, "parentRef Service %s/%s does not exist", ns, parent.Name)
				continue
			}
			var port uint32
			if parent.Port != nil {
				port = uint32(*parent.Port)
				if _, ok := svc.Port(port); !ok {
					b.problem(key, "parentRef Service %s/%s has no port %d", ns, parent.Name, port)
					continue
				}
			}
			if !b.claimHost(key, host) {
				continue
			}
			for i := range hr.Spec.Rules {
				// One route per match, as istiod generates them, so that matches sort by Gateway API
				// precedence across rules and HTTPRoutes (sortByPrecedence).
				for _, r := range splitMatches(b.ruleOf(gr, i)) {
					if port != 0 {
						b.s.ruleRefs[r] = port
					}
					b.s.routes[host] = append(b.s.routes[host], r)
				}
				sorted[host] = true
			}
		}
	}
	for host := range sorted {
		sortByPrecedence(b.s.routes[host])
	}
	for _, g := range b.s.gateways {
		for _, p := range g.Ports {
			for _, vh := range p.VirtualHosts {
				sortByPrecedence(vh.Rules)
			}
		}
		b.checkIngressWaypoint(g)
	}
}

// isWaypointParent reports whether a parentRef names a waypoint Gateway (the status writer answers for
// those; meshlab routes mesh traffic by Service parents).
func (b *builder) isWaypointParent(ref gwv1.ParentReference, ns string) bool {
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	return (ref.Kind == nil || *ref.Kind == "Gateway") && b.s.waypointBy[ns+"/"+string(ref.Name)] != nil
}

// splitMatches returns one rule per match of r (r itself when it has at most one).
func splitMatches(r *RouteRule) []*RouteRule {
	if len(r.Matches) <= 1 {
		return []*RouteRule{r}
	}
	out := make([]*RouteRule, len(r.Matches))
	for i, m := range r.Matches {
		c := *r
		c.Matches = []RouteMatch{m}
		out[i] = &c
	}
	return out
}

// sortByPrecedence orders one-match HTTPRoute rules by Gateway API's precedence, as istiod's
// sortHTTPRoutes does: an exact path before a regular expression before a prefix, a longer path before a
// shorter one, then a method match, then more header matches, then more query parameter matches. The sort
// is stable: ties keep the order they were built in (oldest HTTPRoute first, then namespace/name, then
// rule and match order), which is the spec's tie-break.
func sortByPrecedence(rules []*RouteRule) {
	sort.SliceStable(rules, func(i, j int) bool {
		if len(rules[i].Matches) == 0 {
			return false
		}
		if len(rules[j].Matches) == 0 {
			return true
		}
		a, b := rules[i].Matches[0], rules[j].Matches[0]
		if ra, rb := pathRank(a.Path), pathRank(b.Path); ra != rb {
			return ra > rb
		}
		if la, lb := pathLen(a.Path), pathLen(b.Path); la != lb {
			return la > lb
		}
		if (a.Method != "") != (b.Method != "") {
			return a.Method != ""
		}
		if len(a.Headers) != len(b.Headers) {
			return len(a.Headers) > len(b.Headers)
		}
		return len(a.QueryParams) > len(b.QueryParams)
	})
}

// pathRank is istiod's getURIRank: exact 3, regex 2, prefix 1, none -1.
func pathRank(p *StringMatch) int {
	if p == nil {
		return -1
	}
	switch p.Type {
	case MatchExact:
		return 3
	case MatchRegex:
		return 2
	case MatchPrefix, MatchPathPrefix:
		return 1
	}
	return -1
}

func pathLen(p *StringMatch) int {
	if p == nil {
		return 0
	}
	return len(p.Value)
}

func (b *builder) httpRouteRule(key ingest.Key, ns string, i int, rule gwv1.HTTPRouteRule) *RouteRule {
	r := &RouteRule{Name: fmt.Sprintf("%s.%s.%d", key.Name, key.Namespace, i), Source: key, Index: i}
	if rule.Name != nil {
		r.Name = string(*rule.Name)
	}
	var redirect *gwv1.HTTPRequestRedirectFilter
	var rewrite *gwv1.HTTPURLRewriteFilter
	var other []gwv1.HTTPRouteFilter
	var mirrors []*gwv1.HTTPRequestMirrorFilter
	for _, f := range rule.Filters {
		switch {
		case f.Type == gwv1.HTTPRouteFilterRequestMirror && f.RequestMirror != nil:
			mirrors = append(mirrors, f.RequestMirror)
		case f.Type == gwv1.HTTPRouteFilterRequestRedirect && f.RequestRedirect != nil:
			redirect = f.RequestRedirect
		case f.Type == gwv1.HTTPRouteFilterURLRewrite && f.URLRewrite != nil:
			rewrite = f.URLRewrite
		default:
			other = append(other, f)
		}
	}
	r.Headers = gatewayHeaderFilters(nil, other, func(t gwv1.HTTPRouteFilterType) {
		b.problem(key, "rules[%d]: filter %s is not supported; ignored", i, t)
	})
	matches := rule.Matches
	if len(matches) == 0 {
		matches = []gwv1.HTTPRouteMatch{{}}
	}
	for _, m := range matches {
		rm := RouteMatch{Path: &StringMatch{Type: MatchPrefix, Value: "/"}}
		if m.Path != nil {
			value := "/"
			if m.Path.Value != nil {
				value = *m.Path.Value
			}
			typ := gwv1.PathMatchPathPrefix
			if m.Path.Type != nil {
				typ = *m.Path.Type
			}
			switch typ {
			case gwv1.PathMatchExact:
				rm.Path = &StringMatch{Type: MatchExact, Value: value}
			case gwv1.PathMatchRegularExpression:
				rm.Path = &StringMatch{Type: MatchRegex, Value: value}
			default:
				if v := strings.TrimSuffix(value, "/"); v != "" {
					rm.Path = &StringMatch{Type: MatchPathPrefix, Value: v}
				}
			}
		}
		if m.Method != nil {
			rm.Method = string(*m.Method)
		}
		for _, h := range m.Headers {
			sm := StringMatch{Type: MatchExact, Value: h.Value}
			if h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression {
				sm.Type = MatchRegex
			}
			rm.Headers = append(rm.Headers, HeaderMatch{Name: strings.ToLower(string(h.Name)), Match: sm})
		}
		for _, q := range m.QueryParams {
			sm := StringMatch{Type: MatchExact, Value: q.Value}
			if q.Type != nil && *q.Type == gwv1.QueryParamMatchRegularExpression {
				sm.Type = MatchRegex
			}
			rm.QueryParams = append(rm.QueryParams, QueryParamMatch{Name: string(q.Name), Match: sm})
		}
		r.Matches = append(r.Matches, rm)
	}
	if redirect != nil {
		r.Redirect = gatewayRedirect(redirect)
		return r
	}
	if rewrite != nil {
		r.Rewrite = gatewayRewrite(rewrite)
	}
	for j, ref := range rule.BackendRefs {
		if !isServiceRef(ref.Group, ref.Kind) {
			b.problem(key, "rules[%d].backendRefs[%d]: only Service backends are supported", i, j)
			continue
		}
		bns := ns
		if ref.Namespace != nil {
			bns = string(*ref.Namespace)
		}
		svc := b.s.byHost[FQDN(string(ref.Name), bns)]
		if svc == nil {
			b.problem(key, "rules[%d].backendRefs[%d]: Service %s/%s does not exist", i, j, bns, ref.Name)
			continue
		}
		weight := uint32(1)
		if ref.Weight != nil {
			if *ref.Weight < 0 {
				// Validation rejects it; never wrap it into a huge uint32.
				b.problem(key, "rules[%d].backendRefs[%d]: weight %d is negative; the backend gets no traffic", i, j, *ref.Weight)
				continue
			}
			weight = uint32(*ref.Weight)
		}
		if weight == 0 {
			continue
		}
		dest := Destination{Service: svc, Weight: weight}
		dest.Headers = gatewayHeaderFilters(nil, ref.Filters, func(t gwv1.HTTPRouteFilterType) {
			b.problem(key, "rules[%d].backendRefs[%d]: filter %s is not supported; ignored", i, j, t)
		})
		if ref.Port != nil {
			dest.Port = uint32(*ref.Port)
			if _, ok := svc.Port(dest.Port); !ok {
				b.problem(key, "rules[%d].backendRefs[%d]: Service %s/%s has no port %d", i, j, bns, ref.Name, dest.Port)
				continue
			}
		} else if len(svc.Ports) == 1 {
			dest.Port = svc.Ports[0].Port
		}
		r.Destinations = append(r.Destinations, dest)
	}
	if len(r.Destinations) == 0 {
		// Gateway API: a rule whose backends are all invalid answers 500.
		r.DirectStatus = 500
		if len(rule.BackendRefs) > 0 {
			b.problem(key, "rules[%d]: no valid backendRef; requests get 500", i)
		}
	}
	for j, m := range mirrors {
		if mm, ok := b.gatewayMirror(key, ns, i, j, m); ok {
			r.Mirrors = append(r.Mirrors, mm)
		}
	}
	if rt := rule.Retry; rt != nil {
		// As Istio converts it: retry on connection errors, plus the codes; 2 attempts unless set.
		on := []string{"connect-failure", "refused-stream", "unavailable", "cancelled"}
		for _, c := range rt.Codes {
			on = append(on, strconv.Itoa(int(c)))
		}
		r.Retry = &Retry{Attempts: 2, RetryOn: strings.Join(on, ",")}
		if rt.Attempts != nil && *rt.Attempts >= 0 {
			r.Retry.Attempts = uint32(*rt.Attempts)
		}
	}
	if rule.Timeouts != nil && rule.Timeouts.Request != nil {
		d, err := time.ParseDuration(string(*rule.Timeouts.Request))
		if err != nil {
			b.problem(key, "rules[%d]: timeouts.request %q: %v", i, *rule.Timeouts.Request, err)
		} else if d != 0 {
			r.Timeout = &d
		}
	}
	if rule.Timeouts != nil && rule.Timeouts.BackendRequest != nil {
		// As Istio converts it: the per-try timeout of the rule's retries, or without a retry stanza the
		// route timeout (Istio's default retries then keep no per-try bound).
		d, err := time.ParseDuration(string(*rule.Timeouts.BackendRequest))
		switch {
		case err != nil:
			b.problem(key, "rules[%d]: timeouts.backendRequest %q: %v", i, *rule.Timeouts.BackendRequest, err)
		case d == 0:
		case r.Retry != nil:
			r.Retry.PerTryTimeout = d
		default:
			r.Timeout = &d
		}
	}
	return r
}

// gatewayMirror converts a RequestMirror filter as Istio does: percent, or numerator/denominator
// (denominator 100 by default), as a Percent (millionths); neither set means 100%.
func (b *builder) gatewayMirror(key ingest.Key, ns string, i, j int, f *gwv1.HTTPRequestMirrorFilter) (Mirror, bool) {
	m := Mirror{Numerator: 100}
	switch {
	case f.Fraction != nil:
		den := 100.0
		if f.Fraction.Denominator != nil {
			den = float64(*f.Fraction.Denominator)
		}
		if den <= 0 {
			b.problem(key, "rules[%d].filters RequestMirror %d: fraction denominator %v; not mirrored", i, j, den)
			return m, false
		}
		m.Numerator, m.PerMillion = uint32(100*float64(f.Fraction.Numerator)/den*10000), true
	case f.Percent != nil:
		m.Numerator, m.PerMillion = uint32(max(*f.Percent, 0))*10000, true
	}
	ref := f.BackendRef
	if !isServiceRef(ref.Group, ref.Kind) {
		b.problem(key, "rules[%d].filters RequestMirror %d: only Service backends are supported; not mirrored", i, j)
		return m, false
	}
	bns := ns
	if ref.Namespace != nil {
		bns = string(*ref.Namespace)
	}
	svc := b.s.byHost[FQDN(string(ref.Name), bns)]
	if svc == nil {
		b.problem(key, "rules[%d].filters RequestMirror %d: Service %s/%s does not exist; not mirrored", i, j, bns, ref.Name)
		return m, false
	}
	m.Destination = Destination{Service: svc, Weight: 1}
	if ref.Port != nil {
		m.Destination.Port = uint32(*ref.Port)
		if _, ok := svc.Port(m.Destination.Port); !ok {
			b.problem(key, "rules[%d].filters RequestMirror %d: Service %s/%s has no port %d; not mirrored", i, j, bns, ref.Name, m.Destination.Port)
			return m, false
		}
	} else if len(svc.Ports) == 1 {
		m.Destination.Port = svc.Ports[0].Port
	}
	return m, true
}

// gatewayRedirect converts a RequestRedirect filter as Istio does: without a port, the request's port is
// kept unless the scheme changes (then the scheme's default); ReplacePrefixMatch replaces the matched
// prefix.
func gatewayRedirect(f *gwv1.HTTPRequestRedirectFilter) *Redirect {
	out := &Redirect{}
	if f.StatusCode != nil {
		out.Code = uint32(*f.StatusCode)
	}
	if f.Hostname != nil {
		out.Authority = string(*f.Hostname)
	}
	if f.Scheme != nil {
		out.Scheme = *f.Scheme
	}
	switch {
	case f.Port != nil:
		out.PortMode, out.Port = RedirectPortFixed, uint32(*f.Port)
	case f.Scheme != nil:
		out.PortMode = RedirectPortDefault
	default:
		out.PortMode = RedirectPortFromRequest
	}
	if p := f.Path; p != nil {
		switch p.Type {
		case gwv1.FullPathHTTPPathModifier:
			if p.ReplaceFullPath != nil {
				out.URI = *p.ReplaceFullPath
			}
		case gwv1.PrefixMatchHTTPPathModifier:
			if p.ReplacePrefixMatch != nil {
				out.URI, out.PrefixReplace = *p.ReplacePrefixMatch, true
			}
		}
	}
	return out
}

// gatewayRewrite converts a URLRewrite filter as Istio does: ReplacePrefixMatch loses a trailing slash
// ("/" alone removes the prefix), ReplaceFullPath becomes a regex rewrite of the whole path.
func gatewayRewrite(f *gwv1.HTTPURLRewriteFilter) *Rewrite {
	out := &Rewrite{}
	if p := f.Path; p != nil {
		switch p.Type {
		case gwv1.PrefixMatchHTTPPathModifier:
			if p.ReplacePrefixMatch != nil {
				out.URI = strings.TrimSuffix(*p.ReplacePrefixMatch, "/")
				if out.URI == "" {
					out.URI = "/"
				}
			}
		case gwv1.FullPathHTTPPathModifier:
			if p.ReplaceFullPath != nil {
				out.RegexMatch, out.RegexRewrite = "/.*", *p.ReplaceFullPath
			}
		}
	}
	if f.Hostname != nil {
		out.Authority = string(*f.Hostname)
	}
	if out.URI == "" && out.RegexMatch == "" && out.Authority == "" {
		return nil
	}
	return out
}
