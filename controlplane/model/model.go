// Package model turns the objects of an ingest store into an immutable Snapshot (istiod's PushContext): the
// services, workloads and waypoints of the mesh, which waypoint serves what, routing and authorization
// indexed for the generators, and the problems found on the way. Invalid config becomes a Problem on the
// snapshot, never an error that stops the rest of the mesh from being built.
package model

import (
	"time"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshlab/meshlab/controlplane/ingest"
)

// Names, labels and annotations the model reads (Istio's).
const (
	ClusterDomain = "cluster.local"
	TrustDomain   = "cluster.local"
	// RootNamespace holds mesh-wide policies.
	RootNamespace = "istio-system"

	WaypointGatewayClass       = "istio-waypoint"
	LabelDataplaneMode         = "istio.io/dataplane-mode"
	LabelUseWaypoint           = "istio.io/use-waypoint"
	LabelUseWaypointNamespace  = "istio.io/use-waypoint-namespace"
	LabelWaypointFor           = "istio.io/waypoint-for"
	AnnotationForServiceAcount = "istio.io/for-service-account"
	LabelGatewayName           = "gateway.networking.k8s.io/gateway-name"
	LabelGatewayManaged        = "gateway.istio.io/managed"   // on the objects Istio's waypoint controller creates
	GatewayManagedMesh         = "istio.io-mesh-controller"   // its value for waypoints
	LabelServiceName           = "kubernetes.io/service-name" // on EndpointSlices

)

// Problem is invalid or unresolvable config found while building a snapshot. The live control plane turns
// problems into status conditions and events.
type Problem struct {
	Object  ingest.Key
	Message string
}

func (p Problem) String() string { return p.Object.String() + ": " + p.Message }

// Protocol is a port's application protocol as Istio classifies it.
type Protocol string

// Protocols.
const (
	ProtocolHTTP  Protocol = "HTTP"
	ProtocolHTTP2 Protocol = "HTTP2"
	ProtocolGRPC  Protocol = "GRPC"
	ProtocolTCP   Protocol = "TCP"
)

// IsHTTP reports whether the waypoint can route requests on this protocol.
func (p Protocol) IsHTTP() bool { return p == ProtocolHTTP || p == ProtocolHTTP2 || p == ProtocolGRPC }

// Port is one service port.
type Port struct {
	Name           string
	Port           uint32
	TargetPort     uint32 // 0 when the target is a named port (resolved per pod)
	TargetPortName string
	Protocol       Protocol
}

// Service is a Kubernetes Service with its resolved endpoints and waypoint.
type Service struct {
	Name, Namespace string
	FQDN            string // name.namespace.svc.cluster.local
	VIPs            []string
	Ports           []Port // sorted by port
	Selector        map[string]string
	Labels          map[string]string
	// Waypoint is the waypoint that service-addressed traffic goes through, or nil.
	Waypoint *Waypoint
	// WaypointWhy says which label on which object decided Waypoint (or that none did), for explain.
	WaypointWhy string
	Endpoints   []Endpoint // sorted by IP then port
	Object      *corev1.Service
}

// Key returns the store key of the service.
func (s *Service) Key() ingest.Key {
	return ingest.Key{Kind: ingest.KindService, Namespace: s.Namespace, Name: s.Name}
}

// Port returns the service port numbered n.
func (s *Service) Port(n uint32) (Port, bool) {
	for _, p := range s.Ports {
		if p.Port == n {
			return p, true
		}
	}
	return Port{}, false
}

// Endpoint is one address behind a service port.
type Endpoint struct {
	IP          string
	Port        uint32 // the target (container) port
	ServicePort uint32
	Ready       bool
	// Workload is the pod behind the address, when known.
	Workload *Workload
}

// Labels returns the labels of the endpoint's workload (nil when unknown).
func (e Endpoint) Labels() map[string]string {
	if e.Workload == nil {
		return nil
	}
	return e.Workload.Labels
}

// Workload is a pod with an IP.
type Workload struct {
	Name, Namespace string
	UID             string
	IPs             []string
	Node            string
	ServiceAccount  string
	Labels          map[string]string
	// Ambient is true when the pod is enrolled in the ambient mesh (namespace or pod label).
	Ambient bool
	// Waypoint is the waypoint that workload-addressed traffic goes through, or nil.
	Waypoint *Waypoint
	// WaypointWhy says which label on which object decided Waypoint (or that none did), for explain.
	WaypointWhy string
	// Services select this workload: for each, the service ports and the target ports they map to.
	Services []WorkloadService
	Object   *corev1.Pod
}

// Key returns the store key of the pod.
func (w *Workload) Key() ingest.Key {
	return ingest.Key{Kind: ingest.KindPod, Namespace: w.Namespace, Name: w.Name}
}

// Identity returns the workload's SPIFFE identity.
func (w *Workload) Identity() string { return SpiffeID(w.Namespace, w.ServiceAccount) }

// SpiffeID returns spiffe://cluster.local/ns/NS/sa/SA.
func SpiffeID(namespace, serviceAccount string) string {
	return "spiffe://" + TrustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// WorkloadService is a service that selects a workload, with its port mapping.
type WorkloadService struct {
	Service *Service
	Ports   []PortMapping
}

// PortMapping maps a service port to the workload's target port.
type PortMapping struct{ ServicePort, TargetPort uint32 }

// TrafficType says what traffic a waypoint handles (label istio.io/waypoint-for).
type TrafficType string

// Traffic types.
const (
	TrafficService  TrafficType = "service"
	TrafficWorkload TrafficType = "workload"
	TrafficAll      TrafficType = "all"
	TrafficNone     TrafficType = "none"
)

// Waypoint is a Gateway of class istio-waypoint.
type Waypoint struct {
	Name, Namespace string
	For             TrafficType
	// ServiceAccount is set for the older per-service-account form (annotation istio.io/for-service-account):
	// such a waypoint serves only the workloads running as that service account, without use-waypoint labels.
	ServiceAccount string
	// Addresses are the waypoint's own VIPs (its Service) where ztunnels send HBONE.
	Addresses []string
	Object    ingest.Object // the Gateway
}

// Key returns the store key of the waypoint's Gateway.
func (w *Waypoint) Key() ingest.Key {
	return ingest.Key{Kind: ingest.KindGateway, Namespace: w.Namespace, Name: w.Name}
}

// ServesServices reports whether service-addressed traffic may be bound to this waypoint.
func (w *Waypoint) ServesServices() bool {
	return w.ServiceAccount != "" || w.For == TrafficService || w.For == TrafficAll
}

// ServesWorkloads reports whether workload-addressed traffic may be bound to this waypoint.
func (w *Waypoint) ServesWorkloads() bool {
	return w.ServiceAccount != "" || w.For == TrafficWorkload || w.For == TrafficAll
}

// Selects reports whether traffic to this workload, once bound to the waypoint, is the waypoint's to
// handle: every workload for a namespace waypoint, only its service account's for a per-SA waypoint.
func (w *Waypoint) Selects(wl *Workload) bool {
	if w.ServiceAccount == "" {
		return true
	}
	return wl != nil && wl.Namespace == w.Namespace && wl.ServiceAccount == w.ServiceAccount
}

// Subset is a DestinationRule subset.
type Subset struct {
	Name   string
	Labels map[string]string
	// Policy is the subset's trafficPolicy, nil when unset; PolicyFor merges it over the rule's.
	Policy *networkingv1alpha3.TrafficPolicy
}

// DestinationRule is the resolved destination rule for one host.
type DestinationRule struct {
	Host    string // FQDN
	Subsets []Subset
	Source  ingest.Key
	// Policy is spec.trafficPolicy (with its portLevelSettings), nil when unset. It is the API's own message,
	// read as istiod reads it; the parts meshlab does not implement are reported by validation.Coverage.
	Policy *networkingv1alpha3.TrafficPolicy
}

// Subset returns the named subset.
func (d *DestinationRule) Subset(name string) (Subset, bool) {
	if d == nil {
		return Subset{}, false
	}
	for _, s := range d.Subsets {
		if s.Name == name {
			return s, true
		}
	}
	return Subset{}, false
}

// MatchType is how a StringMatch compares.
type MatchType string

// Match types.
const (
	MatchExact   MatchType = "exact"
	MatchPrefix  MatchType = "prefix"
	MatchRegex   MatchType = "regex"
	MatchPresent MatchType = "present"
	// MatchPathPrefix is Gateway API's PathPrefix: a prefix that ends at a path segment boundary.
	MatchPathPrefix MatchType = "path_prefix"
)

// StringMatch matches a path or a header value.
type StringMatch struct {
	Type  MatchType
	Value string
}

// HeaderMatch matches one request header.
type HeaderMatch struct {
	Name   string
	Match  StringMatch
	Invert bool
}

// RouteMatch is one set of conditions, all of which must hold. A rule matches when any of its RouteMatches
// does; a rule without RouteMatches matches everything.
type RouteMatch struct {
	Path        *StringMatch
	Method      string
	Headers     []HeaderMatch
	QueryParams []QueryParamMatch
}

// QueryParamMatch matches one query parameter (HTTPRoute matches[].queryParams, VirtualService
// match[].queryParams); MatchPresent matches any value.
type QueryParamMatch struct {
	Name  string
	Match StringMatch
}

// Destination is one weighted backend of a route.
type Destination struct {
	Service *Service
	Port    uint32
	Subset  string
	Weight  uint32
	// Headers are manipulated when this destination is picked (VirtualService route[].headers, HTTPRoute
	// backendRef filters); nil when none.
	Headers *Headers
}

// HeaderValue is one header name and value.
type HeaderValue struct{ Name, Value string }

// HeaderOps manipulates the headers of one direction, as VirtualService headers.request/response do.
type HeaderOps struct {
	Set    []HeaderValue // sorted by name
	Add    []HeaderValue // sorted by name
	Remove []string
}

// Headers is header manipulation for requests and responses.
type Headers struct {
	Request, Response HeaderOps
}

// RedirectPort says where a redirect's port comes from.
type RedirectPort string

// Redirect ports.
const (
	RedirectPortNone        RedirectPort = ""        // no port field: Envoy's default (the request's, minus rules)
	RedirectPortFixed       RedirectPort = "fixed"   // Redirect.Port
	RedirectPortFromRequest RedirectPort = "request" // derivePort FROM_REQUEST_PORT: the port the route serves
	RedirectPortDefault     RedirectPort = "default" // derivePort FROM_PROTOCOL_DEFAULT
)

// Redirect answers with a redirect instead of routing (VirtualService redirect, HTTPRoute RequestRedirect).
type Redirect struct {
	URI string
	// PrefixReplace makes URI replace the matched path prefix (Gateway API ReplacePrefixMatch).
	PrefixReplace bool
	Authority     string
	Scheme        string
	PortMode      RedirectPort
	Port          uint32
	Code          uint32 // 0 means 301
}

// Rewrite changes the request before it is forwarded (VirtualService rewrite, HTTPRoute URLRewrite).
type Rewrite struct {
	URI string // replaces the matched prefix
	// RegexMatch/RegexRewrite replace every match in the path (uriRegexRewrite).
	RegexMatch, RegexRewrite string
	Authority                string
}

// Fault is VirtualService fault injection.
type Fault struct {
	DelayPercent float64
	Delay        time.Duration
	AbortPercent float64
	AbortStatus  uint32
}

// Retry overrides the default retry policy.
type Retry struct {
	Attempts      uint32
	PerTryTimeout time.Duration
	// RetryOn is Istio's list: Envoy conditions and HTTP status codes, comma-separated ("" keeps Istio's
	// default conditions).
	RetryOn string
}

// Mirror sends a copy of a fraction of the requests to another destination (VirtualService mirror,
// mirrors[] and mirrorPercentage; HTTPRoute RequestMirror). The fraction is kept as Istio writes it into
// Envoy's runtime_fraction: Numerator out of 100, or out of a million when PerMillion is set.
type Mirror struct {
	Destination Destination
	Numerator   uint32
	PerMillion  bool
}

// CORS is a VirtualService corsPolicy, answered by the proxy's CORS filter: preflight requests from an
// allowed origin get the Access-Control-* answer without reaching the service; other requests from an
// allowed origin get Access-Control-Allow-Origin (and -Credentials, -Expose-Headers) on the response.
type CORS struct {
	AllowOrigins                              []StringMatch // allowOrigins, or the deprecated allowOrigin as exact matches
	AllowMethods, AllowHeaders, ExposeHeaders []string
	MaxAge                                    *time.Duration
	AllowCredentials                          *bool
	// ForwardUnmatchedPreflights sends a preflight whose origin is not allowed on to the service (Istio's
	// unmatchedPreflights FORWARD, the default); false answers it without CORS headers (IGNORE).
	ForwardUnmatchedPreflights bool
}

// RouteRule is one HTTP routing rule for a service port, from a VirtualService http entry or an HTTPRoute
// rule (Istio converts both into the same shape).
type RouteRule struct {
	Name         string
	Matches      []RouteMatch
	Destinations []Destination
	// DirectStatus, when non-zero, answers with this status instead of routing (no valid backend).
	DirectStatus uint32
	Timeout      *time.Duration
	Fault        *Fault
	Retry        *Retry // nil: Istio's default policy
	Redirect     *Redirect
	Rewrite      *Rewrite
	Headers      *Headers
	// Mirrors are applied to routed requests only (not redirects or direct responses), as in Istio.
	Mirrors []Mirror
	// CORS applies to every kind of rule (route, redirect, direct response), as in Istio.
	CORS   *CORS
	Source ingest.Key
	// Index is the rule's position in its source: http[Index] of a VirtualService, rules[Index] of an HTTPRoute.
	Index int
}
