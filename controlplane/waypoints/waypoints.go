// Package waypoints is the waypoint controller: it turns every Gateway of class istio-waypoint into the
// workloads that run it — a ServiceAccount, a Deployment running `meshlab waypoint run` from the meshlab
// image, and a Service with the HBONE port 15008 — owned by the Gateway so that deleting the Gateway deletes
// them, and reports the Gateway Programmed (with the Service's ClusterIP as its address) once the
// Deployment is available. It also creates the istio-waypoint GatewayClass when it is missing.
//
// Names follow Istio: a Gateway NAME gets Deployment, ServiceAccount and Service NAME (Istio 1.22+); the
// older per-service-account form (annotation istio.io/for-service-account) gets Deployment and
// ServiceAccount NAME-istio-waypoint, and still a Service NAME.
//
// It is also Istio's gateway deployment controller for ingress gateways (ingress.go): a Gateway of class
// istio gets a ServiceAccount, Deployment (running `meshlab proxy router`) and Service NAME-istio, with
// the labels Istio's template sets, the Service's ports from the listeners plus the status port 15021, of
// type LoadBalancer unless annotation networking.istio.io/service-type says otherwise; its status carries
// Programmed, the address, and per listener Accepted/Programmed/ResolvedRefs and attachedRoutes. It
// creates the istio GatewayClass (controllerName istio.io/gateway-controller) when it is missing. Both
// kinds share one pod template (proxyObjects).
//
// It is written on plain client-go informers and a work queue, sharing the control plane's informer
// factories: the same watches feed the ingest store.
package waypoints

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"
	gwlisters "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/kube"
	"github.com/meshlab/meshlab/controlplane/model"
)

// Names and labels of what the controller creates.
const (
	GatewayClassName = model.WaypointGatewayClass
	ControllerName   = kube.ControllerName
	// LabelManaged marks objects the controller owns (Istio uses gateway.istio.io/managed too).
	LabelManaged = "gateway.istio.io/managed"
	ManagedValue = "meshlab.dev-waypoint-controller"
	// ContainerName is the proxy container's name, Istio's.
	ContainerName = "istio-proxy"
	// DefaultControlPlaneAddress is where waypoints find xDS and the CA.
	DefaultControlPlaneAddress = "istiod.istio-system.svc:15012"

	HBONEPort  = mesh.HBONEPort
	StatusPort = 15021
	StatsPort  = 15090
	// ProxyUID runs the proxy (Istio's 1337, excluded from capture).
	ProxyUID = 1337
	// Paths where the proxy finds the CA root and its token (Istio's).
	RootCertDir = "/var/run/secrets/istio"
	TokenDir    = "/var/run/secrets/tokens"
	TokenFile   = "istio-token"
	// TokenAudience is the audience of the token the proxy presents to the CA.
	TokenAudience = "istio-ca"
)

// DeploymentName returns the name of the Deployment (and ServiceAccount) that runs a waypoint Gateway.
func DeploymentName(gw *gwv1.Gateway) string {
	if gw.Annotations[model.AnnotationForServiceAcount] != "" {
		return gw.Name + "-istio-waypoint"
	}
	return gw.Name
}

// Options configure the controller.
type Options struct {
	// Image is the meshlab image the waypoint pods run (the control plane's own image). Required.
	Image string
	// ControlPlaneAddress is host:port of xDS and the CA (default DefaultControlPlaneAddress).
	ControlPlaneAddress string
	// Logf receives log lines.
	Logf func(string, ...any)
}

// Controller reconciles waypoint Gateways.
type Controller struct {
	kube  kubernetes.Interface
	gw    gwclient.Interface
	opts  Options
	queue workqueue.TypedRateLimitingInterface[string]

	gateways    gwlisters.GatewayLister
	classes     gwlisters.GatewayClassLister
	routes      gwlisters.HTTPRouteLister // for ingress listeners' attachedRoutes
	grpcRoutes  gwlisters.GRPCRouteLister
	tcpRoutes   gwlisters.TCPRouteLister
	deployments appslisters.DeploymentLister
	services    corelisters.ServiceLister
	synced      []cache.InformerSynced
}

// classKey is the queue key that means "check the GatewayClass".
const classKey = "/gatewayclass"

// New creates the controller and registers its informers on the shared factories; start the factories
// after New (again, if they already run: Start only starts informers not yet running).
func New(kc kubernetes.Interface, gc gwclient.Interface, kinf informers.SharedInformerFactory, ginf gwinformers.SharedInformerFactory, opts Options) *Controller {
	if opts.ControlPlaneAddress == "" {
		opts.ControlPlaneAddress = DefaultControlPlaneAddress
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	c := &Controller{
		kube: kc, gw: gc, opts: opts,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "waypoints"}),
	}
	gwInf := ginf.Gateway().V1().Gateways()
	classInf := ginf.Gateway().V1().GatewayClasses()
	routeInf := ginf.Gateway().V1().HTTPRoutes()
	grpcRouteInf := ginf.Gateway().V1().GRPCRoutes()
	tcpRouteInf := ginf.Gateway().V1().TCPRoutes()
	depInf := kinf.Apps().V1().Deployments()
	svcInf := kinf.Core().V1().Services()
	c.gateways, c.classes, c.deployments, c.services = gwInf.Lister(), classInf.Lister(), depInf.Lister(), svcInf.Lister()
	c.routes, c.grpcRoutes, c.tcpRoutes = routeInf.Lister(), grpcRouteInf.Lister(), tcpRouteInf.Lister()
	enqueueGateway := func(obj any) {
		if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(k)
		}
	}
	// Deployments and Services lead back to their Gateway through the gateway-name label.
	enqueueOwner := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if m, err := meta.Accessor(obj); err == nil {
			managed := m.GetLabels()[LabelManaged]
			if gw := m.GetLabels()[model.LabelGatewayName]; gw != "" && (managed == ManagedValue || managed == IngressManagedValue) {
				c.queue.Add(m.GetNamespace() + "/" + gw)
			}
		}
	}
	// HTTPRoutes, GRPCRoutes and TCPRoutes lead to the Gateways they name: their listeners count attached
	// routes.
	enqueueParents := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		var ns string
		var refs []gwv1.ParentReference
		switch r := obj.(type) {
		case *gwv1.HTTPRoute:
			ns, refs = r.Namespace, r.Spec.ParentRefs
		case *gwv1.GRPCRoute:
			ns, refs = r.Namespace, r.Spec.ParentRefs
		case *gwv1.TCPRoute:
			ns, refs = r.Namespace, r.Spec.ParentRefs
		default:
			return
		}
		for _, ref := range refs {
			if ref.Kind != nil && *ref.Kind != "Gateway" {
				continue
			}
			ns := ns
			if ref.Namespace != nil {
				ns = string(*ref.Namespace)
			}
			c.queue.Add(ns + "/" + string(ref.Name))
		}
	}
	handlers := func(fn func(any)) cache.ResourceEventHandlerFuncs {
		return cache.ResourceEventHandlerFuncs{AddFunc: fn, UpdateFunc: func(_, n any) { fn(n) }, DeleteFunc: fn}
	}
	for _, r := range []struct {
		inf cache.SharedIndexInformer
		fn  func(any)
	}{
		{gwInf.Informer(), enqueueGateway},
		{classInf.Informer(), func(any) { c.queue.Add(classKey) }},
		{routeInf.Informer(), enqueueParents},
		{grpcRouteInf.Informer(), enqueueParents},
		{tcpRouteInf.Informer(), enqueueParents},
		{depInf.Informer(), enqueueOwner},
		{svcInf.Informer(), enqueueOwner},
	} {
		if _, err := r.inf.AddEventHandler(handlers(r.fn)); err != nil {
			panic(fmt.Sprintf("adding an event handler: %v", err))
		}
		c.synced = append(c.synced, r.inf.HasSynced)
	}
	return c
}

// Run reconciles until ctx ends, with workers goroutines.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	c.queue.Add(classKey)
	for range max(workers, 1) {
		go func() {
			for c.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
}

func (c *Controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	var err error
	if key == classKey {
		err = c.ensureClasses(ctx)
	} else {
		ns, name, _ := cache.SplitMetaNamespaceKey(key)
		err = c.Reconcile(ctx, ns, name)
	}
	if err != nil {
		c.opts.Logf("waypoints: %s: %v (retrying)", key, err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

// WaypointClass is the istio-waypoint GatewayClass the controller creates when it is missing.
func WaypointClass() *gwv1.GatewayClass {
	return &gwv1.GatewayClass{
		TypeMeta:   metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "GatewayClass"},
		ObjectMeta: metav1.ObjectMeta{Name: GatewayClassName, Labels: map[string]string{LabelManaged: ManagedValue}},
		Spec: gwv1.GatewayClassSpec{
			ControllerName: ControllerName,
			// At most 64 characters: the Gateway API CRD's limit.
			Description: ptr.To("meshlab waypoints, run by `meshlab waypoint run`"),
		},
	}
}

// ensureClasses creates the istio-waypoint and istio GatewayClasses if absent and marks each Accepted when
// meshlab is its controller.
func (c *Controller) ensureClasses(ctx context.Context) error {
	if err := c.ensureClass(ctx, WaypointClass(), "Handled by meshlab's waypoint controller"); err != nil {
		return err
	}
	return c.ensureClass(ctx, IngressClass(), "Handled by meshlab's gateway controller")
}

func (c *Controller) ensureClass(ctx context.Context, want *gwv1.GatewayClass, message string) error {
	gc, err := c.classes.Get(want.Name)
	if apierrors.IsNotFound(err) {
		gc, err = c.gw.GatewayV1().GatewayClasses().Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // the informer will bring it, and another pass will accept it
		}
	}
	if err != nil {
		return fmt.Errorf("ensuring GatewayClass %s: %w", want.Name, err)
	}
	if gc.Spec.ControllerName != want.Spec.ControllerName {
		return nil // someone else's class of that name: leave it
	}
	cond := metav1.Condition{Type: string(gwv1.GatewayClassConditionStatusAccepted), Status: metav1.ConditionTrue,
		Reason: string(gwv1.GatewayClassReasonAccepted), Message: message, ObservedGeneration: gc.Generation}
	if cur := meta.FindStatusCondition(gc.Status.Conditions, cond.Type); cur != nil && cur.Status == cond.Status && cur.ObservedGeneration == cond.ObservedGeneration {
		return nil
	}
	gc = gc.DeepCopy()
	meta.SetStatusCondition(&gc.Status.Conditions, cond)
	if _, err := c.gw.GatewayV1().GatewayClasses().UpdateStatus(ctx, gc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("accepting GatewayClass %s: %w", gc.Name, err)
	}
	return nil
}

// Reconcile brings the objects of Gateway namespace/name to what they should be and updates its status.
func (c *Controller) Reconcile(ctx context.Context, namespace, name string) error {
	gw, err := c.gateways.Gateways(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil // owner references let the garbage collector delete what it owned
	}
	if err != nil {
		return err
	}
	var sa *corev1.ServiceAccount
	var dep *appsv1.Deployment
	var svc *corev1.Service
	switch string(gw.Spec.GatewayClassName) {
	case GatewayClassName:
		sa, dep, svc = Objects(gw, c.opts)
	case IngressClassName:
		sa, dep, svc = IngressObjects(gw, c.opts)
	default:
		return nil
	}
	if err := c.ensureServiceAccount(ctx, sa); err != nil {
		return err
	}
	if err := c.ensureService(ctx, svc); err != nil {
		return err
	}
	if err := c.ensureDeployment(ctx, dep); err != nil {
		return err
	}
	return c.updateStatus(ctx, gw)
}

// Objects returns the ServiceAccount, Deployment and Service a waypoint Gateway should have.
func Objects(gw *gwv1.Gateway, opts Options) (*corev1.ServiceAccount, *appsv1.Deployment, *corev1.Service) {
	name := DeploymentName(gw)
	return proxyObjects(gw, opts, proxySpec{
		name:        name,
		serviceName: gw.Name,
		labels:      map[string]string{model.LabelGatewayName: gw.Name, LabelManaged: ManagedValue},
		// `meshlab waypoint run` (cli/waypoint/run) reads the env below; the service account is passed
		// because the per-service-account form's differs from the Gateway name.
		args: []string{"waypoint", "run", "--service-account", name},
		env: []corev1.EnvVar{
			{Name: "WAYPOINT_NAME", Value: gw.Name},
			{Name: "CA_ADDRESS", Value: opts.controlPlane()},
			{Name: "XDS_ADDRESS", Value: opts.controlPlane()},
		},
		ports: []corev1.ContainerPort{{Name: "hbone", ContainerPort: HBONEPort, Protocol: corev1.ProtocolTCP}},
		servicePorts: []corev1.ServicePort{
			{Name: "mesh", Port: HBONEPort, TargetPort: intstr.FromInt32(HBONEPort), Protocol: corev1.ProtocolTCP},
			{Name: "status-port", Port: StatusPort, TargetPort: intstr.FromInt32(StatusPort), Protocol: corev1.ProtocolTCP},
		},
		serviceType: corev1.ServiceTypeClusterIP,
	})
}

func (o Options) controlPlane() string {
	if o.ControlPlaneAddress == "" {
		return DefaultControlPlaneAddress
	}
	return o.ControlPlaneAddress
}

// proxySpec is what differs between the proxies the controller runs (waypoints, ingress gateways); the
// rest of their objects is proxyObjects'.
type proxySpec struct {
	name, serviceName string            // Deployment and ServiceAccount; Service
	labels            map[string]string // on every object; the gateway-name label selects the pods
	podLabels         map[string]string // more labels on the pods
	args              []string
	env               []corev1.EnvVar // besides the pod's identity
	ports             []corev1.ContainerPort
	servicePorts      []corev1.ServicePort
	serviceType       corev1.ServiceType
	// lowPorts lets the unprivileged proxy bind ports below 1024 (Istio's gateway sysctl).
	lowPorts bool
}

// proxyObjects builds the ServiceAccount, Deployment and Service of one proxy Gateway, owned by it.
func proxyObjects(gw *gwv1.Gateway, opts Options, p proxySpec) (*corev1.ServiceAccount, *appsv1.Deployment, *corev1.Service) {
	owner := []metav1.OwnerReference{{
		APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway", Name: gw.Name, UID: gw.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}}
	objMeta := func(n string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: n, Namespace: gw.Namespace, Labels: copyMap(p.labels), OwnerReferences: owner}
	}
	sa := &corev1.ServiceAccount{ObjectMeta: objMeta(p.name)}

	podLabels := copyMap(p.labels)
	for k, v := range p.podLabels {
		podLabels[k] = v
	}
	podLabels[model.LabelDataplaneMode] = "none" // the proxy speaks HBONE itself; ztunnel must not capture it
	fieldEnv := func(n, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: n, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	env := []corev1.EnvVar{
		fieldEnv("POD_NAME", "metadata.name"),
		fieldEnv("POD_NAMESPACE", "metadata.namespace"),
		fieldEnv("INSTANCE_IP", "status.podIP"),
		fieldEnv("NODE_NAME", "spec.nodeName"),
		fieldEnv("SERVICE_ACCOUNT", "spec.serviceAccountName"),
		{Name: "GODEBUG", Value: mesh.ProxyGODEBUG},
	}
	env = append(env, p.env...)
	ports := append(append([]corev1.ContainerPort(nil), p.ports...),
		corev1.ContainerPort{Name: "status-port", ContainerPort: StatusPort, Protocol: corev1.ProtocolTCP},
		corev1.ContainerPort{Name: "http-envoy-prom", ContainerPort: StatsPort, Protocol: corev1.ProtocolTCP},
	)
	var podSecurity *corev1.PodSecurityContext
	if p.lowPorts {
		podSecurity = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}}}
	}
	dep := &appsv1.Deployment{
		ObjectMeta: objMeta(p.name),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{model.LabelGatewayName: gw.Name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					ServiceAccountName:            p.name,
					TerminationGracePeriodSeconds: ptr.To[int64](2),
					SecurityContext:               podSecurity,
					Containers: []corev1.Container{{
						Name:            ContainerName,
						Image:           opts.Image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Args:            p.args,
						Env:             env,
						Ports:           ports,
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(StatusPort)}},
							PeriodSeconds:    2,
							FailureThreshold: 30,
						},
						SecurityContext: &corev1.SecurityContext{
							RunAsUser:                ptr.To[int64](ProxyUID),
							RunAsGroup:               ptr.To[int64](ProxyUID),
							RunAsNonRoot:             ptr.To(true),
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "istio-ca-root-cert", MountPath: RootCertDir, ReadOnly: true},
							{Name: "istio-token", MountPath: TokenDir, ReadOnly: true},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "istio-ca-root-cert", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: "istio-ca-root-cert"},
						}}},
						{Name: "istio-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
							Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
								Audience: TokenAudience, ExpirationSeconds: ptr.To[int64](43200), Path: TokenFile,
							}}},
						}}},
					},
				},
			},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: objMeta(p.serviceName),
		Spec: corev1.ServiceSpec{
			Type:     p.serviceType,
			Selector: map[string]string{model.LabelGatewayName: gw.Name},
			Ports:    p.servicePorts,
		},
	}
	return sa, dep, svc
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (c *Controller) ensureServiceAccount(ctx context.Context, want *corev1.ServiceAccount) error {
	_, err := c.kube.CoreV1().ServiceAccounts(want.Namespace).Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = c.kube.CoreV1().ServiceAccounts(want.Namespace).Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("ensuring ServiceAccount %s/%s: %w", want.Namespace, want.Name, err)
	}
	return nil
}

func (c *Controller) ensureService(ctx context.Context, want *corev1.Service) error {
	cur, err := c.services.Services(want.Namespace).Get(want.Name)
	switch {
	case apierrors.IsNotFound(err):
		_, err = c.kube.CoreV1().Services(want.Namespace).Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	case err == nil && (!equality.Semantic.DeepDerivative(want.Spec.Ports, cur.Spec.Ports) || want.Spec.Type != cur.Spec.Type ||
		!equality.Semantic.DeepEqual(want.Spec.Selector, cur.Spec.Selector) || !equality.Semantic.DeepDerivative(want.Labels, cur.Labels)):
		upd := cur.DeepCopy()
		upd.Spec.Ports, upd.Spec.Selector, upd.Labels, upd.OwnerReferences = want.Spec.Ports, want.Spec.Selector, want.Labels, want.OwnerReferences
		if want.Spec.Type != cur.Spec.Type {
			upd.Spec.Type = want.Spec.Type // the node ports go with the old type (want's ports carry none)
		} else {
			keepNodePorts(upd.Spec.Ports, cur.Spec.Ports)
		}
		_, err = c.kube.CoreV1().Services(want.Namespace).Update(ctx, upd, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("ensuring Service %s/%s: %w", want.Namespace, want.Name, err)
	}
	return nil
}

// keepNodePorts copies the allocated node ports of cur into ports of the same number, so that an update
// does not ask for new ones.
func keepNodePorts(ports, cur []corev1.ServicePort) {
	for i := range ports {
		for _, p := range cur {
			if p.Port == ports[i].Port && ports[i].NodePort == 0 {
				ports[i].NodePort = p.NodePort
			}
		}
	}
}

func (c *Controller) ensureDeployment(ctx context.Context, want *appsv1.Deployment) error {
	cur, err := c.deployments.Deployments(want.Namespace).Get(want.Name)
	switch {
	case apierrors.IsNotFound(err):
		_, err = c.kube.AppsV1().Deployments(want.Namespace).Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	case err == nil && (!equality.Semantic.DeepDerivative(want.Spec.Template, cur.Spec.Template) || !equality.Semantic.DeepDerivative(want.Labels, cur.Labels)):
		// Replicas are left alone: users scale waypoints.
		upd := cur.DeepCopy()
		upd.Spec.Template, upd.Labels, upd.OwnerReferences = want.Spec.Template, want.Labels, want.OwnerReferences
		_, err = c.kube.AppsV1().Deployments(want.Namespace).Update(ctx, upd, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("ensuring Deployment %s/%s: %w", want.Namespace, want.Name, err)
	}
	return nil
}

// updateStatus writes Programmed (and the address) from the Deployment's availability and the Service's
// ClusterIP, and Accepted=True when nobody set Accepted yet (the control plane's status writer owns it
// afterwards and sets it False when the model finds the Gateway invalid).
func (c *Controller) updateStatus(ctx context.Context, gw *gwv1.Gateway) error {
	if string(gw.Spec.GatewayClassName) == IngressClassName {
		programmed, addresses, listeners := c.ingressStatus(gw)
		return c.writeStatus(ctx, gw, programmed, addresses, func(*gwv1.Gateway) []gwv1.ListenerStatus { return listeners })
	}
	name := DeploymentName(gw)
	var available int32
	if dep, err := c.deployments.Deployments(gw.Namespace).Get(name); err == nil {
		available = dep.Status.AvailableReplicas
	}
	ip := ""
	if svc, err := c.services.Services(gw.Namespace).Get(gw.Name); err == nil && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		ip = svc.Spec.ClusterIP
	}
	programmed := metav1.Condition{Type: string(gwv1.GatewayConditionProgrammed), ObservedGeneration: gw.Generation}
	var addresses []gwv1.GatewayStatusAddress
	switch {
	case available > 0 && ip != "":
		programmed.Status, programmed.Reason = metav1.ConditionTrue, string(gwv1.GatewayReasonProgrammed)
		programmed.Message = fmt.Sprintf("Resource programmed, assigned to service(s) %s:%d", model.FQDN(gw.Name, gw.Namespace), HBONEPort)
		addresses = []gwv1.GatewayStatusAddress{{Type: ptr.To(gwv1.IPAddressType), Value: ip}}
	case ip == "":
		programmed.Status, programmed.Reason, programmed.Message = metav1.ConditionFalse, string(gwv1.GatewayReasonPending), "Waiting for Service "+gw.Name+" to get a cluster IP"
	default:
		programmed.Status, programmed.Reason, programmed.Message = metav1.ConditionFalse, string(gwv1.GatewayReasonPending), "Waiting for Deployment "+name+" to have an available replica"
	}
	return c.writeStatus(ctx, gw, programmed, addresses, func(cur *gwv1.Gateway) []gwv1.ListenerStatus {
		return listenerStatus(cur, programmed.Status == metav1.ConditionTrue)
	})
}

// writeStatus sets Programmed, the addresses and the listener statuses (and Accepted when nobody set it
// yet) on the current Gateway, writing only when they differ.
func (c *Controller) writeStatus(ctx context.Context, gw *gwv1.Gateway, programmed metav1.Condition, addresses []gwv1.GatewayStatusAddress, listeners func(cur *gwv1.Gateway) []gwv1.ListenerStatus) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := c.gw.GatewayV1().Gateways(gw.Namespace).Get(ctx, gw.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		upd := cur.DeepCopy()
		if meta.FindStatusCondition(upd.Status.Conditions, string(gwv1.GatewayConditionAccepted)) == nil {
			meta.SetStatusCondition(&upd.Status.Conditions, metav1.Condition{Type: string(gwv1.GatewayConditionAccepted), Status: metav1.ConditionTrue,
				Reason: string(gwv1.GatewayReasonAccepted), Message: "Resource accepted", ObservedGeneration: cur.Generation})
		}
		meta.SetStatusCondition(&upd.Status.Conditions, programmed)
		upd.Status.Addresses = addresses
		upd.Status.Listeners = listeners(cur)
		if equality.Semantic.DeepEqual(upd.Status, cur.Status) {
			return nil
		}
		_, err = c.gw.GatewayV1().Gateways(gw.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
		return err
	})
}

func listenerStatus(gw *gwv1.Gateway, programmed bool) []gwv1.ListenerStatus {
	var out []gwv1.ListenerStatus
	for _, l := range gw.Spec.Listeners {
		ls := gwv1.ListenerStatus{Name: l.Name, SupportedKinds: []gwv1.RouteGroupKind{}}
		for _, prev := range gw.Status.Listeners {
			if prev.Name == l.Name {
				ls.Conditions = prev.Conditions
			}
		}
		st := metav1.ConditionTrue
		reason := string(gwv1.ListenerReasonProgrammed)
		if !programmed {
			st, reason = metav1.ConditionFalse, string(gwv1.ListenerReasonPending)
		}
		meta.SetStatusCondition(&ls.Conditions, metav1.Condition{Type: string(gwv1.ListenerConditionAccepted), Status: metav1.ConditionTrue,
			Reason: string(gwv1.ListenerReasonAccepted), ObservedGeneration: gw.Generation, LastTransitionTime: metav1.NewTime(time.Now())})
		meta.SetStatusCondition(&ls.Conditions, metav1.Condition{Type: string(gwv1.ListenerConditionProgrammed), Status: st,
			Reason: reason, ObservedGeneration: gw.Generation})
		out = append(out, ls)
	}
	return out
}
