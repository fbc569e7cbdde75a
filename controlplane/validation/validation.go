// Package validation is Istio's admission rules for the config kinds meshlab reads, shared by the validating
// webhook and every offline loader.
//
// The rules are those of istiod's validating webhook plus the OpenAPI/CEL rules of Istio's CRDs (which the
// API server enforces before the webhook runs), for VirtualService, DestinationRule, ServiceEntry and
// Gateway (networking.istio.io) and AuthorizationPolicy, PeerAuthentication and RequestAuthentication
// (security.istio.io). They are meant to be faithful: what real Istio accepts is accepted, what it rejects is
// rejected, and Istio's warnings are warnings, so that what a user learns here holds in a real mesh.
//
// The Kubernetes and Gateway API kinds meshlab reads (Namespace, Service, Pod, ServiceAccount, EndpointSlice,
// GatewayClass, Gateway, HTTPRoute) get strict decoding and a subset of the API server's and the Gateway API
// CRDs' rules (see kube.go), so that every offline loader checks every object it reads.
//
// Validate checks a typed object (istio.io/client-go v1, k8s.io/api or Gateway API v1 types, whatever
// apiVersion its TypeMeta names). ValidateYAML checks one YAML or JSON document before and after decoding
// it, and so also catches what decoding into typed objects silently loses: misspelt fields, two members of
// a oneof, unknown enum names. Every violation is reported with its field path in the object's YAML form,
// for example `spec.http[0].route[1].weight: Invalid value: -10: must not be negative`, and a field the kind
// does not have as the API server says it: `unknown field "spec.actoin"` (see Message).
package validation

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// ErrUnsupported is wrapped by the error Validate returns for an object of a kind this package has no rules
// for (a Deployment, a ConfigMap...). Loaders may skip such objects.
var ErrUnsupported = errors.New("no validation rules for this type")

// Warning is something Istio accepts but reports, such as a deprecated field.
type Warning struct {
	Field   string // the field path in YAML form, e.g. "spec.http[0].mirrorPercent"; empty for the whole object
	Message string
}

func (w Warning) String() string {
	if w.Field == "" {
		return w.Message
	}
	return w.Field + ": " + w.Message
}

// Warnings are Istio's validation warnings: the object is accepted, but these are reported (the webhook
// returns them to kubectl).
type Warnings []Warning

// Strings returns the warnings as "field: message" lines, the form of an AdmissionResponse's warnings.
func (ws Warnings) Strings() []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.String()
	}
	return out
}

// Error is the error returned for an invalid object: every violation, each naming its field path.
type Error struct {
	Kind      string // e.g. "VirtualService"
	Namespace string
	Name      string
	Errs      field.ErrorList
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind)
	if e.Name != "" {
		b.WriteByte(' ')
		if e.Namespace != "" {
			b.WriteString(e.Namespace + "/")
		}
		b.WriteString(e.Name)
	}
	b.WriteString(" is invalid: ")
	for i, fe := range e.Errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(Message(fe))
	}
	return b.String()
}

// kindInfo describes a kind this package validates.
type kindInfo struct {
	group    string
	versions []string // the versions the API server serves
}

const (
	groupNetworking = "networking.istio.io"
	groupSecurity   = "security.istio.io"
	groupGatewayAPI = "gateway.networking.k8s.io"
	groupDiscovery  = "discovery.k8s.io"
)

var (
	networkingVersions = []string{"v1", "v1beta1", "v1alpha3"}
	securityVersions   = []string{"v1", "v1beta1"}
	gatewayAPIVersions = []string{"v1", "v1beta1"}

	// kinds are Istio's kinds, by name.
	kinds = map[string]kindInfo{
		"VirtualService":        {groupNetworking, networkingVersions},
		"DestinationRule":       {groupNetworking, networkingVersions},
		"ServiceEntry":          {groupNetworking, networkingVersions},
		"Gateway":               {groupNetworking, networkingVersions},
		"AuthorizationPolicy":   {groupSecurity, securityVersions},
		"PeerAuthentication":    {groupSecurity, securityVersions},
		"RequestAuthentication": {groupSecurity, securityVersions},
	}

	// otherKinds are the Kubernetes and Gateway API kinds meshlab reads, by group and kind.
	otherKinds = map[schema.GroupKind]kindInfo{
		{Group: "", Kind: "Namespace"}:                 {"", []string{"v1"}},
		{Group: "", Kind: "Service"}:                   {"", []string{"v1"}},
		{Group: "", Kind: "Pod"}:                       {"", []string{"v1"}},
		{Group: "", Kind: "ServiceAccount"}:            {"", []string{"v1"}},
		{Group: groupDiscovery, Kind: "EndpointSlice"}: {groupDiscovery, []string{"v1"}},
		{Group: groupGatewayAPI, Kind: "GatewayClass"}: {groupGatewayAPI, gatewayAPIVersions},
		{Group: groupGatewayAPI, Kind: "Gateway"}:      {groupGatewayAPI, gatewayAPIVersions},
		{Group: groupGatewayAPI, Kind: "HTTPRoute"}:    {groupGatewayAPI, gatewayAPIVersions},
		{Group: groupGatewayAPI, Kind: "GRPCRoute"}:    {groupGatewayAPI, []string{"v1"}},
		{Group: groupGatewayAPI, Kind: "TCPRoute"}:     {groupGatewayAPI, []string{"v1"}},
	}
)

// infoOf returns what is known of a group and kind this package validates.
func infoOf(gk schema.GroupKind) (kindInfo, bool) {
	if info, ok := kinds[gk.Kind]; ok && info.group == gk.Group {
		return info, true
	}
	info, ok := otherKinds[gk]
	return info, ok
}

// Validate checks obj by the rules of the kind: Istio's for Istio's kinds (the istio.io/client-go v1 types),
// the API server's and the Gateway API CRDs' for the Kubernetes and Gateway API kinds meshlab reads
// (Namespace, Service, Pod, ServiceAccount, EndpointSlice, GatewayClass, Gateway, HTTPRoute, GRPCRoute,
// TCPRoute). Warnings are
// Istio's validation warnings (accepted, but reported). When obj is invalid the error is an *Error listing
// every violation. Its TypeMeta may be empty (informers strip it) or name any apiVersion served for the kind.
func Validate(obj runtime.Object) (Warnings, error) {
	v := &validator{}
	var (
		gk   schema.GroupKind
		meta metav1.Object
	)
	switch o := obj.(type) {
	case *networkingv1.VirtualService:
		gk, meta = schema.GroupKind{Group: groupNetworking, Kind: "VirtualService"}, o
		v.virtualService(o)
	case *networkingv1.DestinationRule:
		gk, meta = schema.GroupKind{Group: groupNetworking, Kind: "DestinationRule"}, o
		v.destinationRule(o)
	case *networkingv1.ServiceEntry:
		gk, meta = schema.GroupKind{Group: groupNetworking, Kind: "ServiceEntry"}, o
		v.serviceEntry(o)
	case *networkingv1.Gateway:
		gk, meta = schema.GroupKind{Group: groupNetworking, Kind: "Gateway"}, o
		v.gateway(o)
	case *securityv1.AuthorizationPolicy:
		gk, meta = schema.GroupKind{Group: groupSecurity, Kind: "AuthorizationPolicy"}, o
		v.authorizationPolicy(o)
	case *securityv1.PeerAuthentication:
		gk, meta = schema.GroupKind{Group: groupSecurity, Kind: "PeerAuthentication"}, o
		v.peerAuthentication(o)
	case *securityv1.RequestAuthentication:
		gk, meta = schema.GroupKind{Group: groupSecurity, Kind: "RequestAuthentication"}, o
		v.requestAuthentication(o)
	case *corev1.Namespace:
		gk, meta = schema.GroupKind{Kind: "Namespace"}, o
	case *corev1.Service:
		gk, meta = schema.GroupKind{Kind: "Service"}, o
		v.service(o)
	case *corev1.Pod:
		gk, meta = schema.GroupKind{Kind: "Pod"}, o
		v.pod(o)
	case *corev1.ServiceAccount:
		gk, meta = schema.GroupKind{Kind: "ServiceAccount"}, o
	case *discoveryv1.EndpointSlice:
		gk, meta = schema.GroupKind{Group: groupDiscovery, Kind: "EndpointSlice"}, o
		v.endpointSlice(o)
	case *gwv1.GatewayClass:
		gk, meta = schema.GroupKind{Group: groupGatewayAPI, Kind: "GatewayClass"}, o
		v.gatewayClass(o)
	case *gwv1.Gateway:
		gk, meta = schema.GroupKind{Group: groupGatewayAPI, Kind: "Gateway"}, o
		v.gatewayAPIGateway(o)
	case *gwv1.HTTPRoute:
		gk, meta = schema.GroupKind{Group: groupGatewayAPI, Kind: "HTTPRoute"}, o
		v.httpRouteAPI(o)
	case *gwv1.GRPCRoute:
		gk, meta = schema.GroupKind{Group: groupGatewayAPI, Kind: "GRPCRoute"}, o
		v.grpcRouteAPI(o)
	case *gwv1.TCPRoute:
		gk, meta = schema.GroupKind{Group: groupGatewayAPI, Kind: "TCPRoute"}, o
		v.tcpRouteAPI(o)
	case nil:
		return nil, fmt.Errorf("validation: nil object: %w", ErrUnsupported)
	default:
		return nil, fmt.Errorf("validation: %T: %w", obj, ErrUnsupported)
	}
	// Type and metadata errors come first, as the API server reports them first.
	spec := v.errs
	v.errs = nil
	v.typeMeta(gk, obj.GetObjectKind().GroupVersionKind())
	v.metadata(gk, meta)
	v.errs = append(v.errs, spec...)
	return v.result(gk.Kind, meta.GetNamespace(), meta.GetName())
}

// validator collects violations and warnings.
type validator struct {
	errs  field.ErrorList
	warns Warnings
}

func (v *validator) add(errs ...*field.Error) { v.errs = append(v.errs, errs...) }

func (v *validator) invalid(p *field.Path, value any, detail string) {
	v.add(field.Invalid(p, value, detail))
}

func (v *validator) required(p *field.Path, detail string) { v.add(field.Required(p, detail)) }

func (v *validator) forbidden(p *field.Path, detail string) { v.add(field.Forbidden(p, detail)) }

func (v *validator) warn(p *field.Path, format string, args ...any) {
	w := Warning{Message: fmt.Sprintf(format, args...)}
	if p != nil {
		w.Field = p.String()
	}
	v.warns = append(v.warns, w)
}

func (v *validator) result(kind, namespace, name string) (Warnings, error) {
	if len(v.errs) == 0 {
		return v.warns, nil
	}
	return v.warns, &Error{Kind: kind, Namespace: namespace, Name: name, Errs: v.errs}
}

// typeMeta checks that kind and apiVersion, when set, name the object's type in a version Istio serves.
func (v *validator) typeMeta(gk schema.GroupKind, gvk schema.GroupVersionKind) {
	info, _ := infoOf(gk)
	kind := gk.Kind
	if gvk.Kind != "" && gvk.Kind != kind {
		v.invalid(field.NewPath("kind"), gvk.Kind, "does not match the object's type "+kind)
	}
	if gvk.Group == "" && gvk.Version == "" {
		return
	}
	apiVersion := gvk.GroupVersion().String()
	if gvk.Group != info.group {
		v.invalid(field.NewPath("apiVersion"), apiVersion, fmt.Sprintf("%s belongs to API group %s", kind, info.group))
		return
	}
	if !contains(info.versions, gvk.Version) {
		valid := make([]string, len(info.versions))
		for i, ver := range info.versions {
			valid[i] = schema.GroupVersion{Group: info.group, Version: ver}.String()
		}
		v.add(field.NotSupported(field.NewPath("apiVersion"), apiVersion, valid))
	}
}

// Annotations Istio's webhook treats specially.
const (
	annotationDryRun           = "istio.io/dry-run"
	annotationAlwaysReject     = "internal.istio.io/webhook-always-reject"
	annotationInternalParents  = "internal.istio.io/parents"
	annotationInternalParentNS = "internal.istio.io/parent-namespace"
)

// metadata checks name and namespace as the API server does for custom resources (Istio's Gateway name must
// even be a DNS label), labels and annotations, and Istio's annotation rules.
func (v *validator) metadata(gk schema.GroupKind, meta metav1.Object) {
	p := field.NewPath("metadata")
	name := meta.GetName()
	kind := gk.Kind
	switch {
	case name == "" && meta.GetGenerateName() == "":
		v.required(p.Child("name"), "name or generateName is required")
	case name == "":
	case gk.Group == groupNetworking && kind == "Gateway":
		// Istio's Gateway names become parts of `<namespace>/<name>` references: no dots.
		for _, msg := range k8svalidation.IsDNS1123Label(name) {
			v.invalid(p.Child("name"), name, "an Istio Gateway name must be a DNS-1123 label: "+msg)
		}
	case gk.Group == "" && (kind == "Namespace" || kind == "Service"):
		// The API server's rules: a Namespace name is a DNS-1123 label, a Service name a DNS-1035 label.
		check := k8svalidation.IsDNS1123Label
		if kind == "Service" {
			check = k8svalidation.IsDNS1035Label
		}
		for _, msg := range check(name) {
			v.invalid(p.Child("name"), name, msg)
		}
	default:
		for _, msg := range k8svalidation.IsDNS1123Subdomain(name) {
			v.invalid(p.Child("name"), name, msg)
		}
	}
	if ns := meta.GetNamespace(); ns != "" {
		for _, msg := range k8svalidation.IsDNS1123Label(ns) {
			v.invalid(p.Child("namespace"), ns, msg)
		}
	}
	v.add(metav1validation.ValidateLabels(meta.GetLabels(), p.Child("labels"))...)
	annotations := meta.GetAnnotations()
	v.add(apivalidation.ValidateAnnotations(annotations, p.Child("annotations"))...)

	ap := p.Child("annotations")
	if val, ok := annotations[annotationDryRun]; ok {
		if kind != "AuthorizationPolicy" {
			v.forbidden(ap.Key(annotationDryRun), "only AuthorizationPolicy supports the dry-run annotation; remove it")
		} else if _, err := strconv.ParseBool(val); err != nil {
			v.invalid(ap.Key(annotationDryRun), val, "must be a boolean (true or false)")
		}
	}
	for _, a := range []string{annotationAlwaysReject, annotationInternalParents, annotationInternalParentNS} {
		if _, ok := annotations[a]; ok {
			v.forbidden(ap.Key(a), "internal annotation, may not be set by users")
		}
	}
}

// ---- hosts, names and addresses ----

var (
	dns1123Label  = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
	wildcardLabel = regexp.MustCompile(`^(\*|(\*|\*-)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)$`)
)

// isDNSLabel is Istio's DNS label test: like RFC 1123 but case-insensitive, at most 63 characters.
func isDNSLabel(s string) bool { return len(s) <= 63 && dns1123Label.MatchString(s) }

// domainProblem returns why name is not a valid domain name ("" when it is). With wildcard the first label
// may be "*", "*foo" or "*-foo". Single-label (short) names are valid; a trailing dot is allowed; the
// top-level label may not be all digits (so IP addresses are not domain names).
func domainProblem(name string, wildcard bool) string {
	if name == "" {
		return "must not be empty"
	}
	if len(name) > 255 {
		return "domain name too long (max 255 characters)"
	}
	labels := strings.Split(name, ".")
	if len(labels) > 1 {
		tld := labels[len(labels)-1]
		if _, err := strconv.Atoi(tld); err == nil {
			return fmt.Sprintf("top-level domain %q cannot be all-numeric", tld)
		}
	}
	for i, l := range labels {
		if i == len(labels)-1 && l == "" && i > 0 {
			break // trailing dot
		}
		ok := isDNSLabel(l)
		if i == 0 && wildcard {
			ok = len(l) <= 63 && wildcardLabel.MatchString(l)
		}
		if !ok {
			return fmt.Sprintf("invalid domain name: label %q is not a valid DNS label", l)
		}
	}
	return ""
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// ipOrCIDRProblem returns why s is neither an IP address nor a CIDR block ("" when it is one).
func ipOrCIDRProblem(s string) string {
	if strings.Count(s, "/") == 1 {
		if _, err := netip.ParsePrefix(s); err != nil {
			return "not a valid CIDR block"
		}
		return ""
	}
	if !isIP(s) {
		return "not a valid IP address"
	}
	return ""
}

// hostMatches reports whether two hosts, either possibly a wildcard, overlap (Istio's host.Name.Matches).
func hostMatches(a, b string) bool {
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	switch {
	case aw && bw:
		if len(a) < len(b) {
			return strings.HasSuffix(b[1:], a[1:])
		}
		return strings.HasSuffix(a[1:], b[1:])
	case aw:
		return strings.HasSuffix(b, a[1:])
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

// hostSubsetOf reports whether every name matched by a is matched by b (Istio's host.Name.SubsetOf).
func hostSubsetOf(a, b string) bool {
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	switch {
	case aw && bw:
		return len(a) >= len(b) && strings.HasSuffix(a[1:], b[1:])
	case aw:
		return false
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

func (v *validator) port(p *field.Path, n uint32) {
	if n < 1 || n > 65535 {
		v.invalid(p, n, "must be between 1 and 65535")
	}
}

// duration applies Istio's rule for durations: at least 1ms, millisecond precision.
func (v *validator) duration(p *field.Path, d *durationpb.Duration) {
	if d == nil {
		return
	}
	dur := d.AsDuration()
	switch {
	case dur < time.Millisecond:
		v.invalid(p, dur.String(), "must be at least 1ms")
	case dur%time.Millisecond != 0:
		v.invalid(p, dur.String(), "only millisecond precision is supported")
	}
}

// percentage is Istio's rule for a fractional Percent: 0, or between 0.0001 and 100.
func (v *validator) percentage(p *field.Path, value float64) {
	if value < 0 || value > 100 || (value > 0 && value < 0.0001) {
		v.invalid(p, value, "must be 0 or between 0.0001 and 100")
	}
}

func (v *validator) percent(p *field.Path, value int32) {
	if value < 0 || value > 100 {
		v.invalid(p, value, "must be between 0 and 100")
	}
}

// labels checks a label map (subset labels, source labels, endpoint labels) as Kubernetes labels.
func (v *validator) labels(p *field.Path, l map[string]string) {
	v.add(metav1validation.ValidateLabels(l, p)...)
}

// workloadSelector is the rule for istio.type.v1beta1.WorkloadSelector (matchLabels).
func (v *validator) workloadSelector(p *field.Path, matchLabels map[string]string, set bool) {
	if !set {
		return
	}
	lp := p.Child("matchLabels")
	for _, k := range sortedKeys(matchLabels) {
		val := matchLabels[k]
		switch {
		case k == "":
			v.invalid(lp, k, "empty label key is not supported in a selector")
		case strings.Contains(k, "*") || strings.Contains(val, "*"):
			v.invalid(lp.Key(k), val, "wildcards are not supported in a selector")
		}
		if len(val) > 63 {
			v.add(field.TooLong(lp.Key(k), val, 63))
		}
	}
	if len(matchLabels) == 0 {
		v.warn(p, "workload selector specified without labels: it selects every workload in the namespace")
	}
}

// exportTo is Istio's rule for exportTo lists; serviceEntry allows "~" (visible to no one else).
func (v *validator) exportTo(p *field.Path, namespace string, exportTo []string, serviceEntry, drWithSelector bool) {
	if len(exportTo) == 0 {
		return
	}
	seen := map[string]bool{}
	for i, e := range exportTo {
		ep := p.Index(i)
		key := e
		if e == "." && namespace != "" {
			key = namespace
		}
		if seen[key] {
			v.add(field.Duplicate(ep, e))
			continue
		}
		switch {
		case e == "." || e == "*":
		case e == "~":
			if !serviceEntry {
				v.invalid(ep, e, "~ (exported to no one) is only allowed for ServiceEntry")
				continue
			}
		case !isDNSLabel(e):
			v.invalid(ep, e, `must be ".", "*" or a namespace name`)
			continue
		}
		seen[key] = true
	}
	if drWithSelector && len(seen) > 0 {
		if !seen[namespace] && !seen["."] {
			v.invalid(p, exportTo, "a DestinationRule with a workloadSelector cannot be exported beyond its own namespace")
		} else if len(seen) > 1 {
			v.invalid(p, exportTo, "a DestinationRule with a workloadSelector can only be exported to its own namespace")
		}
	}
	if seen["*"] && len(exportTo) > 1 {
		v.invalid(p, exportTo, "cannot mix * (all namespaces) with other entries")
	}
	if seen["~"] && len(exportTo) > 1 {
		v.invalid(p, exportTo, "cannot export to no one (~) and to someone")
	}
}

// ---- HTTP headers ----

var (
	// RFC 7230 token characters.
	headerNameRegexp = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~A-Za-z0-9]+$")
	// The stricter set Istio uses for headers it writes itself (JWT claim output).
	strictHeaderNameRegexp = regexp.MustCompile(`^[-_A-Za-z0-9]+$`)
	// Header values may not contain control characters other than tab.
	headerValueRegexp = regexp.MustCompile("^[^\u0000-\u0008\u000A-\u001F\u007F]*$")
)

const jwtClaimHeaderPrefix = "@request.auth.claims"

// isJWTClaimRoute reports whether a header name is Istio's JWT claim routing form,
// `@request.auth.claims.<claim>` or `@request.auth.claims[<claim>]`.
func isJWTClaimRoute(name string) bool {
	if !strings.HasPrefix(strings.ToLower(name), jwtClaimHeaderPrefix) {
		return false
	}
	rest := name[len(jwtClaimHeaderPrefix):]
	return (strings.HasPrefix(rest, ".") && len(rest) > 1) ||
		(strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") && len(rest) > 2)
}

func isPseudoHeader(name string) bool {
	switch name {
	case ":method", ":scheme", ":authority", ":path", ":status":
		return true
	}
	return false
}

func isAuthorityHeader(name string) bool {
	return strings.EqualFold(name, ":authority") || strings.EqualFold(name, "host")
}

// matchHeaderName checks a header name used in a match: a token, a pseudo-header or a JWT claim.
func (v *validator) matchHeaderName(p *field.Path, name string) {
	switch {
	case name == "":
		v.invalid(p, name, "header name must not be empty")
	case isJWTClaimRoute(name), isPseudoHeader(name):
	case !headerNameRegexp.MatchString(name):
		v.invalid(p, name, "not a valid HTTP header name")
	}
}

// headerOperations checks a route's or destination's header manipulation.
func (v *validator) headerOperations(p *field.Path, ops *headerOps) {
	if ops == nil {
		return
	}
	req, resp := p.Child("request"), p.Child("response")
	for _, set := range []struct {
		p       *field.Path
		values  map[string]string
		request bool
	}{
		{req.Child("set"), ops.reqSet, true}, {req.Child("add"), ops.reqAdd, true},
		{resp.Child("set"), ops.respSet, false}, {resp.Child("add"), ops.respAdd, false},
	} {
		for _, name := range sortedKeys(set.values) {
			if set.request {
				v.requestHeaderName(set.p.Key(name), name)
			} else {
				v.removableHeaderName(set.p.Key(name), name)
			}
			v.headerValue(set.p.Key(name), set.values[name])
		}
	}
	for i, name := range ops.reqRemove {
		v.removableHeaderName(req.Child("remove").Index(i), name)
	}
	for i, name := range ops.respRemove {
		v.removableHeaderName(resp.Child("remove").Index(i), name)
	}
}

type headerOps struct {
	reqSet, reqAdd, respSet, respAdd map[string]string
	reqRemove, respRemove            []string
}

// requestHeaderName is the rule for request headers set or added: no pseudo-headers except the authority.
func (v *validator) requestHeaderName(p *field.Path, name string) {
	switch {
	case name == "":
		v.invalid(p, name, "header name must not be empty")
	case (strings.HasPrefix(name, ":") || strings.EqualFold(name, "host")) && !isAuthorityHeader(name):
		v.invalid(p, name, `header name cannot have a ":" prefix`)
	}
}

// removableHeaderName is the rule for removed request headers and every response header.
func (v *validator) removableHeaderName(p *field.Path, name string) {
	switch {
	case name == "":
		v.invalid(p, name, "header name must not be empty")
	case strings.EqualFold(name, "host"):
		v.invalid(p, name, "the Host header cannot be set or removed here")
	case strings.HasPrefix(name, ":"):
		v.invalid(p, name, `header name cannot have a ":" prefix`)
	}
}

// headerValue checks a header value Envoy will interpret: no control characters, and %VARIABLE% expressions
// well formed (a literal % is written %%).
func (v *validator) headerValue(p *field.Path, value string) {
	if !headerValueRegexp.MatchString(value) {
		v.invalid(p, value, "header value contains control characters")
		return
	}
	if msg := headerValueSyntax(value); msg != "" {
		v.invalid(p, value, msg)
	}
}

// headerValueSyntax follows Envoy's header formatter: literal text with %VAR% or %VAR(args)% expressions,
// where args may be a JSON-ish array of quoted strings or a bare string.
func headerValueSyntax(s string) string {
	i := 0
	for i < len(s) {
		if s[i] != '%' {
			i++
			continue
		}
		if i+1 >= len(s) {
			return "unescaped % at the end (write %% for a literal %)"
		}
		if s[i+1] == '%' {
			i += 2
			continue
		}
		// A variable: a name up to % or (.
		j := i + 1
		for j < len(s) && s[j] != '%' && s[j] != '(' {
			j++
		}
		if j < len(s) && s[j] == '(' {
			end, msg := skipVariableArgs(s, j+1)
			if msg != "" {
				return msg
			}
			j = end
			for j < len(s) && s[j] == ' ' {
				j++
			}
			if j < len(s) && s[j] != '%' {
				return "expected % after the arguments of a %VARIABLE(...)% expression"
			}
		}
		if j >= len(s) {
			return fmt.Sprintf("unterminated variable expression in %q (write %%%% for a literal %%)", s)
		}
		i = j + 1
	}
	return ""
}

// skipVariableArgs scans the arguments of %VAR(...)% from just after "(" and returns the index after ")".
func skipVariableArgs(s string, i int) (int, string) {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	if i < len(s) && s[i] == '[' {
		i++
		for {
			for i < len(s) && s[i] == ' ' {
				i++
			}
			if i >= len(s) || s[i] != '"' {
				return i, `expected '"' in the argument list of a %VARIABLE(...)% expression`
			}
			i++
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return i, "unterminated string in a %VARIABLE(...)% expression"
			}
			i++
			for i < len(s) && s[i] == ' ' {
				i++
			}
			if i < len(s) && s[i] == ',' {
				i++
				continue
			}
			if i < len(s) && s[i] == ']' {
				i++
				break
			}
			return i, "expected ',' or ']' in the argument list of a %VARIABLE(...)% expression"
		}
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i >= len(s) || s[i] != ')' {
			return i, "expected ')' after the argument list of a %VARIABLE(...)% expression"
		}
		return i + 1, ""
	}
	for i < len(s) && s[i] != ')' {
		if s[i] == '\\' {
			i++
		}
		i++
	}
	if i >= len(s) {
		return i, "unterminated arguments in a %VARIABLE(...)% expression"
	}
	return i + 1, ""
}

// ---- target references ----

// allowedTargetKinds are the kinds a policy's targetRef may name (group "" is the core group).
var allowedTargetKinds = []string{"Service", "networking.istio.io/ServiceEntry", "gateway.networking.k8s.io/Gateway",
	"gateway.networking.k8s.io/GatewayClass"}

var (
	targetGroupRegexp = regexp.MustCompile(`^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	targetKindRegexp  = regexp.MustCompile(`^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
)

type targetRef struct{ group, kind, name, namespace string }

func (v *validator) targetRef(p *field.Path, r targetRef) {
	if r.name == "" {
		v.required(p.Child("name"), "targetRef name is required")
	} else if len(r.name) > 253 {
		v.add(field.TooLong(p.Child("name"), r.name, 253))
	}
	if r.namespace != "" {
		v.forbidden(p.Child("namespace"), "cross-namespace references are not supported")
	}
	if !targetGroupRegexp.MatchString(r.group) || len(r.group) > 253 {
		v.invalid(p.Child("group"), r.group, "must be a DNS subdomain (or empty for the core group)")
	}
	if r.kind == "" {
		v.required(p.Child("kind"), "targetRef kind is required")
		return
	}
	if !targetKindRegexp.MatchString(r.kind) || len(r.kind) > 63 {
		v.invalid(p.Child("kind"), r.kind, "not a valid kind name")
		return
	}
	gk := r.kind
	if r.group != "" && r.group != "core" {
		gk = r.group + "/" + r.kind
	}
	if !contains(allowedTargetKinds, gk) {
		v.add(field.NotSupported(p, gk, allowedTargetKinds))
	}
}

// ---- string matches ----

// regex checks an RE2 regular expression as Envoy will run it (Go's regexp is RE2).
func (v *validator) regex(p *field.Path, re string) {
	if re == "" {
		v.invalid(p, re, "regex must not be empty")
		return
	}
	if len(re) > 1024 {
		v.add(field.TooLong(p, re, 1024))
		return
	}
	if _, err := regexp.Compile(re); err != nil {
		v.invalid(p, re, fmt.Sprintf("not a valid RE2 regular expression: %v", err))
	}
}

// ---- small helpers ----

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
