package validation

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
)

// policyTargets checks how a policy selects its workloads: a selector, a targetRef or targetRefs, at most one.
func (v *validator) policyTargets(p *field.Path, sel *typev1beta1.WorkloadSelector, ref *typev1beta1.PolicyTargetReference,
	refs []*typev1beta1.PolicyTargetReference,
) {
	var set []string
	if sel != nil {
		set = append(set, "selector")
	}
	if ref != nil {
		set = append(set, "targetRef")
	}
	if len(refs) > 0 {
		set = append(set, "targetRefs")
	}
	if len(set) > 1 {
		v.forbidden(p.Child(set[1]), "cannot be set together with "+set[0]+": only one of selector, targetRef or targetRefs may be set")
	}
	v.workloadSelector(p.Child("selector"), sel.GetMatchLabels(), sel != nil)
	if ref != nil {
		v.targetRef(p.Child("targetRef"), targetRef{ref.Group, ref.Kind, ref.Name, ref.Namespace})
	}
	if len(refs) > 16 {
		v.add(field.TooMany(p.Child("targetRefs"), len(refs), 16))
	}
	for i, r := range refs {
		if r == nil {
			v.invalid(p.Child("targetRefs").Index(i), nil, "must not be null")
			continue
		}
		v.targetRef(p.Child("targetRefs").Index(i), targetRef{r.Group, r.Kind, r.Name, r.Namespace})
	}
}

// ======== AuthorizationPolicy ========

var authzActions = []string{"ALLOW", "DENY", "AUDIT", "CUSTOM"}

// namedList is one of the string lists of a Source or an Operation, with its YAML name.
type namedList struct {
	name   string
	values []string
}

func sourceLists(s *security.Source) []namedList {
	return []namedList{
		{"principals", s.Principals}, {"notPrincipals", s.NotPrincipals},
		{"requestPrincipals", s.RequestPrincipals}, {"notRequestPrincipals", s.NotRequestPrincipals},
		{"namespaces", s.Namespaces}, {"notNamespaces", s.NotNamespaces},
		{"serviceAccounts", s.ServiceAccounts}, {"notServiceAccounts", s.NotServiceAccounts},
		{"ipBlocks", s.IpBlocks}, {"notIpBlocks", s.NotIpBlocks},
		{"remoteIpBlocks", s.RemoteIpBlocks}, {"notRemoteIpBlocks", s.NotRemoteIpBlocks},
		{"trustDomains", s.TrustDomains}, {"notTrustDomains", s.NotTrustDomains},
	}
}

func operationLists(o *security.Operation) []namedList {
	return []namedList{
		{"hosts", o.Hosts}, {"notHosts", o.NotHosts}, {"ports", o.Ports}, {"notPorts", o.NotPorts},
		{"methods", o.Methods}, {"notMethods", o.NotMethods}, {"paths", o.Paths}, {"notPaths", o.NotPaths},
	}
}

// Source fields that also apply to TCP traffic (the others are HTTP-only: request principals).
var tcpSourceFields = []string{"principals", "notPrincipals", "namespaces", "notNamespaces", "serviceAccounts",
	"notServiceAccounts", "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"}

// Source fields and condition keys a CUSTOM policy cannot use (the external authorizer does not see them).
var (
	customUnsupportedSource = []string{"namespaces", "notNamespaces", "serviceAccounts", "notServiceAccounts",
		"trustDomains", "notTrustDomains", "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals"}
	customUnsupportedKeys = []string{"source.namespace", "source.serviceAccount", "source.trustDomain", "source.principal"}
)

func (v *validator) authorizationPolicy(o *securityv1.AuthorizationPolicy) {
	ap := &o.Spec
	p := field.NewPath("spec")
	v.policyTargets(p, ap.Selector, ap.TargetRef, ap.TargetRefs)

	if _, ok := security.AuthorizationPolicy_Action_name[int32(ap.Action)]; !ok {
		v.add(field.NotSupported(p.Child("action"), ap.Action.String(), authzActions))
	}
	if _, ok := o.Annotations[annotationDryRun]; ok && ap.Action != security.AuthorizationPolicy_ALLOW && ap.Action != security.AuthorizationPolicy_DENY {
		v.forbidden(field.NewPath("metadata", "annotations").Key(annotationDryRun),
			fmt.Sprintf("dry-run is only supported with action ALLOW or DENY, not %s", ap.Action))
	}
	custom := ap.Action == security.AuthorizationPolicy_CUSTOM
	if custom {
		if ap.Rules == nil {
			v.required(p.Child("rules"), "a CUSTOM policy without rules never triggers; add an empty rule {} to apply it to every request")
		} else if ap.GetProvider().GetName() == "" {
			v.required(p.Child("provider", "name"), "a CUSTOM policy needs the name of its extension provider")
		}
	} else if ap.GetProvider() != nil {
		v.forbidden(p.Child("provider"), fmt.Sprintf("only allowed with action CUSTOM (action is %s)", ap.Action))
	}
	if ap.Action == security.AuthorizationPolicy_DENY && ap.Rules == nil {
		v.required(p.Child("rules"), "a DENY policy without rules never triggers; add an empty rule {} to apply it to every request")
	}
	if len(ap.Rules) > 512 {
		v.add(field.TooMany(p.Child("rules"), len(ap.Rules), 512))
	}

	for i, rule := range ap.Rules {
		rp := p.Child("rules").Index(i)
		if rule == nil {
			v.invalid(rp, nil, "must not be null")
			continue
		}
		var fromExists, toExists, tcpInFrom, tcpInTo bool
		if len(rule.From) > 512 {
			v.add(field.TooMany(rp.Child("from"), len(rule.From), 512))
		}
		for j, from := range rule.From {
			fp := rp.Child("from").Index(j)
			switch {
			case from == nil:
				v.invalid(fp, nil, "must not be null")
			case from.Source == nil:
				v.required(fp.Child("source"), "each from needs a source")
			default:
				fromExists = true
				if v.source(fp.Child("source"), from.Source, custom) {
					tcpInFrom = true
				}
			}
		}
		for j, to := range rule.To {
			tp := rp.Child("to").Index(j)
			switch {
			case to == nil:
				v.invalid(tp, nil, "must not be null")
			case to.Operation == nil:
				v.required(tp.Child("operation"), "each to needs an operation")
			default:
				toExists = true
				if v.operation(tp.Child("operation"), to.Operation) {
					tcpInTo = true
				}
			}
		}
		for j, c := range rule.When {
			v.condition(rp.Child("when").Index(j), c, custom)
		}
		if ap.Action == security.AuthorizationPolicy_DENY && ((fromExists && !toExists && !tcpInFrom) || (toExists && !tcpInTo)) {
			v.warn(rp, "this DENY rule uses only HTTP attributes, so it denies all traffic to TCP ports in its scope; "+
				"specify the ports explicitly")
		}
	}
}

// source checks a rule's source and reports whether it uses attributes that also apply to TCP traffic.
func (v *validator) source(p *field.Path, s *security.Source, custom bool) (tcp bool) {
	lists := sourceLists(s)
	empty := true
	for _, l := range lists {
		if len(l.values) > 0 {
			empty = false
			if contains(tcpSourceFields, l.name) {
				tcp = true
			}
			if custom && contains(customUnsupportedSource, l.name) {
				v.forbidden(p.Child(l.name), "not supported with action CUSTOM")
			}
		}
	}
	if empty {
		v.required(p, "a source must set at least one field")
		return tcp
	}
	if len(s.ServiceAccounts)+len(s.NotServiceAccounts) > 0 &&
		len(s.Principals)+len(s.NotPrincipals)+len(s.Namespaces)+len(s.NotNamespaces) > 0 {
		name := "serviceAccounts"
		if len(s.ServiceAccounts) == 0 {
			name = "notServiceAccounts"
		}
		v.forbidden(p.Child(name), "cannot be set together with principals or namespaces")
	}
	for _, l := range lists {
		lp := p.Child(l.name)
		switch l.name {
		case "serviceAccounts", "notServiceAccounts":
			v.serviceAccounts(lp, l.values)
		case "trustDomains", "notTrustDomains":
			v.wildcardValues(lp, l.values, true)
		default:
			v.nonEmptyValues(lp, l.values)
			if strings.Contains(l.name, "pBlocks") { // ipBlocks, remoteIpBlocks and their not- forms
				v.ipBlocks(lp, l.values)
			}
		}
	}
	return tcp
}

// operation checks a rule's operation and reports whether it names ports (the only TCP attributes).
func (v *validator) operation(p *field.Path, o *security.Operation) (tcp bool) {
	empty := true
	for _, l := range operationLists(o) {
		if len(l.values) > 0 {
			empty = false
		}
		v.nonEmptyValues(p.Child(l.name), l.values)
		switch l.name {
		case "ports", "notPorts":
			v.authzPorts(p.Child(l.name), l.values)
		case "paths", "notPaths":
			v.pathTemplates(p.Child(l.name), l.values)
		}
	}
	if empty {
		v.required(p, "an operation must set at least one field")
	}
	return len(o.Ports) > 0 || len(o.NotPorts) > 0
}

func (v *validator) nonEmptyValues(p *field.Path, values []string) {
	for i, s := range values {
		if s == "" {
			v.invalid(p.Index(i), s, "must not be empty")
		}
	}
}

func (v *validator) ipBlocks(p *field.Path, values []string) {
	for i, s := range values {
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			if _, err := netip.ParsePrefix(s); err != nil {
				v.invalid(p.Index(i), s, "not a valid CIDR range")
			}
		} else if !isIP(s) {
			v.invalid(p.Index(i), s, "not a valid IP address")
		}
	}
}

// authzPorts checks port strings: decimal numbers up to 65535.
func (v *validator) authzPorts(p *field.Path, values []string) {
	for i, s := range values {
		if s == "" {
			continue
		}
		if n, err := strconv.ParseUint(s, 10, 32); err != nil || n > 65535 {
			v.invalid(p.Index(i), s, "must be a port number between 0 and 65535")
		}
	}
}

// serviceAccounts checks `<serviceaccount>` or `<namespace>/<serviceaccount>` values, without wildcards.
func (v *validator) serviceAccounts(p *field.Path, values []string) {
	if len(values) > 16 {
		v.add(field.TooMany(p, len(values), 16))
	}
	for i, s := range values {
		ip := p.Index(i)
		switch {
		case s == "":
			v.invalid(ip, s, "must not be empty")
		case strings.Contains(s, "*"):
			v.invalid(ip, s, "wildcards are not allowed in service accounts")
		case strings.Count(s, "/") > 1:
			v.invalid(ip, s, "must be <serviceaccount> or <namespace>/<serviceaccount>")
		case len(s) > 320:
			v.add(field.TooLong(ip, s, 320))
		default:
			if ns, sa, ok := strings.Cut(s, "/"); ok && (ns == "" || sa == "") {
				v.invalid(ip, s, "must be <serviceaccount> or <namespace>/<serviceaccount>, with neither part empty")
			}
		}
	}
}

// wildcardValues allows one * at the start or the end (exact, prefix, suffix or presence match).
func (v *validator) wildcardValues(p *field.Path, values []string, trustDomain bool) {
	for i, s := range values {
		ip := p.Index(i)
		n := strings.Count(s, "*")
		switch {
		case s == "":
			v.invalid(ip, s, "must not be empty")
		case n > 1:
			v.invalid(ip, s, "at most one * wildcard is allowed")
		case n == 1 && s != "*" && !strings.HasPrefix(s, "*") && !strings.HasSuffix(s, "*"):
			v.invalid(ip, s, "a * wildcard is only allowed at the start or the end")
		case trustDomain && strings.Contains(s, "/"):
			v.invalid(ip, s, "a trust domain cannot contain /")
		}
	}
}

var pathLiteral = regexp.MustCompile(`^[a-zA-Z0-9-._~%!$&'()+,;:@=]+$`)

// pathTemplates checks paths using Istio's templates: {*} matches one segment, {**} the rest (last only).
func (v *validator) pathTemplates(p *field.Path, paths []string) {
	for i, path := range paths {
		templated := strings.Contains(path, "{*}") || strings.Contains(path, "{**}")
		matchAny := false
		for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
			if (seg == "{*}" || seg == "{**}") && matchAny {
				v.invalid(p.Index(i), path, "{**} must be the last segment of a path template")
				break
			}
			if seg == "{*}" {
				continue
			}
			if seg == "{**}" {
				matchAny = true
				continue
			}
			if strings.ContainsAny(seg, "{}") {
				v.invalid(p.Index(i), path, "{ and } are only allowed in the templates {*} and {**}")
				break
			}
			if templated && !pathLiteral.MatchString(seg) {
				v.invalid(p.Index(i), path, fmt.Sprintf("segment %q of a path template has invalid characters", seg))
				break
			}
		}
	}
}

// condition checks a when condition: its key must be one of Istio's attributes, its values fit the key.
func (v *validator) condition(p *field.Path, c *security.Condition, custom bool) {
	if c == nil {
		v.invalid(p, nil, "must not be null")
		return
	}
	kp := p.Child("key")
	if c.Key == "" {
		v.required(kp, "a condition needs a key")
		return
	}
	if custom && (contains(customUnsupportedKeys, c.Key) || strings.HasPrefix(c.Key, "request.auth.")) {
		v.forbidden(kp, fmt.Sprintf("%s is not supported with action CUSTOM", c.Key))
	}
	if len(c.Values) == 0 && len(c.NotValues) == 0 {
		v.required(p.Child("values"), fmt.Sprintf("at least one of values or notValues is required for key %s", c.Key))
		return
	}
	if msg := attributeKeyProblem(c.Key); msg != "" {
		v.invalid(kp, c.Key, msg)
		return
	}
	for _, l := range []namedList{{"values", c.Values}, {"notValues", c.NotValues}} {
		lp := p.Child(l.name)
		v.nonEmptyValues(lp, l.values)
		switch c.Key {
		case "source.ip", "remote.ip", "destination.ip":
			v.ipBlocks(lp, l.values)
		case "destination.port":
			v.authzPorts(lp, l.values)
		case "source.serviceAccount":
			v.serviceAccounts(lp, l.values)
		case "source.trustDomain":
			v.wildcardValues(lp, l.values, false)
		}
	}
}

// attributeKeyProblem returns why key is not a condition key Istio knows ("" when it is one).
func attributeKeyProblem(key string) string {
	switch key {
	case "source.ip", "remote.ip", "source.namespace", "source.serviceAccount", "source.principal", "source.trustDomain",
		"request.auth.principal", "request.auth.audiences", "request.auth.presenter", "destination.ip",
		"destination.port", "connection.sni":
		return ""
	case "destination.namespace":
		return "destination.namespace is replaced by the policy's metadata.namespace"
	case "destination.name", "destination.user":
		return fmt.Sprintf("%s is deprecated: only supported in v1alpha1", key)
	}
	for _, prefix := range []string{"request.headers", "request.auth.claims", "experimental.envoy.filters."} {
		if strings.HasPrefix(key, prefix) {
			open := strings.Index(key, "[")
			if strings.HasSuffix(key, "]") && open > 0 && open < len(key)-2 {
				return ""
			}
			return fmt.Sprintf("must have the form %s[<name>]", strings.TrimSuffix(prefix, "."))
		}
	}
	if strings.HasPrefix(key, "destination.labels") {
		return "destination.labels is replaced by the policy's selector"
	}
	return "unknown attribute; see https://istio.io/latest/docs/reference/config/security/conditions/"
}

// ======== PeerAuthentication ========

var mtlsModes = []string{"UNSET", "DISABLE", "PERMISSIVE", "STRICT"}

func (v *validator) peerAuthentication(o *securityv1.PeerAuthentication) {
	pa := &o.Spec
	p := field.NewPath("spec")
	if len(pa.PortLevelMtls) > 0 && len(pa.GetSelector().GetMatchLabels()) == 0 {
		v.forbidden(p.Child("portLevelMtls"), "needs a selector with matchLabels: a mesh-wide or namespace-wide "+
			"PeerAuthentication cannot set port-level mTLS")
	}
	if m := pa.GetMtls(); m != nil {
		v.mtlsMode(p.Child("mtls", "mode"), m.Mode)
	}
	ports := make([]int, 0, len(pa.PortLevelMtls))
	for port := range pa.PortLevelMtls {
		ports = append(ports, int(port))
	}
	sort.Ints(ports)
	for _, port := range ports {
		pp := p.Child("portLevelMtls").Key(strconv.Itoa(port))
		if port < 1 || port > 65535 {
			v.invalid(pp, port, "port must be between 1 and 65535")
		}
		if m := pa.PortLevelMtls[uint32(port)]; m != nil {
			v.mtlsMode(pp.Child("mode"), m.Mode)
		}
	}
	v.workloadSelector(p.Child("selector"), pa.GetSelector().GetMatchLabels(), pa.Selector != nil)
}

func (v *validator) mtlsMode(p *field.Path, m security.PeerAuthentication_MutualTLS_Mode) {
	if _, ok := security.PeerAuthentication_MutualTLS_Mode_name[int32(m)]; !ok {
		v.add(field.NotSupported(p, m.String(), mtlsModes))
	}
}

// ======== RequestAuthentication ========

func (v *validator) requestAuthentication(o *securityv1.RequestAuthentication) {
	ra := &o.Spec
	p := field.NewPath("spec")
	v.policyTargets(p, ra.Selector, ra.TargetRef, ra.TargetRefs)
	if len(ra.JwtRules) > 4096 {
		v.add(field.TooMany(p.Child("jwtRules"), len(ra.JwtRules), 4096))
	}
	for i, r := range ra.JwtRules {
		if r != nil {
			v.jwtRule(p.Child("jwtRules").Index(i), r)
		}
	}
}

func (v *validator) jwtRule(p *field.Path, r *security.JWTRule) {
	v.nonEmptyValues(p.Child("audiences"), r.Audiences)
	if r.Issuer == "" && r.JwksUri == "" {
		v.required(p.Child("issuer"), "issuer or jwksUri is required")
	}
	if r.JwksUri != "" {
		up := p.Child("jwksUri")
		if msg := jwksURIProblem(r.JwksUri); msg != "" {
			v.invalid(up, r.JwksUri, msg)
		}
		if len(r.JwksUri) > 2048 {
			v.add(field.TooLong(up, r.JwksUri, 2048))
		}
		if r.Jwks != "" {
			v.forbidden(p.Child("jwks"), "cannot be set together with jwksUri")
		}
	}
	if r.Jwks != "" {
		msg, private := jwksProblem(r.Jwks)
		if msg != "" {
			v.invalid(p.Child("jwks"), field.OmitValueType{}, msg)
		}
		for _, k := range private {
			v.warn(p.Child("jwks"), "key %d contains private key material; only public keys are used to verify tokens", k)
		}
	}
	for i, h := range r.FromHeaders {
		hp := p.Child("fromHeaders").Index(i)
		if h == nil {
			v.invalid(hp, nil, "must not be null")
		} else if h.Name == "" {
			v.required(hp.Child("name"), "the header name is required")
		}
	}
	v.nonEmptyValues(p.Child("fromParams"), r.FromParams)
	v.nonEmptyValues(p.Child("fromCookies"), r.FromCookies)
	if r.OutputPayloadToHeader != "" && !headerNameRegexp.MatchString(r.OutputPayloadToHeader) {
		// Not checked by Istio's webhook, but Envoy rejects the configuration.
		v.invalid(p.Child("outputPayloadToHeader"), r.OutputPayloadToHeader, "not a valid HTTP header name")
	}
	for i, c := range r.OutputClaimToHeaders {
		cp := p.Child("outputClaimToHeaders").Index(i)
		switch {
		case c == nil:
			v.invalid(cp, nil, "must not be null")
		case c.Claim == "" || c.Header == "":
			if c.Claim == "" {
				v.required(cp.Child("claim"), "claim and header are both required")
			}
			if c.Header == "" {
				v.required(cp.Child("header"), "claim and header are both required")
			}
		case !strictHeaderNameRegexp.MatchString(c.Header):
			v.invalid(cp.Child("header"), c.Header, "header names here may only contain letters, digits, - and _")
		}
	}
	v.duration(p.Child("timeout"), r.Timeout)
	if len(r.SpaceDelimitedClaims) > 64 {
		v.add(field.TooMany(p.Child("spaceDelimitedClaims"), len(r.SpaceDelimitedClaims), 64))
	}
	v.nonEmptyValues(p.Child("spaceDelimitedClaims"), r.SpaceDelimitedClaims)
}

// jwksURIProblem returns why u cannot be fetched as a JWKS ("" when it can): an http or https URL with a
// numeric port, if any.
func jwksURIProblem(u string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return fmt.Sprintf("not a valid URL: %v", err)
	}
	if parsed.Scheme != "http" && parsed.Scheme != "https" {
		return fmt.Sprintf("must be an http:// or https:// URL (scheme %q is not supported)", parsed.Scheme)
	}
	if port := parsed.Port(); port != "" {
		if _, err := strconv.Atoi(port); err != nil {
			return fmt.Sprintf("port %q is not a number", port)
		}
	}
	return ""
}

// jwksProblem checks an inline JSON Web Key Set (or a single JWK): every key has a supported kty and the
// members that kty requires. It also returns the indexes of keys holding private or symmetric key material.
func jwksProblem(s string) (string, []int) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return fmt.Sprintf("not a valid JWKS: %v", err), nil
	}
	var keys []map[string]any
	if raw, ok := doc["keys"]; ok {
		if err := json.Unmarshal(raw, &keys); err != nil {
			return "not a valid JWKS: keys must be an array of JSON objects", nil
		}
	} else {
		var key map[string]any
		_ = json.Unmarshal([]byte(s), &key)
		keys = []map[string]any{key}
	}
	required := map[string][]string{"RSA": {"n", "e"}, "EC": {"crv", "x", "y"}, "OKP": {"crv", "x"}, "oct": {"k"}}
	var private []int
	for i, k := range keys {
		kty, _ := k["kty"].(string)
		members, ok := required[kty]
		if !ok {
			return fmt.Sprintf("not a valid JWKS: key %d has no supported kty (RSA, EC, OKP or oct)", i), nil
		}
		for _, m := range members {
			if _, ok := k[m]; !ok {
				return fmt.Sprintf("not a valid JWKS: %s key %d has no %q", kty, i, m), nil
			}
		}
		if _, ok := k["d"]; ok || kty == "oct" {
			private = append(private, i)
		}
	}
	return "", private
}
