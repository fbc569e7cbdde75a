package waypoints_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"

	"github.com/meshlab/meshlab/controlplane/waypoints"
)

func ingressGateway(name string, annotations map[string]string) *gwv1.Gateway {
	return &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), Annotations: annotations},
		Spec: gwv1.GatewaySpec{GatewayClassName: "istio", Listeners: []gwv1.Listener{
			{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType},
			{Name: "https", Port: 443, Protocol: gwv1.HTTPSProtocolType},
		}},
	}
}

// TestIngressGatewayObjects: a Gateway of class istio gets Istio's NAME-istio Deployment, Service and
// ServiceAccount, and a status with Programmed, its address and per-listener attachedRoutes.
func TestIngressGatewayObjects(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kc, gc := k8sfake.NewSimpleClientset(), gwfake.NewSimpleClientset()
	kinf, ginf := informers.NewSharedInformerFactory(kc, 0), gwinformers.NewSharedInformerFactory(gc, 0)
	c := waypoints.New(kc, gc, kinf, ginf, waypoints.Options{Image: "meshlab:dev"})
	kinf.Start(ctx.Done())
	ginf.Start(ctx.Done())
	go c.Run(ctx, 1)

	waitFor(t, "GatewayClass istio accepted", func() bool {
		gcl, err := gc.GatewayV1().GatewayClasses().Get(ctx, "istio", metav1.GetOptions{})
		return err == nil && gcl.Spec.ControllerName == "istio.io/gateway-controller" && meta.IsStatusConditionTrue(gcl.Status.Conditions, "Accepted")
	})
	route := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "bookinfo", Namespace: "default"},
		Spec:       gwv1.HTTPRouteSpec{CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "bookinfo-gateway"}}}},
	}
	if _, err := gc.GatewayV1().HTTPRoutes("default").Create(ctx, route, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A GRPCRoute on the same listener counts too (an HTTP listener takes both kinds, as Istio's).
	grpc := &gwv1.GRPCRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "ratings-grpc", Namespace: "default"},
		Spec:       gwv1.GRPCRouteSpec{CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "bookinfo-gateway", SectionName: ptr.To(gwv1.SectionName("http"))}}}},
	}
	if _, err := gc.GatewayV1().GRPCRoutes("default").Create(ctx, grpc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A TCPRoute counts on a TCP listener only (which takes no other kind).
	tcp := &gwv1.TCPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec:       gwv1.TCPRouteSpec{CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "bookinfo-gateway"}}}},
	}
	if _, err := gc.GatewayV1().TCPRoutes("default").Create(ctx, tcp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bookinfoGW := ingressGateway("bookinfo-gateway", map[string]string{"networking.istio.io/service-type": "ClusterIP"})
	bookinfoGW.Spec.Listeners = append(bookinfoGW.Spec.Listeners, gwv1.Listener{Name: "tcp", Port: 5432, Protocol: gwv1.TCPProtocolType})
	gw, err := gc.GatewayV1().Gateways("default").Create(ctx, bookinfoGW, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const name = "bookinfo-gateway-istio"
	var svc *corev1.Service
	waitFor(t, "service "+name, func() bool {
		svc, err = kc.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
		return err == nil
	})
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.Ports) != 4 || svc.Spec.Ports[3].Port != 5432 ||
		svc.Spec.Ports[0].Name != "status-port" || svc.Spec.Ports[0].Port != 15021 ||
		svc.Spec.Ports[1].Name != "http" || svc.Spec.Ports[1].Port != 80 || *svc.Spec.Ports[1].AppProtocol != "http" ||
		svc.Spec.Ports[2].Port != 443 {
		t.Errorf("service: type %s ports %+v", svc.Spec.Type, svc.Spec.Ports)
	}
	if svc.Labels["gateway.networking.k8s.io/gateway-name"] != gw.Name || svc.Labels["gateway.networking.k8s.io/gateway-class-name"] != "istio" {
		t.Errorf("service labels %v", svc.Labels)
	}
	dep, err := kc.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := dep.Spec.Template
	if a := pod.Spec.Containers[0].Args; len(a) != 2 || a[0] != "proxy" || a[1] != "router" || pod.Spec.ServiceAccountName != name {
		t.Errorf("pod: args %v service account %s", a, pod.Spec.ServiceAccountName)
	}
	for k, v := range map[string]string{"gateway.istio.io/managed": "istio.io-gateway-controller", "sidecar.istio.io/inject": "false",
		"service.istio.io/canonical-name": name, "istio.io/dataplane-mode": "none", "gateway.networking.k8s.io/gateway-name": gw.Name} {
		if pod.Labels[k] != v {
			t.Errorf("pod label %s = %q, want %q", k, pod.Labels[k], v)
		}
	}
	if sc := pod.Spec.SecurityContext; sc == nil || len(sc.Sysctls) != 1 || sc.Sysctls[0].Name != "net.ipv4.ip_unprivileged_port_start" {
		t.Errorf("pod security context %+v: the proxy (uid 1337) could not bind port 80", sc)
	}
	if _, err := kc.CoreV1().ServiceAccounts("default").Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Errorf("service account: %v", err)
	}

	dep.Status.AvailableReplicas, dep.Status.Replicas = 1, 1
	if _, err := kc.AppsV1().Deployments("default").UpdateStatus(ctx, dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var g *gwv1.Gateway
	waitFor(t, "Programmed=True with the Service's hostname", func() bool {
		g, _ = gc.GatewayV1().Gateways("default").Get(ctx, gw.Name, metav1.GetOptions{})
		return meta.IsStatusConditionTrue(g.Status.Conditions, "Programmed") && len(g.Status.Addresses) == 1 &&
			g.Status.Addresses[0].Value == "bookinfo-gateway-istio.default.svc.cluster.local" && len(g.Status.Listeners) == 3
	})
	http, https, tcpL := g.Status.Listeners[0], g.Status.Listeners[1], g.Status.Listeners[2]
	if tcpL.AttachedRoutes != 1 || !meta.IsStatusConditionTrue(tcpL.Conditions, "Accepted") || !meta.IsStatusConditionTrue(tcpL.Conditions, "Programmed") ||
		len(tcpL.SupportedKinds) != 1 || tcpL.SupportedKinds[0].Kind != "TCPRoute" {
		t.Errorf("listener tcp status %+v", tcpL)
	}
	if http.AttachedRoutes != 2 || !meta.IsStatusConditionTrue(http.Conditions, "Accepted") || !meta.IsStatusConditionTrue(http.Conditions, "Programmed") ||
		len(http.SupportedKinds) != 2 || http.SupportedKinds[0].Kind != "HTTPRoute" || http.SupportedKinds[1].Kind != "GRPCRoute" {
		t.Errorf("listener http status %+v", http)
	}
	if c := meta.FindStatusCondition(https.Conditions, "Accepted"); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "UnsupportedProtocol" {
		t.Errorf("listener https: Accepted %+v, want False UnsupportedProtocol", c)
	}

	// Without the annotation the Service is a LoadBalancer: no address until the load balancer has one.
	lb, err := gc.GatewayV1().Gateways("default").Create(ctx, ingressGateway("lb", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "LoadBalancer Service", func() bool {
		s, err := kc.CoreV1().Services("default").Get(ctx, "lb-istio", metav1.GetOptions{})
		return err == nil && s.Spec.Type == corev1.ServiceTypeLoadBalancer
	})
	waitFor(t, "Programmed=False AddressNotAssigned", func() bool {
		g, _ := gc.GatewayV1().Gateways("default").Get(ctx, lb.Name, metav1.GetOptions{})
		c := meta.FindStatusCondition(g.Status.Conditions, "Programmed")
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "AddressNotAssigned"
	})
}
