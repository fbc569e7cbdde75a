package validation

import (
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The rules for the Kubernetes and Gateway API kinds meshlab reads are a subset of what the API server
// enforces (its built-in validation for core kinds, the OpenAPI and CEL rules of the Gateway API CRDs): the
// rules whose breach would otherwise be read silently into a wrong model, such as a negative weight or a
// port out of range. Unknown fields are found by ValidateYAML's strict decoding.

// ======== Kubernetes ========

var serviceProtocols = []string{string(corev1.ProtocolTCP), string(corev1.ProtocolUDP), string(corev1.ProtocolSCTP)}

func (v *validator) service(o *corev1.Service) {
	p := field.NewPath("spec")
	names := map[string]bool{}
	for i, port := range o.Spec.Ports {
		pp := p.Child("ports").Index(i)
		if len(o.Spec.Ports) > 1 && port.Name == "" {
			v.required(pp.Child("name"), "every port must be named when a Service has more than one")
		}
		if port.Name != "" {
			for _, msg := range k8svalidation.IsDNS1123Label(port.Name) {
				v.invalid(pp.Child("name"), port.Name, msg)
			}
			if names[port.Name] {
				v.add(field.Duplicate(pp.Child("name"), port.Name))
			}
			names[port.Name] = true
		}
		v.kubePort(pp.Child("port"), port.Port, false)
		if port.Protocol != "" && !contains(serviceProtocols, string(port.Protocol)) {
			v.add(field.NotSupported(pp.Child("protocol"), port.Protocol, serviceProtocols))
		}
		switch {
		case port.TargetPort.StrVal != "":
			for _, msg := range k8svalidation.IsValidPortName(port.TargetPort.StrVal) {
				v.invalid(pp.Child("targetPort"), port.TargetPort.StrVal, msg)
			}
		case port.TargetPort.IntVal != 0:
			v.kubePort(pp.Child("targetPort"), port.TargetPort.IntVal, false)
		}
	}
	switch ip := o.Spec.ClusterIP; ip {
	case "", corev1.ClusterIPNone:
	default:
		if !isIP(ip) {
			v.invalid(p.Child("clusterIP"), ip, `must be an IP address or "None"`)
		}
	}
	switch o.Spec.Type {
	case "", corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName:
	default:
		v.add(field.NotSupported(p.Child("type"), o.Spec.Type, []string{"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}))
	}
	v.labels(p.Child("selector"), o.Spec.Selector)
}

func (v *validator) pod(o *corev1.Pod) {
	p := field.NewPath("spec")
	names := map[string]bool{}
	for i, c := range o.Spec.Containers {
		cp := p.Child("containers").Index(i)
		if c.Name == "" {
			v.required(cp.Child("name"), "")
		} else {
			for _, msg := range k8svalidation.IsDNS1123Label(c.Name) {
				v.invalid(cp.Child("name"), c.Name, msg)
			}
			if names[c.Name] {
				v.add(field.Duplicate(cp.Child("name"), c.Name))
			}
			names[c.Name] = true
		}
		for j, port := range c.Ports {
			v.kubePort(cp.Child("ports").Index(j).Child("containerPort"), port.ContainerPort, false)
		}
	}
	if o.Spec.ServiceAccountName != "" {
		for _, msg := range k8svalidation.IsDNS1123Subdomain(o.Spec.ServiceAccountName) {
			v.invalid(p.Child("serviceAccountName"), o.Spec.ServiceAccountName, msg)
		}
	}
	sp := field.NewPath("status")
	if ip := o.Status.PodIP; ip != "" && !isIP(ip) {
		v.invalid(sp.Child("podIP"), ip, "must be an IP address")
	}
	for i, ip := range o.Status.PodIPs {
		if !isIP(ip.IP) {
			v.invalid(sp.Child("podIPs").Index(i).Child("ip"), ip.IP, "must be an IP address")
		}
	}
}

var addressTypes = []string{string(discoveryv1.AddressTypeIPv4), string(discoveryv1.AddressTypeIPv6), string(discoveryv1.AddressTypeFQDN)}

func (v *validator) endpointSlice(o *discoveryv1.EndpointSlice) {
	if !contains(addressTypes, string(o.AddressType)) {
		v.add(field.NotSupported(field.NewPath("addressType"), o.AddressType, addressTypes))
	}
	for i, e := range o.Endpoints {
		ep := field.NewPath("endpoints").Index(i)
		if len(e.Addresses) == 0 {
			v.required(ep.Child("addresses"), "must contain at least one address")
		}
		for j, a := range e.Addresses {
			if o.AddressType != discoveryv1.AddressTypeFQDN && !isIP(a) {
				v.invalid(ep.Child("addresses").Index(j), a, "must be an IP address")
			}
		}
	}
	for i, port := range o.Ports {
		if port.Port != nil {
			v.kubePort(field.NewPath("ports").Index(i).Child("port"), *port.Port, true)
		}
	}
}

// kubePort checks a port number: 1-65535, or 0 too when zeroOK.
func (v *validator) kubePort(p *field.Path, n int32, zeroOK bool) {
	if n == 0 && zeroOK {
		return
	}
	if n < 1 || n > 65535 {
		v.invalid(p, n, "must be between 1 and 65535, inclusive")
	}
}

// ======== Gateway API ========

// gatewayAPIHostname checks a Gateway API Hostname: a DNS subdomain, optionally with a leading "*." label,
// never an IP address.
func (v *validator) gatewayAPIHostname(p *field.Path, h string) {
	name := strings.TrimPrefix(h, "*.")
	switch {
	case isIP(h):
		v.invalid(p, h, "must be a hostname, not an IP address")
	case strings.Contains(name, "*"):
		v.invalid(p, h, `a wildcard is only allowed as the whole first label ("*.example.com")`)
	default:
		for _, msg := range k8svalidation.IsDNS1123Subdomain(name) {
			v.invalid(p, h, msg)
		}
	}
}

func (v *validator) gatewayClass(o *gwv1.GatewayClass) {
	p := field.NewPath("spec", "controllerName")
	c := string(o.Spec.ControllerName)
	if c == "" {
		v.required(p, "")
		return
	}
	for _, msg := range k8svalidation.IsDomainPrefixedPath(p, c) {
		v.add(msg)
	}
}

func (v *validator) gatewayAPIGateway(o *gwv1.Gateway) {
	p := field.NewPath("spec")
	if o.Spec.GatewayClassName == "" {
		v.required(p.Child("gatewayClassName"), "")
	}
	lp := p.Child("listeners")
	switch n := len(o.Spec.Listeners); {
	case n == 0:
		v.required(lp, "a Gateway needs at least one listener")
	case n > 64:
		v.add(field.TooMany(lp, n, 64))
	}
	names := map[gwv1.SectionName]bool{}
	for i, l := range o.Spec.Listeners {
		ip := lp.Index(i)
		if l.Name == "" {
			v.required(ip.Child("name"), "")
		} else {
			for _, msg := range k8svalidation.IsDNS1123Label(string(l.Name)) {
				v.invalid(ip.Child("name"), l.Name, msg)
			}
			if names[l.Name] {
				v.add(field.Duplicate(ip.Child("name"), l.Name))
			}
			names[l.Name] = true
		}
		v.kubePort(ip.Child("port"), l.Port, false)
		if l.Protocol == "" {
			v.required(ip.Child("protocol"), "")
		}
		if l.Hostname != nil {
			v.gatewayAPIHostname(ip.Child("hostname"), string(*l.Hostname))
		}
	}
}

// httpRouteAPI checks a Gateway API HTTPRoute (named so to stay apart from Istio's http routes).
func (v *validator) httpRouteAPI(o *gwv1.HTTPRoute) {
	p := field.NewPath("spec")
	v.routeCommon(p, o.Spec.ParentRefs, o.Spec.Hostnames, len(o.Spec.Rules))
	for i, r := range o.Spec.Rules {
		rp := p.Child("rules").Index(i)
		for j, m := range r.Matches {
			if m.Path == nil || m.Path.Value == nil {
				continue
			}
			mp := rp.Child("matches").Index(j).Child("path", "value")
			typ := gwv1.PathMatchPathPrefix
			if m.Path.Type != nil {
				typ = *m.Path.Type
			}
			val := *m.Path.Value
			if (typ == gwv1.PathMatchPathPrefix || typ == gwv1.PathMatchExact) && !strings.HasPrefix(val, "/") {
				v.invalid(mp, val, fmt.Sprintf("a %s path must start with /", typ))
			}
		}
		for j, b := range r.BackendRefs {
			v.backendRef(rp.Child("backendRefs").Index(j), b.BackendRef)
		}
	}
}

// grpcServiceName and grpcMethodName are the GRPCRoute CRD's patterns for an Exact method match.
var (
	grpcServiceName = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	grpcMethodName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
)

// grpcRouteAPI checks a Gateway API GRPCRoute: what it shares with an HTTPRoute, and its method matches
// (a service or a method; names in the CRD's pattern for Exact, compiling expressions for
// RegularExpression).
func (v *validator) grpcRouteAPI(o *gwv1.GRPCRoute) {
	p := field.NewPath("spec")
	v.routeCommon(p, o.Spec.ParentRefs, o.Spec.Hostnames, len(o.Spec.Rules))
	for i, r := range o.Spec.Rules {
		rp := p.Child("rules").Index(i)
		for j, m := range r.Matches {
			if m.Method == nil {
				continue
			}
			mp := rp.Child("matches").Index(j).Child("method")
			if m.Method.Service == nil && m.Method.Method == nil {
				v.required(mp, "one or both of service or method must be specified")
				continue
			}
			exact := m.Method.Type == nil || *m.Method.Type == gwv1.GRPCMethodMatchExact
			check := func(name string, val *string, pattern *regexp.Regexp) {
				if val == nil {
					return
				}
				if exact && !pattern.MatchString(*val) {
					v.invalid(mp.Child(name), *val, "must match "+pattern.String())
				}
				if !exact {
					if _, err := regexp.Compile(*val); err != nil {
						v.invalid(mp.Child(name), *val, "not a valid regular expression: "+err.Error())
					}
				}
			}
			check("service", m.Method.Service, grpcServiceName)
			check("method", m.Method.Method, grpcMethodName)
		}
		for j, b := range r.BackendRefs {
			v.backendRef(rp.Child("backendRefs").Index(j), b.BackendRef)
		}
	}
}

// tcpRouteAPI checks a Gateway API TCPRoute by its CRD's rules: parentRefs, exactly one rule, 1 to 16
// backendRefs, each valid and with a port when it names a Service.
func (v *validator) tcpRouteAPI(o *gwv1.TCPRoute) {
	p := field.NewPath("spec")
	v.routeCommon(p, o.Spec.ParentRefs, nil, 0)
	if n := len(o.Spec.Rules); n != 1 {
		v.invalid(p.Child("rules"), n, "must have exactly one rule")
	}
	for i, r := range o.Spec.Rules {
		rp := p.Child("rules").Index(i)
		switch n := len(r.BackendRefs); {
		case n == 0:
			v.required(rp.Child("backendRefs"), "at least one backendRef")
		case n > 16:
			v.add(field.TooMany(rp.Child("backendRefs"), n, 16))
		}
		for j, b := range r.BackendRefs {
			bp := rp.Child("backendRefs").Index(j)
			v.backendRef(bp, b)
			if b.Port == nil && isServiceBackend(b) {
				v.required(bp.Child("port"), "Must have port for Service reference")
			}
		}
	}
}

// isServiceBackend reports whether a backendRef names a core Service (its kind defaults to Service).
func isServiceBackend(b gwv1.BackendRef) bool {
	return (b.Group == nil || *b.Group == "") && (b.Kind == nil || *b.Kind == "Service")
}

// routeCommon checks what every Gateway API route kind has: parentRefs, hostnames and the number of rules.
func (v *validator) routeCommon(p *field.Path, parents []gwv1.ParentReference, hostnames []gwv1.Hostname, rules int) {
	if n := len(parents); n > 32 {
		v.add(field.TooMany(p.Child("parentRefs"), n, 32))
	}
	for i, ref := range parents {
		if ref.Name == "" {
			v.required(p.Child("parentRefs").Index(i).Child("name"), "")
		}
		if ref.Port != nil {
			v.kubePort(p.Child("parentRefs").Index(i).Child("port"), *ref.Port, false)
		}
	}
	if n := len(hostnames); n > 16 {
		v.add(field.TooMany(p.Child("hostnames"), n, 16))
	}
	for i, h := range hostnames {
		v.gatewayAPIHostname(p.Child("hostnames").Index(i), string(h))
	}
	if rules > 16 {
		v.add(field.TooMany(p.Child("rules"), rules, 16))
	}
}

// backendRef checks a route's backendRef: a name, a valid port, a weight in [0, 1000000].
func (v *validator) backendRef(bp *field.Path, b gwv1.BackendRef) {
	if b.Name == "" {
		v.required(bp.Child("name"), "")
	}
	if b.Port != nil {
		v.kubePort(bp.Child("port"), *b.Port, false)
	}
	if b.Weight != nil {
		w := *b.Weight
		switch {
		case w < 0:
			v.invalid(bp.Child("weight"), w, "must not be negative")
		case w > 1000000:
			v.invalid(bp.Child("weight"), w, "must be at most 1000000")
		}
	}
}
