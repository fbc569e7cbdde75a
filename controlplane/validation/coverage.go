package validation

// Coverage: what of each kind meshlab implements, and a report of what it does not (issue #12). Anything
// meshlab does not implement is either rejected (the webhook denies it, `meshlab render` fails with exit 2)
// or accepted with a warning (the webhook returns it to kubectl, `meshlab render` prints it): never silently
// ignored. docs/api-coverage.md is this table in prose, with the test that shows each row.
//
// The rule for choosing: a field is Rejected when ignoring it would make traffic behave differently in a way
// that misleads — an authorization rule not enforced, a match condition dropped (the route would match more),
// a response the user configured but does not get (redirect, rewrite, fault, CORS, header changes) — and
// Warned when ignoring it degrades gracefully (tuning such as load balancing and outlier detection, retry
// back-off, exportTo visibility).
//
// Coverage is a separate check from Validate, which stays Istio's admission rules: what Istio rejects is
// invalid; what meshlab does not implement is a finding.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Support is how meshlab handles a field (or a kind).
type Support int

const (
	// Implemented fields are turned into proxy config.
	Implemented Support = iota
	// Warned fields are accepted but have no effect; the object is admitted with a warning.
	Warned
	// Rejected fields are not implemented and ignoring them would mislead: the object is refused.
	Rejected
)

func (s Support) String() string {
	switch s {
	case Implemented:
		return "implemented"
	case Warned:
		return "warned"
	case Rejected:
		return "rejected"
	}
	return "Support(" + strconv.Itoa(int(s)) + ")"
}

// FieldCoverage is one row of the coverage table: a field of a kind, and how meshlab handles it.
type FieldCoverage struct {
	Group, Kind string
	// Path is the field in the object's YAML form, lists marked with [] (e.g. "spec.http[].retries.backoff").
	Path string
	// Name is how messages name the field: "meshlab does not implement <Kind> <Name>".
	Name    string
	Support Support
	// Note, if set, follows the message: what meshlab does instead.
	Note string
	// Applies, if set, decides whether a value set at Path is a finding (obj is the whole object);
	// nil means any value set.
	Applies func(obj map[string]any, value any) bool
}

// Finding is one field meshlab does not implement, set in an object.
type Finding struct {
	Field   string // the concrete path, e.g. "spec.http[0].retries.backoff"; empty for the whole object
	Message string // "meshlab does not implement VirtualService http.retries.backoff..."
	Support Support
}

func (f Finding) String() string {
	if f.Field == "" {
		return f.Message
	}
	return f.Field + ": " + f.Message
}

// waypointClass is the GatewayClass of waypoints (model.WaypointGatewayClass; model imports ingest, which
// imports this package).
const waypointClass = "istio-waypoint"

// ingressClass is the GatewayClass of ingress gateways (model.IngressGatewayClass).
const ingressClass = "istio"

func vs(path, name string, s Support, note string) FieldCoverage {
	return FieldCoverage{Group: groupNetworking, Kind: "VirtualService", Path: path, Name: name, Support: s, Note: note}
}

func dr(path, name string, s Support, note string) FieldCoverage {
	return FieldCoverage{Group: groupNetworking, Kind: "DestinationRule", Path: path, Name: name, Support: s, Note: note}
}

func ap(path, name string, s Support, note string) FieldCoverage {
	return FieldCoverage{Group: groupSecurity, Kind: "AuthorizationPolicy", Path: path, Name: name, Support: s, Note: note}
}

func pa(path, name string, s Support, note string) FieldCoverage {
	return FieldCoverage{Group: groupSecurity, Kind: "PeerAuthentication", Path: path, Name: name, Support: s, Note: note}
}

func ra(path, name string, s Support, note string) FieldCoverage {
	return FieldCoverage{Group: groupSecurity, Kind: "RequestAuthentication", Path: path, Name: name, Support: s, Note: note}
}

func hr(path, name string, s Support, note string) FieldCoverage {
	return FieldCoverage{Group: groupGatewayAPI, Kind: "HTTPRoute", Path: path, Name: name, Support: s, Note: note}
}

func grpc(path, name string, s Support, note string) FieldCoverage {
	return FieldCoverage{Group: groupGatewayAPI, Kind: "GRPCRoute", Path: path, Name: name, Support: s, Note: note}
}

func tcp(path, name string, s Support, note string) FieldCoverage {
	return FieldCoverage{Group: groupGatewayAPI, Kind: "TCPRoute", Path: path, Name: name, Support: s, Note: note}
}

func gw(path, name string, s Support, note string) FieldCoverage {
	return FieldCoverage{Group: groupGatewayAPI, Kind: "Gateway", Path: path, Name: name, Support: s, Note: note}
}

func when(c FieldCoverage, f func(obj map[string]any, value any) bool) FieldCoverage {
	c.Applies = f
	return c
}

const (
	noteIgnored   = "it is ignored"
	noteResponses = "requests would be answered as if it were not there"
	noteBroader   = "the route would match requests this condition excludes"
	noteAuthz     = "the policy would not be enforced as written"
	noteAuthn     = "the JWT rules would not be checked where written"
	noteNoFetch   = "meshlab fetches no keys (nothing outside the lab is reachable), so every token would be rejected; give the key set inline in jwks"
	noteZtunnelL7 = "ztunnel enforces selector policies and sees no HTTP: an ALLOW rule with it never matches, a DENY rule is enforced without it (as in Istio ambient); attach the policy to a waypoint with targetRefs"
)

// Coverage is the table: every field of the kinds meshlab acts on that the model or the generators read
// (Implemented), and every one they do not (Warned or Rejected). Fields of those kinds not listed are parts
// of a listed field (a destination's host, a parentRef's name and kind) or identify it (a match's name).
var Coverage = slices.Concat([]FieldCoverage{
	// HTTP redirect, URI rewrite, header add/set/remove.
	vs("spec.http[].redirect", "http.redirect", Implemented, ""),
	vs("spec.http[].rewrite", "http.rewrite", Implemented, ""),
	vs("spec.http[].headers", "http.headers", Implemented, ""),
	vs("spec.http[].route[].headers", "http.route.headers", Implemented, ""),
	hr("spec.rules[].filters[].requestRedirect", "rules.filters RequestRedirect", Implemented, ""),
	hr("spec.rules[].filters[].urlRewrite", "rules.filters URLRewrite", Implemented, ""),
	hr("spec.rules[].filters[].requestHeaderModifier", "rules.filters RequestHeaderModifier", Implemented, ""),
	hr("spec.rules[].filters[].responseHeaderModifier", "rules.filters ResponseHeaderModifier", Implemented, ""),
	// Request mirroring and per-try timeouts.
	vs("spec.http[].mirror", "http.mirror", Implemented, ""),
	vs("spec.http[].mirrors", "http.mirrors", Implemented, ""),
	vs("spec.http[].mirrorPercentage", "http.mirrorPercentage", Implemented, ""),
	vs("spec.http[].mirrorPercent", "http.mirrorPercent", Implemented, ""),
	vs("spec.http[].retries.perTryTimeout", "http.retries.perTryTimeout", Implemented, ""),
	hr("spec.rules[].filters[].requestMirror", "rules.filters RequestMirror", Implemented, ""),
	hr("spec.rules[].timeouts.backendRequest", "rules.timeouts.backendRequest", Implemented, ""),
	hr("spec.rules[].retry.attempts", "rules.retry.attempts", Implemented, ""),
	hr("spec.rules[].retry.codes", "rules.retry.codes", Implemented, ""),
	hr("spec.rules[].retry.backoff", "rules.retry.backoff", Warned, "Envoy's default backoff is used"),
	// --- end of the rows to flip ---

	// VirtualService: HTTP routing for the mesh (sidecars and waypoints).
	vs("spec.hosts", "hosts", Implemented, ""),
	when(vs("spec.hosts[]", "hosts with a wildcard", Warned, "a host is routed only when it names a Service; this one matches none"),
		func(_ map[string]any, v any) bool { s, _ := v.(string); return strings.Contains(s, "*") }),
	when(vs("spec.gateways[]", "gateways other than mesh", Warned, "meshlab's ingress gateway takes Gateway API HTTPRoutes, not VirtualServices; the VirtualService applies only to mesh traffic, if gateways lists mesh"),
		func(_ map[string]any, v any) bool { return v != "mesh" }),
	vs("spec.exportTo", "exportTo", Warned, "the VirtualService is visible in every namespace"),
	vs("spec.http[].name", "http.name", Implemented, ""),
	vs("spec.http[].match[].uri", "http.match.uri", Implemented, ""),
	vs("spec.http[].match[].method.exact", "http.match.method", Implemented, ""),
	vs("spec.http[].match[].method.prefix", "http.match.method prefix", Rejected, noteBroader),
	vs("spec.http[].match[].method.regex", "http.match.method regex", Rejected, noteBroader),
	vs("spec.http[].match[].headers", "http.match.headers", Implemented, ""),
	vs("spec.http[].match[].withoutHeaders", "http.match.withoutHeaders", Implemented, ""),
	vs("spec.http[].match[].port", "http.match.port", Implemented, ""),
	vs("spec.http[].match[].scheme", "http.match.scheme", Rejected, noteBroader),
	vs("spec.http[].match[].authority", "http.match.authority", Rejected, noteBroader),
	vs("spec.http[].match[].queryParams", "http.match.queryParams", Implemented, ""),
	vs("spec.http[].match[].ignoreUriCase", "http.match.ignoreUriCase", Rejected, "URIs would be matched case-sensitively"),
	vs("spec.http[].match[].sourceLabels", "http.match.sourceLabels", Rejected, noteBroader),
	vs("spec.http[].match[].sourceNamespace", "http.match.sourceNamespace", Rejected, noteBroader),
	vs("spec.http[].match[].gateways", "http.match.gateways", Rejected, noteBroader),
	vs("spec.http[].match[].statPrefix", "http.match.statPrefix", Warned, noteIgnored),
	vs("spec.http[].route[].destination", "http.route.destination", Implemented, ""),
	vs("spec.http[].route[].weight", "http.route.weight", Implemented, ""),
	vs("spec.http[].directResponse.status", "http.directResponse.status", Implemented, ""),
	vs("spec.http[].directResponse.body", "http.directResponse.body", Rejected, "the response would have no body"),
	vs("spec.http[].delegate", "http.delegate", Rejected, "the delegate's routes would not be used"),
	vs("spec.http[].timeout", "http.timeout", Implemented, ""),
	vs("spec.http[].retries.attempts", "http.retries.attempts", Implemented, ""),
	vs("spec.http[].retries.retryOn", "http.retries.retryOn", Implemented, ""),
	vs("spec.http[].retries.retryRemoteLocalities", "http.retries.retryRemoteLocalities", Warned, noteIgnored),
	vs("spec.http[].retries.retryIgnorePreviousHosts", "http.retries.retryIgnorePreviousHosts", Warned, "previous hosts are always skipped on retry"),
	vs("spec.http[].retries.backoff", "http.retries.backoff", Warned, "Envoy's default backoff is used"),
	vs("spec.http[].fault.delay.fixedDelay", "http.fault.delay.fixedDelay", Implemented, ""),
	vs("spec.http[].fault.delay.percentage", "http.fault.delay.percentage", Implemented, ""),
	vs("spec.http[].fault.delay.percent", "http.fault.delay.percent", Implemented, ""),
	vs("spec.http[].fault.delay.exponentialDelay", "http.fault.delay.exponentialDelay", Rejected, "no delay would be injected"),
	vs("spec.http[].fault.abort.httpStatus", "http.fault.abort.httpStatus", Implemented, ""),
	vs("spec.http[].fault.abort.percentage", "http.fault.abort.percentage", Implemented, ""),
	vs("spec.http[].fault.abort.grpcStatus", "http.fault.abort.grpcStatus", Rejected, "no abort would be injected"),
	vs("spec.http[].fault.abort.http2Error", "http.fault.abort.http2Error", Rejected, "no abort would be injected"),
	vs("spec.http[].corsPolicy", "http.corsPolicy", Implemented, ""),
	vs("spec.tcp", "tcp", Rejected, "TCP traffic would not be routed by it"),
	vs("spec.tls", "tls", Rejected, "TLS traffic would not be routed by it"),

	// DestinationRule: subsets for routing, and the traffic policy's load balancer, connection pool and
	// outlier detection (at the top, per subset, per port), generated and executed as in Istio.
	dr("spec.host", "host", Implemented, ""),
	when(dr("spec.host", "host with a wildcard", Warned, "the DestinationRule is ignored; name the Service"),
		func(_ map[string]any, v any) bool { s, _ := v.(string); return strings.Contains(s, "*") }),
	dr("spec.subsets[].name", "subsets.name", Implemented, ""),
	dr("spec.subsets[].labels", "subsets.labels", Implemented, ""),
	dr("spec.subsets[].trafficPolicy", "subsets.trafficPolicy", Implemented, ""),
	dr("spec.trafficPolicy.portLevelSettings", "trafficPolicy.portLevelSettings", Implemented, ""),
	dr("spec.subsets[].trafficPolicy.portLevelSettings", "subsets.trafficPolicy.portLevelSettings", Implemented, ""),
}, trafficPolicyRows(), []FieldCoverage{
	dr("spec.exportTo", "exportTo", Warned, "the DestinationRule is visible in every namespace"),
	dr("spec.workloadSelector", "workloadSelector", Warned, "the subsets apply to every client"),

	// PeerAuthentication: enforced by ztunnel for ambient pods, as Istio converts it (DENY plain text); a
	// meshlab sidecar does not enforce it, which the model reports as a problem (a warning event).
	pa("spec.selector", "selector", Implemented, ""),
	pa("spec.mtls.mode", "mtls.mode", Implemented, ""),
	pa("spec.portLevelMtls", "portLevelMtls", Implemented, ""),

	// AuthorizationPolicy: selector policies are enforced by ztunnel, targetRefs policies by the waypoint.
	ap("spec.selector", "selector", Implemented, ""),
	ap("spec.targetRef", "targetRef", Implemented, ""),
	ap("spec.targetRefs", "targetRefs", Implemented, ""),
	when(ap("spec.targetRefs[].kind", "targetRefs kinds other than Gateway and Service", Rejected, noteAuthz),
		func(_ map[string]any, v any) bool { return v != "Gateway" && v != "Service" }),
	when(ap("spec.targetRef.kind", "targetRef kinds other than Gateway and Service", Rejected, noteAuthz),
		func(_ map[string]any, v any) bool { return v != "Gateway" && v != "Service" }),
	when(ap("spec.action", "action CUSTOM and AUDIT", Rejected, "the policy would be ignored"),
		func(_ map[string]any, v any) bool { return v == "CUSTOM" || v == "AUDIT" }),
	ap("spec.provider", "provider", Rejected, "no external authorizer is called"),
	ap("spec.rules[].from[].source.principals", "source.principals", Implemented, ""),
	ap("spec.rules[].from[].source.notPrincipals", "source.notPrincipals", Implemented, ""),
	ap("spec.rules[].from[].source.namespaces", "source.namespaces", Implemented, ""),
	ap("spec.rules[].from[].source.notNamespaces", "source.notNamespaces", Implemented, ""),
	ap("spec.rules[].from[].source.serviceAccounts", "source.serviceAccounts", Implemented, ""),
	ap("spec.rules[].from[].source.ipBlocks", "source.ipBlocks", Implemented, ""),
	ap("spec.rules[].from[].source.notIpBlocks", "source.notIpBlocks", Implemented, ""),
	when(ap("spec.rules[].from[].source.notServiceAccounts", "source.notServiceAccounts in a selector (ztunnel) policy", Rejected, noteAuthz), ztunnelPolicy),
	when(ap("spec.rules[].from[].source.remoteIpBlocks", "source.remoteIpBlocks in a selector (ztunnel) policy", Rejected, noteAuthz), ztunnelPolicy),
	when(ap("spec.rules[].from[].source.notRemoteIpBlocks", "source.notRemoteIpBlocks in a selector (ztunnel) policy", Rejected, noteAuthz), ztunnelPolicy),
	ap("spec.rules[].from[].source.requestPrincipals", "source.requestPrincipals", Implemented, ""),
	ap("spec.rules[].from[].source.notRequestPrincipals", "source.notRequestPrincipals", Implemented, ""),
	when(ap("spec.rules[].from[].source.requestPrincipals", "source.requestPrincipals in a selector (ztunnel) policy", Warned, noteZtunnelL7), ztunnelPolicy),
	when(ap("spec.rules[].from[].source.notRequestPrincipals", "source.notRequestPrincipals in a selector (ztunnel) policy", Warned, noteZtunnelL7), ztunnelPolicy),
	ap("spec.rules[].to[].operation.ports", "operation.ports", Implemented, ""),
	ap("spec.rules[].to[].operation.notPorts", "operation.notPorts", Implemented, ""),
	ap("spec.rules[].to[].operation.methods", "operation.methods", Implemented, ""),
	ap("spec.rules[].to[].operation.notMethods", "operation.notMethods", Implemented, ""),
	ap("spec.rules[].to[].operation.paths", "operation.paths", Implemented, ""),
	ap("spec.rules[].to[].operation.notPaths", "operation.notPaths", Implemented, ""),
	ap("spec.rules[].to[].operation.hosts", "operation.hosts", Implemented, ""),
	ap("spec.rules[].to[].operation.notHosts", "operation.notHosts", Implemented, ""),
	// A selector policy is enforced by ztunnel, which sees no HTTP: as in Istio ambient, an ALLOW rule that
	// needs request attributes never matches, a DENY rule is enforced on its L4 parts alone.
	when(ap("spec.rules[].to[].operation.methods", "operation.methods in a selector (ztunnel) policy", Warned, noteZtunnelL7), ztunnelPolicy),
	when(ap("spec.rules[].to[].operation.notMethods", "operation.notMethods in a selector (ztunnel) policy", Warned, noteZtunnelL7), ztunnelPolicy),
	when(ap("spec.rules[].to[].operation.paths", "operation.paths in a selector (ztunnel) policy", Warned, noteZtunnelL7), ztunnelPolicy),
	when(ap("spec.rules[].to[].operation.notPaths", "operation.notPaths in a selector (ztunnel) policy", Warned, noteZtunnelL7), ztunnelPolicy),
	when(ap("spec.rules[].to[].operation.hosts", "operation.hosts in a selector (ztunnel) policy", Warned, noteZtunnelL7), ztunnelPolicy),
	when(ap("spec.rules[].to[].operation.notHosts", "operation.notHosts in a selector (ztunnel) policy", Warned, noteZtunnelL7), ztunnelPolicy),
	// Conditions on the request's JWT are RBAC metadata principals; the other attributes are not evaluated.
	ap("spec.rules[].when[]", "rules.when on request.auth.principal, audiences, presenter, claims", Implemented, ""),
	when(ap("spec.rules[].when[]", "rules.when on request.auth.* in a selector (ztunnel) policy", Warned, noteZtunnelL7),
		func(obj map[string]any, v any) bool { return ztunnelPolicy(obj, v) && requestAuthCondition(v) }),
	when(ap("spec.rules[].when[]", "rules.when on keys other than request.auth.*", Rejected, noteAuthz+" (an ALLOW rule with such a condition would never match, a DENY rule would deny without it)"),
		func(_ map[string]any, v any) bool { return !requestAuthCondition(v) }),

	// RequestAuthentication: JWT rules checked by the waypoint (targetRefs) or the sidecar (selector).
	ra("spec.selector", "selector", Implemented, ""),
	ra("spec.targetRef", "targetRef", Implemented, ""),
	ra("spec.targetRefs", "targetRefs", Implemented, ""),
	when(ra("spec.targetRefs[].kind", "targetRefs kinds other than Gateway and Service", Rejected, noteAuthn),
		func(_ map[string]any, v any) bool { return v != "Gateway" && v != "Service" }),
	when(ra("spec.targetRef.kind", "targetRef kinds other than Gateway and Service", Rejected, noteAuthn),
		func(_ map[string]any, v any) bool { return v != "Gateway" && v != "Service" }),
	ra("spec.jwtRules[].issuer", "jwtRules.issuer", Implemented, ""),
	ra("spec.jwtRules[].audiences", "jwtRules.audiences", Implemented, ""),
	ra("spec.jwtRules[].jwks", "jwtRules.jwks", Implemented, ""),
	ra("spec.jwtRules[].fromHeaders", "jwtRules.fromHeaders", Implemented, ""),
	ra("spec.jwtRules[].fromParams", "jwtRules.fromParams", Implemented, ""),
	ra("spec.jwtRules[].fromCookies", "jwtRules.fromCookies", Implemented, ""),
	ra("spec.jwtRules[].outputPayloadToHeader", "jwtRules.outputPayloadToHeader", Implemented, ""),
	ra("spec.jwtRules[].forwardOriginalToken", "jwtRules.forwardOriginalToken", Implemented, ""),
	ra("spec.jwtRules[].outputClaimToHeaders", "jwtRules.outputClaimToHeaders", Implemented, ""),
	ra("spec.jwtRules[].spaceDelimitedClaims", "jwtRules.spaceDelimitedClaims", Implemented, ""),
	ra("spec.jwtRules[].jwksUri", "jwtRules.jwksUri", Rejected, noteNoFetch),
	when(ra("spec.jwtRules[]", "jwtRules without jwks", Rejected, noteNoFetch),
		func(_ map[string]any, v any) bool {
			m, _ := v.(map[string]any)
			return !isSet(m["jwks"]) && !isSet(m["jwksUri"])
		}),
	ra("spec.jwtRules[].timeout", "jwtRules.timeout", Warned, "it is ignored: the keys are inline and never fetched"),
}, httpRouteRows(), grpcRouteRows(), tcpRouteRows(), []FieldCoverage{
	// Gateway (Gateway API): waypoints (istio-waypoint) and ingress gateways (istio).
	gw("spec.gatewayClassName", "gatewayClassName "+waypointClass, Implemented, ""),
	gw("spec.gatewayClassName", "gatewayClassName "+ingressClass, Implemented, ""),
	gw("spec.listeners", "listeners (HBONE on 15008)", Implemented, ""),
	gw("spec.listeners", "listeners (HTTP and TCP, on a Gateway of class istio)", Implemented, ""),
	when(gw("spec.gatewayClassName", "gatewayClassName other than "+waypointClass+" and "+ingressClass, Warned, "meshlab runs no other gateways; the Gateway has no effect"),
		func(_ map[string]any, v any) bool { return v != waypointClass && v != ingressClass }),
	when(gw("spec.listeners[].protocol", "listeners.protocol other than HTTP and TCP on a Gateway of class istio", Rejected, "the listener would not serve: meshlab's ingress gateway terminates no TLS and routes only HTTP and TCP"),
		func(obj map[string]any, v any) bool { return isIngress(obj, v) && v != "HTTP" && v != "TCP" }),
	when(gw("spec.listeners[].allowedRoutes.namespaces.selector", "listeners.allowedRoutes.namespaces selector", Warned, "a Selector admits only the Gateway's own namespace"), isIngress),
	when(gw("spec.listeners[].allowedRoutes.kinds", "listeners.allowedRoutes.kinds", Warned, "HTTPRoutes and GRPCRoutes attach whatever it lists"), isIngress),
	when(gw("spec.addresses", "addresses", Warned, "the gateway's address is its Service's"), isMeshlabGateway),
	when(gw("spec.infrastructure", "infrastructure", Warned, noteIgnored), isMeshlabGateway),
	when(gw("spec.tls", "tls", Warned, noteIgnored), isMeshlabGateway),
	when(gw("spec.allowedListeners", "allowedListeners", Warned, noteIgnored), isMeshlabGateway),
	when(gw("spec.defaultScope", "defaultScope", Warned, noteIgnored), isMeshlabGateway),

	// GatewayClass: the waypoint controller reads controllerName.
	{Group: groupGatewayAPI, Kind: "GatewayClass", Path: "spec.controllerName", Name: "controllerName", Support: Implemented},
	{Group: groupGatewayAPI, Kind: "GatewayClass", Path: "spec.parametersRef", Name: "parametersRef", Support: Warned, Note: noteIgnored},
})

// httpRouteRows are HTTPRoute's rows (GAMMA mesh routing, attached to Services, and ingress routes): its own
// and those it shares with GRPCRoute. A parentRef to any other Gateway is a problem the model reports
// (status, render warning). Its filters that VirtualServices share are in the table above.
func httpRouteRows() []FieldCoverage {
	return append([]FieldCoverage{
		hr("spec.parentRefs[]", "parentRefs to a Gateway of class istio", Implemented, ""),
		hr("spec.rules[].matches[].path", "rules.matches.path", Implemented, ""),
		hr("spec.rules[].matches[].method", "rules.matches.method", Implemented, ""),
		hr("spec.rules[].matches[].queryParams", "rules.matches.queryParams", Implemented, ""),
		hr("spec.rules[].filters[].cors", "rules.filters CORS", Rejected, "preflight requests would not be answered and no CORS headers added"),
		hr("spec.rules[].filters[].externalAuth", "rules.filters ExternalAuth", Rejected, "no external authorizer is called"),
		hr("spec.rules[].backendRefs[].filters[].requestRedirect", "rules.backendRefs.filters RequestRedirect", Rejected, noteResponses),
		hr("spec.rules[].backendRefs[].filters[].urlRewrite", "rules.backendRefs.filters URLRewrite", Rejected, noteResponses),
		hr("spec.rules[].backendRefs[].filters[].cors", "rules.backendRefs.filters CORS", Rejected, noteResponses),
		hr("spec.rules[].timeouts.request", "rules.timeouts.request", Implemented, ""),
	}, sharedRouteRows(hr)...)
}

// grpcRouteRows are GRPCRoute's rows: meshlab reads a GRPCRoute as the HTTPRoute it amounts to
// (model/grpcroute.go), so beyond its method match and its rule filters (HTTPRoute's are in the table
// above) they are the rows it shares with HTTPRoute.
func grpcRouteRows() []FieldCoverage {
	return append([]FieldCoverage{
		grpc("spec.parentRefs[]", "parentRefs to a Service or a Gateway of class istio", Implemented, ""),
		grpc("spec.rules[].matches[].method", "rules.matches.method", Implemented, ""),
		grpc("spec.rules[].filters[].requestHeaderModifier", "rules.filters RequestHeaderModifier", Implemented, ""),
		grpc("spec.rules[].filters[].responseHeaderModifier", "rules.filters ResponseHeaderModifier", Implemented, ""),
		grpc("spec.rules[].filters[].requestMirror", "rules.filters RequestMirror", Implemented, ""),
	}, sharedRouteRows(grpc)...)
}

// tcpRouteRows are TCPRoute's rows: routing of a Service's TCP ports in waypoints and sidecars, and of an
// ingress gateway's TCP listeners (model/tcproute.go). A parentRef to any other Gateway is a problem the
// model reports (status, render warning).
func tcpRouteRows() []FieldCoverage {
	return []FieldCoverage{
		tcp("spec.parentRefs[]", "parentRefs to a Service or a Gateway of class istio", Implemented, ""),
		sectionNameOnService(tcp, "the rule would apply to every TCP port of the Service; use port"),
		tcp("spec.parentRefs[].port", "parentRefs.port", Implemented, ""),
		tcp("spec.rules[].backendRefs[].name", "rules.backendRefs (Service)", Implemented, ""),
		tcp("spec.rules[].backendRefs[].weight", "rules.backendRefs.weight", Implemented, ""),
		tcp("spec.rules[].backendRefs[].port", "rules.backendRefs.port", Implemented, ""),
		when(tcp("spec.rules[].backendRefs[]", "backendRefs other than Service", Rejected, "the backend's share of connections would be closed"),
			func(_ map[string]any, v any) bool { return !serviceRef(v) }),
	}
}

// sectionNameOnService is every route kind's row for a Service parentRef naming a sectionName: a mesh
// route binds to a Service's port by number, and ignoring the name would widen it to every port.
func sectionNameOnService(row func(path, name string, s Support, note string) FieldCoverage, note string) FieldCoverage {
	return when(row("spec.parentRefs[]", "parentRefs.sectionName on a Service", Rejected, note),
		func(_ map[string]any, v any) bool {
			m, _ := v.(map[string]any)
			return serviceParent(v) && isSet(m["sectionName"])
		})
}

// sharedRouteRows are the rows HTTPRoute and GRPCRoute share (the same fields, read by the same code),
// built with the kind's row constructor.
func sharedRouteRows(row func(path, name string, s Support, note string) FieldCoverage) []FieldCoverage {
	return []FieldCoverage{
		sectionNameOnService(row, "the rules would apply to every port of the Service; use port"),
		row("spec.parentRefs[].port", "parentRefs.port", Implemented, ""),
		row("spec.hostnames", "hostnames on a Gateway parent", Implemented, ""),
		when(row("spec.hostnames", "hostnames", Warned, "mesh routes apply to the parent Service whatever the hostname"),
			func(obj map[string]any, _ any) bool { return !gatewayParents(obj) }),
		row("spec.rules[].name", "rules.name", Implemented, ""),
		row("spec.rules[].matches[].headers", "rules.matches.headers", Implemented, ""),
		row("spec.rules[].filters[].extensionRef", "rules.filters ExtensionRef", Rejected, noteResponses),
		row("spec.rules[].backendRefs[].name", "rules.backendRefs (Service)", Implemented, ""),
		row("spec.rules[].backendRefs[].weight", "rules.backendRefs.weight", Implemented, ""),
		row("spec.rules[].backendRefs[].port", "rules.backendRefs.port", Implemented, ""),
		when(row("spec.rules[].backendRefs[]", "backendRefs other than Service", Rejected, "the backend would get no traffic"),
			func(_ map[string]any, v any) bool { return !serviceRef(v) }),
		row("spec.rules[].backendRefs[].filters[].requestHeaderModifier", "rules.backendRefs.filters RequestHeaderModifier", Implemented, ""),
		row("spec.rules[].backendRefs[].filters[].responseHeaderModifier", "rules.backendRefs.filters ResponseHeaderModifier", Implemented, ""),
		row("spec.rules[].backendRefs[].filters[].requestMirror", "rules.backendRefs.filters RequestMirror", Warned, "no requests are mirrored"),
		row("spec.rules[].backendRefs[].filters[].extensionRef", "rules.backendRefs.filters ExtensionRef", Rejected, noteResponses),
		row("spec.rules[].sessionPersistence", "rules.sessionPersistence", Warned, noteIgnored),
	}
}

// trafficPolicyRows are the DestinationRule traffic policy's rows, alike wherever a policy may stand: the
// rule's trafficPolicy, a subset's, and their portLevelSettings (which hold no tunnel, proxyProtocol or
// retryBudget).
func trafficPolicyRows() []FieldCoverage {
	const (
		noteSlowStart = "no slow start: a new host gets its full share at once"
		noteProtocol  = "the upstream protocol follows the Service port"
		noteLocal     = "connection failures and resets count as 503s, as Istio's default does"
	)
	leaves := []struct {
		path    string
		support Support
		note    string
	}{
		{"loadBalancer.simple", Implemented, ""},
		{"loadBalancer.consistentHash.httpHeaderName", Implemented, ""},
		{"loadBalancer.consistentHash.httpCookie", Implemented, ""},
		{"loadBalancer.consistentHash.useSourceIp", Implemented, ""},
		{"loadBalancer.consistentHash.httpQueryParameterName", Implemented, ""},
		{"loadBalancer.consistentHash.ringHash", Implemented, ""},
		{"loadBalancer.consistentHash.maglev", Implemented, ""},
		{"loadBalancer.consistentHash.minimumRingSize", Implemented, ""},
		{"loadBalancer.localityLbSetting", Warned, "meshlab has one locality: no locality weighting or failover"},
		{"loadBalancer.warmupDurationSecs", Warned, noteSlowStart},
		{"loadBalancer.warmup", Warned, noteSlowStart},
		{"connectionPool.tcp.maxConnections", Implemented, ""},
		{"connectionPool.tcp.connectTimeout", Implemented, ""},
		{"connectionPool.tcp.idleTimeout", Implemented, ""},
		{"connectionPool.tcp.tcpKeepalive", Warned, noteIgnored},
		{"connectionPool.tcp.maxConnectionDuration", Warned, "upstream connections are not closed for their age"},
		{"connectionPool.http.http1MaxPendingRequests", Implemented, ""},
		{"connectionPool.http.http2MaxRequests", Implemented, ""},
		{"connectionPool.http.maxRetries", Implemented, ""},
		{"connectionPool.http.maxRequestsPerConnection", Implemented, ""},
		{"connectionPool.http.idleTimeout", Implemented, ""},
		{"connectionPool.http.h2UpgradePolicy", Warned, noteProtocol},
		{"connectionPool.http.useClientProtocol", Warned, noteProtocol},
		{"connectionPool.http.maxConcurrentStreams", Warned, noteIgnored},
		{"connectionPool.http.http2KeepAlive", Warned, noteIgnored},
		{"outlierDetection.consecutive5xxErrors", Implemented, ""},
		{"outlierDetection.consecutiveGatewayErrors", Implemented, ""},
		{"outlierDetection.baseEjectionTime", Implemented, ""},
		{"outlierDetection.maxEjectionPercent", Implemented, ""},
		{"outlierDetection.minHealthPercent", Implemented, ""},
		{"outlierDetection.interval", Warned, "it is written into the cluster as in Istio, but meshlab's proxies return an ejected host when its ejection time ends, not at the next interval"},
		{"outlierDetection.consecutiveErrors", Warned, "Istio ignores this deprecated field too; use consecutive5xxErrors"},
		{"outlierDetection.splitExternalLocalOriginErrors", Warned, noteLocal},
		{"outlierDetection.consecutiveLocalOriginFailures", Warned, noteLocal},
		{"tls", Warned, "meshlab chooses TLS itself: mutual TLS between mesh workloads"},
		{"tunnel", Warned, noteIgnored},
		{"proxyProtocol", Warned, noteIgnored},
		{"retryBudget", Warned, noteIgnored},
	}
	var out []FieldCoverage
	for _, at := range []struct {
		path, name string
		portLevel  bool
	}{
		{"spec.trafficPolicy", "trafficPolicy", false},
		{"spec.subsets[].trafficPolicy", "subsets.trafficPolicy", false},
		{"spec.trafficPolicy.portLevelSettings[]", "trafficPolicy.portLevelSettings", true},
		{"spec.subsets[].trafficPolicy.portLevelSettings[]", "subsets.trafficPolicy.portLevelSettings", true},
	} {
		for _, l := range leaves {
			if at.portLevel && (l.path == "tunnel" || l.path == "proxyProtocol" || l.path == "retryBudget") {
				continue
			}
			out = append(out, dr(at.path+"."+l.path, at.name+"."+l.path, l.support, l.note))
		}
	}
	return out
}

// UnimplementedKinds are the kinds whose CRDs meshlab installs (or Istio defines) but on which meshlab does
// not act: they are stored but have no effect, and are reported as such.
var UnimplementedKinds = map[schema.GroupKind]bool{
	{Group: groupNetworking, Kind: "ServiceEntry"}:                        true,
	{Group: groupNetworking, Kind: "Gateway"}:                             true,
	{Group: groupNetworking, Kind: "Sidecar"}:                             true,
	{Group: groupNetworking, Kind: "EnvoyFilter"}:                         true,
	{Group: groupNetworking, Kind: "WorkloadEntry"}:                       true,
	{Group: groupNetworking, Kind: "WorkloadGroup"}:                       true,
	{Group: groupNetworking, Kind: "ProxyConfig"}:                         true,
	{Group: "telemetry.istio.io", Kind: "Telemetry"}:                      true,
	{Group: "extensions.istio.io", Kind: "WasmPlugin"}:                    true,
	{Group: groupGatewayAPI, Kind: "TLSRoute"}:                            true,
	{Group: groupGatewayAPI, Kind: "UDPRoute"}:                            true,
	{Group: groupGatewayAPI, Kind: "ReferenceGrant"}:                      true,
	{Group: groupGatewayAPI, Kind: "BackendTLSPolicy"}:                    true,
	{Group: groupGatewayAPI, Kind: "ListenerSet"}:                         true,
	{Group: groupGatewayAPI, Kind: "XListenerSet"}:                        true,
	{Group: groupGatewayAPI, Kind: "BackendLBPolicy"}:                     true,
	{Group: "gateway.networking.x-k8s.io", Kind: "XBackendTrafficPolicy"}: true,
}

// UnimplementedKindMessage is the finding for a whole object of a kind in UnimplementedKinds.
func UnimplementedKindMessage(kind string) string {
	return "meshlab does not implement " + kind + "; it is stored but has no effect"
}

func ztunnelPolicy(obj map[string]any, _ any) bool {
	spec, _ := obj["spec"].(map[string]any)
	return !isSet(spec["targetRef"]) && !isSet(spec["targetRefs"])
}

// requestAuthCondition reports whether an AuthorizationPolicy condition is on the request's JWT.
func requestAuthCondition(v any) bool {
	m, _ := v.(map[string]any)
	k, _ := m["key"].(string)
	switch {
	case k == "request.auth.principal", k == "request.auth.audiences", k == "request.auth.presenter":
		return true
	}
	return strings.HasPrefix(k, "request.auth.claims[")
}

// isMeshlabGateway reports whether a Gateway is one meshlab runs: a waypoint or an ingress gateway.
func isMeshlabGateway(obj map[string]any, _ any) bool {
	spec, _ := obj["spec"].(map[string]any)
	return spec["gatewayClassName"] == waypointClass || spec["gatewayClassName"] == ingressClass
}

// isIngress reports whether a Gateway is an ingress gateway (class istio).
func isIngress(obj map[string]any, _ any) bool {
	spec, _ := obj["spec"].(map[string]any)
	return spec["gatewayClassName"] == ingressClass
}

// gatewayParents reports whether an HTTPRoute has a parentRef that is not a Service.
func gatewayParents(obj map[string]any) bool {
	spec, _ := obj["spec"].(map[string]any)
	refs, _ := spec["parentRefs"].([]any)
	for _, r := range refs {
		if !serviceParent(r) {
			return true
		}
	}
	return false
}

// serviceParent reports whether a Gateway API parentRef names a Service (its kind defaults to Gateway).
func serviceParent(v any) bool {
	m, _ := v.(map[string]any)
	g, _ := m["group"].(string)
	return m["kind"] == "Service" && (g == "" || g == "core")
}

// serviceRef reports whether a backendRef names a Service (its kind defaults to Service).
func serviceRef(v any) bool {
	m, _ := v.(map[string]any)
	g, _ := m["group"].(string)
	k, _ := m["kind"].(string)
	return (k == "" || k == "Service") && (g == "" || g == "core")
}

// CheckCoverage returns one finding per field set in obj (an object in its YAML/JSON form: apiVersion,
// kind, metadata, spec) that meshlab does not implement, in table order, and for a kind meshlab does not
// act on, one finding for the whole object (Warned).
func CheckCoverage(obj map[string]any) []Finding {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	group := apiVersion
	if i := strings.LastIndex(apiVersion, "/"); i >= 0 {
		group = apiVersion[:i]
	} else {
		group = ""
	}
	if UnimplementedKinds[schema.GroupKind{Group: group, Kind: kind}] {
		return []Finding{{Message: UnimplementedKindMessage(kind), Support: Warned}}
	}
	var out []Finding
	for _, c := range Coverage {
		if c.Support == Implemented || c.Group != group || c.Kind != kind {
			continue
		}
		for _, hit := range lookup(obj, strings.Split(c.Path, "."), "") {
			if c.Applies != nil && !c.Applies(obj, hit.value) {
				continue
			}
			if c.Applies == nil && !isSet(hit.value) {
				continue
			}
			msg := "meshlab does not implement " + c.Kind + " " + c.Name
			if c.Note != "" {
				msg += "; " + c.Note
			}
			out = append(out, Finding{Field: hit.path, Message: msg, Support: c.Support})
		}
	}
	return out
}

// CheckCoverageJSON is CheckCoverage of one JSON object.
func CheckCoverageJSON(data []byte) ([]Finding, error) {
	var obj map[string]any
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, err
	}
	return CheckCoverage(obj), nil
}

// CheckCoverageObject is CheckCoverage of a typed object (with its TypeMeta set).
func CheckCoverageObject(obj runtime.Object) ([]Finding, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	return CheckCoverageJSON(data)
}

// SplitFindings separates rejections from warnings.
func SplitFindings(fs []Finding) (rejected, warned []Finding) {
	for _, f := range fs {
		if f.Support == Rejected {
			rejected = append(rejected, f)
		} else {
			warned = append(warned, f)
		}
	}
	return rejected, warned
}

type hit struct {
	path  string
	value any
}

// lookup returns every value at path (segments; "x[]" walks each element of list x) under v.
func lookup(v any, segs []string, prefix string) []hit {
	if len(segs) == 0 {
		return []hit{{prefix, v}}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	seg := segs[0]
	name, list := strings.CutSuffix(seg, "[]")
	child, ok := m[name]
	if !ok || child == nil {
		return nil
	}
	p := name
	if prefix != "" {
		p = prefix + "." + name
	}
	if !list {
		return lookup(child, segs[1:], p)
	}
	items, _ := child.([]any)
	var out []hit
	for i, item := range items {
		out = append(out, lookup(item, segs[1:], fmt.Sprintf("%s[%d]", p, i))...)
	}
	return out
}

// isSet reports whether a decoded JSON value is set: not null, not an empty string, list or object, not false.
func isSet(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case bool:
		return x
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}
