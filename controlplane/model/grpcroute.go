package model

import (
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/controlplane/ingest"
)

// gatewayRoute is a Gateway API route as the builder routes it: an HTTPRoute, or a GRPCRoute read as the
// HTTPRoute it amounts to (gRPC is HTTP/2 POST to /SERVICE/METHOD), as istiod converts both kinds into one
// route list. Each keeps its own key, so routes, status and problems name the object the user wrote.
type gatewayRoute struct {
	key   ingest.Key
	route *gwv1.HTTPRoute
	// paths, for a GRPCRoute, is each rule's match paths built from its method matches, in the order of the
	// rule's matches; an HTTPRoute's path types cannot express them (a literal prefix "/SERVICE/", a regex
	// for a method in any service).
	paths [][]*StringMatch
}

// gatewayRoutes lists the HTTPRoutes and GRPCRoutes oldest first (then namespace/name), the precedence Istio
// gives routes that conflict.
func gatewayRoutes(objs ingest.Objects) []gatewayRoute {
	var metas []*gwv1.HTTPRoute
	byRoute := map[*gwv1.HTTPRoute]gatewayRoute{}
	for _, hr := range objs.HTTPRoutes {
		metas = append(metas, hr)
		byRoute[hr] = gatewayRoute{key: ingest.Key{Kind: ingest.KindHTTPRoute, Namespace: hr.Namespace, Name: hr.Name}, route: hr}
	}
	for _, gr := range objs.GRPCRoutes {
		r := grpcAsHTTPRoute(gr)
		metas = append(metas, r.route)
		byRoute[r.route] = r
	}
	var out []gatewayRoute
	for _, hr := range byAge(metas) {
		out = append(out, byRoute[hr])
	}
	return out
}

// grpcAsHTTPRoute reads a GRPCRoute as an HTTPRoute: the same parents, hostnames, filters and backends;
// method matches become paths (gatewayRoute.paths), header matches stay header matches.
func grpcAsHTTPRoute(gr *gwv1.GRPCRoute) gatewayRoute {
	hr := &gwv1.HTTPRoute{ObjectMeta: gr.ObjectMeta}
	hr.Spec.CommonRouteSpec = gr.Spec.CommonRouteSpec
	hr.Spec.Hostnames = gr.Spec.Hostnames
	out := gatewayRoute{key: ingest.Key{Kind: ingest.KindGRPCRoute, Namespace: gr.Namespace, Name: gr.Name}, route: hr}
	for _, rule := range gr.Spec.Rules {
		hrule := gwv1.HTTPRouteRule{Name: rule.Name, Filters: grpcFilters(rule.Filters)}
		var paths []*StringMatch
		for _, m := range rule.Matches {
			hm := gwv1.HTTPRouteMatch{}
			for _, h := range m.Headers {
				typ := gwv1.HeaderMatchExact
				if h.Type != nil && *h.Type == gwv1.GRPCHeaderMatchRegularExpression {
					typ = gwv1.HeaderMatchRegularExpression
				}
				hm.Headers = append(hm.Headers, gwv1.HTTPHeaderMatch{Type: &typ, Name: gwv1.HTTPHeaderName(h.Name), Value: h.Value})
			}
			hrule.Matches = append(hrule.Matches, hm)
			paths = append(paths, grpcMethodPath(m.Method))
		}
		for _, ref := range rule.BackendRefs {
			hrule.BackendRefs = append(hrule.BackendRefs, gwv1.HTTPBackendRef{BackendRef: ref.BackendRef, Filters: grpcFilters(ref.Filters)})
		}
		hr.Spec.Rules = append(hr.Spec.Rules, hrule)
		out.paths = append(out.paths, paths)
	}
	return out
}

// grpcFilters maps GRPCRoute filters onto their HTTPRoute twins (same types, same fields); ExtensionRef is
// carried over so that it is reported as unsupported like an HTTPRoute's.
func grpcFilters(in []gwv1.GRPCRouteFilter) []gwv1.HTTPRouteFilter {
	var out []gwv1.HTTPRouteFilter
	for _, f := range in {
		out = append(out, gwv1.HTTPRouteFilter{
			Type:                   gwv1.HTTPRouteFilterType(f.Type),
			RequestHeaderModifier:  f.RequestHeaderModifier,
			ResponseHeaderModifier: f.ResponseHeaderModifier,
			RequestMirror:          f.RequestMirror,
			ExtensionRef:           f.ExtensionRef,
		})
	}
	return out
}

// grpcMethodPath is the path match of a gRPC method match, as Istio builds it: an exact service and method
// is the exact path /SERVICE/METHOD, a service alone the prefix /SERVICE/, a method alone a regex over any
// service; a RegularExpression match puts the expressions in the same places. nil (any path) without one.
func grpcMethodPath(m *gwv1.GRPCMethodMatch) *StringMatch {
	if m == nil || (m.Service == nil && m.Method == nil) {
		return nil
	}
	service, method := "", ""
	if m.Service != nil {
		service = *m.Service
	}
	if m.Method != nil {
		method = *m.Method
	}
	if m.Type != nil && *m.Type == gwv1.GRPCMethodMatchRegularExpression {
		if service == "" {
			service = "[^/]+"
		}
		if method == "" {
			method = "[^/]+"
		}
		return &StringMatch{Type: MatchRegex, Value: "/" + service + "/" + method}
	}
	switch {
	case method == "":
		return &StringMatch{Type: MatchPrefix, Value: "/" + service + "/"}
	case service == "":
		return &StringMatch{Type: MatchRegex, Value: "/[^/]+/" + method}
	}
	return &StringMatch{Type: MatchExact, Value: "/" + service + "/" + method}
}

// ruleOf builds rule i of a gateway route, with a GRPCRoute's method paths in place of the converted
// HTTPRoute's.
func (b *builder) ruleOf(gr gatewayRoute, i int) *RouteRule {
	r := b.httpRouteRule(gr.key, gr.route.Namespace, i, gr.route.Spec.Rules[i])
	if gr.paths != nil {
		for k := range r.Matches {
			if k < len(gr.paths[i]) {
				r.Matches[k].Path = gr.paths[i][k]
				if r.Matches[k].Path == nil {
					r.Matches[k].Path = &StringMatch{Type: MatchPrefix, Value: "/"}
				}
			}
		}
	}
	return r
}
