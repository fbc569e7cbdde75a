package waypoints

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/controlplane/kube"
	"github.com/meshlab/meshlab/controlplane/model"
)

// Ingress gateways (Istio's "deployment controller" for class istio).
const (
	// IngressClassName is the GatewayClass of ingress gateways.
	IngressClassName = model.IngressGatewayClass
	// IngressControllerName is its controllerName, Istio's.
	IngressControllerName = kube.GatewayControllerName
	// IngressManagedValue is the gateway.istio.io/managed value on what the controller creates for an
	// ingress gateway (Istio's).
	IngressManagedValue = "istio.io-gateway-controller"
	// AnnotationServiceType picks the ingress Service's type (Istio's; LoadBalancer by default).
	AnnotationServiceType = "networking.istio.io/service-type"
	// Pod labels Istio's gateway template sets.
	labelInject              = "sidecar.istio.io/inject"
	labelCanonicalName       = "service.istio.io/canonical-name"
	labelCanonicalRevision   = "service.istio.io/canonical-revision"
	routeKindHTTPRoute       = gwv1.Kind("HTTPRoute")
	routeKindGRPCRoute       = gwv1.Kind("GRPCRoute")
	routeKindTCPRoute        = gwv1.Kind("TCPRoute")
	gatewayAPIGroup          = gwv1.Group(gwv1.GroupName)
	reasonAddressNotAssigned = "AddressNotAssigned"
)

// IngressClass is the istio GatewayClass the controller creates when it is missing.
func IngressClass() *gwv1.GatewayClass {
	return &gwv1.GatewayClass{
		TypeMeta:   metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "GatewayClass"},
		ObjectMeta: metav1.ObjectMeta{Name: IngressClassName, Labels: map[string]string{LabelManaged: IngressManagedValue}},
		Spec: gwv1.GatewayClassSpec{
			ControllerName: IngressControllerName,
			Description:    ptr.To("meshlab ingress gateways, run by `meshlab proxy router`"),
		},
	}
}

// IngressObjects returns the ServiceAccount, Deployment and Service an ingress Gateway should have, named
// NAME-istio as Istio names them: the Service has the status port and one port per listener port, and
// is a LoadBalancer unless the Gateway's networking.istio.io/service-type annotation says otherwise.
func IngressObjects(gw *gwv1.Gateway, opts Options) (*corev1.ServiceAccount, *appsv1.Deployment, *corev1.Service) {
	name := model.GatewayDeploymentName(gw.Name)
	svcPorts := []corev1.ServicePort{{Name: "status-port", Port: StatusPort, Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("tcp")}}
	var ports []corev1.ContainerPort
	seen := map[gwv1.PortNumber]bool{}
	for _, l := range gw.Spec.Listeners {
		if seen[l.Port] {
			continue
		}
		seen[l.Port] = true
		svcPorts = append(svcPorts, corev1.ServicePort{Name: portName(l), Port: int32(l.Port), Protocol: corev1.ProtocolTCP,
			AppProtocol: ptr.To(strings.ToLower(string(l.Protocol)))})
		ports = append(ports, corev1.ContainerPort{ContainerPort: int32(l.Port), Protocol: corev1.ProtocolTCP})
	}
	svcType := corev1.ServiceTypeLoadBalancer
	if t := gw.Annotations[AnnotationServiceType]; t != "" {
		svcType = corev1.ServiceType(t)
	}
	lbls := map[string]string{
		model.LabelGatewayName:      gw.Name,
		model.LabelGatewayClassName: string(gw.Spec.GatewayClassName),
		LabelManaged:                IngressManagedValue,
	}
	return proxyObjects(gw, opts, proxySpec{
		name: name, serviceName: name, labels: lbls,
		podLabels: map[string]string{
			labelInject:            "false",
			labelCanonicalName:     name,
			labelCanonicalRevision: "latest",
		},
		args: []string{"proxy", "router"},
		env: []corev1.EnvVar{
			{Name: "GATEWAY_NAME", Value: gw.Name},
			{Name: "CA_ADDR", Value: opts.controlPlane()},
			{Name: "DISCOVERY_ADDRESS", Value: opts.controlPlane()},
		},
		ports:        ports,
		servicePorts: svcPorts,
		serviceType:  svcType,
		lowPorts:     true,
	})
}

// portName is a listener's name made a valid Service port name (lower case, at most 15 characters).
func portName(l gwv1.Listener) string {
	n := strings.ToLower(string(l.Name))
	if len(n) > 15 {
		n = n[:15]
	}
	return strings.Trim(n, "-")
}

// ingressStatus is the Programmed condition, addresses and listener statuses of an ingress Gateway: the
// address is the load balancer's once it has one, the Service's hostname for other types (as Istio
// reports them), and attachedRoutes counts the routes model.ListenerAttaches attaches.
func (c *Controller) ingressStatus(gw *gwv1.Gateway) (metav1.Condition, []gwv1.GatewayStatusAddress, []gwv1.ListenerStatus) {
	name := model.GatewayDeploymentName(gw.Name)
	programmed := metav1.Condition{Type: string(gwv1.GatewayConditionProgrammed), ObservedGeneration: gw.Generation}
	var available int32
	if dep, err := c.deployments.Deployments(gw.Namespace).Get(name); err == nil {
		available = dep.Status.AvailableReplicas
	}
	host := model.FQDN(name, gw.Namespace)
	var addresses []gwv1.GatewayStatusAddress
	pending := false
	svc, err := c.services.Services(gw.Namespace).Get(name)
	switch {
	case err != nil:
		pending = true
	case svc.Spec.Type == corev1.ServiceTypeLoadBalancer:
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				addresses = append(addresses, gwv1.GatewayStatusAddress{Type: ptr.To(gwv1.IPAddressType), Value: in.IP})
			} else if in.Hostname != "" {
				addresses = append(addresses, gwv1.GatewayStatusAddress{Type: ptr.To(gwv1.HostnameAddressType), Value: in.Hostname})
			}
		}
		pending = len(addresses) == 0
	default:
		addresses = []gwv1.GatewayStatusAddress{{Type: ptr.To(gwv1.HostnameAddressType), Value: host}}
	}
	var assigned []string
	for _, l := range gw.Spec.Listeners {
		assigned = append(assigned, fmt.Sprintf("%s:%d", host, l.Port))
	}
	switch {
	case err != nil:
		programmed.Status, programmed.Reason, programmed.Message = metav1.ConditionFalse, string(gwv1.GatewayReasonPending), "Waiting for Service "+name
	case pending:
		programmed.Status, programmed.Reason = metav1.ConditionFalse, reasonAddressNotAssigned
		programmed.Message = fmt.Sprintf("Assigned to service(s) %s, but failed to assign to all requested addresses: address pending for hostname %q",
			strings.Join(assigned, ", "), host)
		addresses = []gwv1.GatewayStatusAddress{{Type: ptr.To(gwv1.HostnameAddressType), Value: host}}
	case available == 0:
		programmed.Status, programmed.Reason, programmed.Message = metav1.ConditionFalse, string(gwv1.GatewayReasonPending), "Waiting for Deployment "+name+" to have an available replica"
	default:
		programmed.Status, programmed.Reason = metav1.ConditionTrue, string(gwv1.GatewayReasonProgrammed)
		programmed.Message = "Resource programmed, assigned to service(s) " + strings.Join(assigned, ", ")
	}
	return programmed, addresses, c.ingressListeners(gw, programmed.Status == metav1.ConditionTrue)
}

// ingressListeners are the listener statuses of an ingress Gateway: an HTTP listener is accepted and counts
// its HTTPRoutes and GRPCRoutes, a TCP listener its TCPRoutes; any other protocol is not accepted
// (UnsupportedProtocol), as meshlab does not serve it.
func (c *Controller) ingressListeners(gw *gwv1.Gateway, programmed bool) []gwv1.ListenerStatus {
	// Attachment reads a route's namespace, parents and hostnames, which every route kind has (a TCPRoute no
	// hostnames); HTTPRoutes and GRPCRoutes attach to HTTP listeners, TCPRoutes to TCP listeners.
	type attachable struct {
		ns        string
		parents   []gwv1.ParentReference
		hostnames []gwv1.Hostname
	}
	var httpRoutes, tcpRoutes []attachable
	hrs, _ := c.routes.List(labels.Everything())
	for _, r := range hrs {
		httpRoutes = append(httpRoutes, attachable{r.Namespace, r.Spec.ParentRefs, r.Spec.Hostnames})
	}
	grs, _ := c.grpcRoutes.List(labels.Everything())
	for _, r := range grs {
		httpRoutes = append(httpRoutes, attachable{r.Namespace, r.Spec.ParentRefs, r.Spec.Hostnames})
	}
	trs, _ := c.tcpRoutes.List(labels.Everything())
	for _, r := range trs {
		tcpRoutes = append(tcpRoutes, attachable{r.Namespace, r.Spec.ParentRefs, nil})
	}
	var out []gwv1.ListenerStatus
	for _, l := range gw.Spec.Listeners {
		ls := gwv1.ListenerStatus{Name: l.Name, SupportedKinds: []gwv1.RouteGroupKind{}}
		for _, prev := range gw.Status.Listeners {
			if prev.Name == l.Name {
				ls.Conditions = prev.Conditions
			}
		}
		set := func(t gwv1.ListenerConditionType, ok bool, reason gwv1.ListenerConditionReason, msg string) {
			st := metav1.ConditionTrue
			if !ok {
				st = metav1.ConditionFalse
			}
			meta.SetStatusCondition(&ls.Conditions, metav1.Condition{Type: string(t), Status: st, Reason: string(reason), Message: msg, ObservedGeneration: gw.Generation})
		}
		if l.Protocol != gwv1.HTTPProtocolType && l.Protocol != gwv1.TCPProtocolType {
			msg := fmt.Sprintf("protocol %s is not supported by meshlab's gateway (only HTTP and TCP)", l.Protocol)
			set(gwv1.ListenerConditionAccepted, false, gwv1.ListenerReasonUnsupportedProtocol, msg)
			set(gwv1.ListenerConditionProgrammed, false, gwv1.ListenerReasonInvalid, msg)
			set(gwv1.ListenerConditionResolvedRefs, true, gwv1.ListenerReasonResolvedRefs, "No errors found")
			out = append(out, ls)
			continue
		}
		ls.SupportedKinds = []gwv1.RouteGroupKind{{Group: ptr.To(gatewayAPIGroup), Kind: routeKindHTTPRoute}, {Group: ptr.To(gatewayAPIGroup), Kind: routeKindGRPCRoute}}
		routes := httpRoutes
		if l.Protocol == gwv1.TCPProtocolType {
			ls.SupportedKinds, routes = []gwv1.RouteGroupKind{{Group: ptr.To(gatewayAPIGroup), Kind: routeKindTCPRoute}}, tcpRoutes
		}
		for _, r := range routes {
			for _, ref := range r.parents {
				if !refersTo(ref, r.ns, gw) {
					continue
				}
				if _, ok := model.ListenerAttaches(gw, l, r.ns, r.hostnames, ref); ok {
					ls.AttachedRoutes++
					break
				}
			}
		}
		set(gwv1.ListenerConditionAccepted, true, gwv1.ListenerReasonAccepted, "No errors found")
		if programmed {
			set(gwv1.ListenerConditionProgrammed, true, gwv1.ListenerReasonProgrammed, "No errors found")
		} else {
			set(gwv1.ListenerConditionProgrammed, false, gwv1.ListenerReasonPending, "Waiting for the gateway's Deployment and address")
		}
		set(gwv1.ListenerConditionResolvedRefs, true, gwv1.ListenerReasonResolvedRefs, "No errors found")
		out = append(out, ls)
	}
	return out
}

// refersTo reports whether a parentRef of a route in namespace ns names gw.
func refersTo(ref gwv1.ParentReference, ns string, gw *gwv1.Gateway) bool {
	if ref.Group != nil && *ref.Group != gatewayAPIGroup {
		return false
	}
	if ref.Kind != nil && *ref.Kind != "Gateway" {
		return false
	}
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	return ns == gw.Namespace && string(ref.Name) == gw.Name
}
