package waypoints_test

// The controller runs against client-go fake clientsets (no API server can run here): they do not
// allocate cluster IPs or run Deployments, so the test plays those parts; the lead's kind e2e test covers
// the real API server.

import (
	"context"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"

	"github.com/meshlab/meshlab/controlplane/waypoints"
)

func TestMain(m *testing.M) {
	os.Setenv("KUBE_FEATURE_WatchListClient", "false") // the Gateway API fake sends no watch-list bookmark
	os.Exit(m.Run())
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func gateway(name string, annotations map[string]string) *gwv1.Gateway {
	return &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), Annotations: annotations,
			Labels: map[string]string{"istio.io/waypoint-for": "service"}},
		Spec: gwv1.GatewaySpec{GatewayClassName: waypoints.GatewayClassName,
			Listeners: []gwv1.Listener{{Name: "mesh", Port: 15008, Protocol: "HBONE"}}},
	}
}

func TestGatewayBecomesWaypoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kc, gc := k8sfake.NewSimpleClientset(), gwfake.NewSimpleClientset()
	kinf, ginf := informers.NewSharedInformerFactory(kc, 0), gwinformers.NewSharedInformerFactory(gc, 0)
	c := waypoints.New(kc, gc, kinf, ginf, waypoints.Options{Image: "meshlab:dev"})
	kinf.Start(ctx.Done())
	ginf.Start(ctx.Done())
	go c.Run(ctx, 1)

	// The GatewayClass is created and accepted.
	waitFor(t, "GatewayClass accepted", func() bool {
		gcl, err := gc.GatewayV1().GatewayClasses().Get(ctx, waypoints.GatewayClassName, metav1.GetOptions{})
		return err == nil && gcl.Spec.ControllerName == waypoints.ControllerName && meta.IsStatusConditionTrue(gcl.Status.Conditions, "Accepted")
	})

	for _, tc := range []struct {
		gw         *gwv1.Gateway
		deployment string
	}{
		{gateway("waypoint", nil), "waypoint"},
		{gateway("reviews-wp", map[string]string{"istio.io/for-service-account": "bookinfo-reviews"}), "reviews-wp-istio-waypoint"},
	} {
		gw, err := gc.GatewayV1().Gateways("default").Create(ctx, tc.gw, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var dep *appsv1.Deployment
		waitFor(t, "deployment "+tc.deployment, func() bool {
			dep, err = kc.AppsV1().Deployments("default").Get(ctx, tc.deployment, metav1.GetOptions{})
			return err == nil
		})
		pod := dep.Spec.Template.Spec
		if pod.ServiceAccountName != tc.deployment || pod.Containers[0].Image != "meshlab:dev" ||
			len(pod.Containers[0].Args) != 4 || pod.Containers[0].Args[0] != "waypoint" || pod.Containers[0].Args[1] != "run" || pod.Containers[0].Args[3] != tc.deployment {
			t.Errorf("%s: pod spec sa=%s image=%s args=%v", tc.deployment, pod.ServiceAccountName, pod.Containers[0].Image, pod.Containers[0].Args)
		}
		if dep.Spec.Template.Labels["gateway.networking.k8s.io/gateway-name"] != gw.Name {
			t.Errorf("%s: pod labels %v", tc.deployment, dep.Spec.Template.Labels)
		}
		if o := dep.OwnerReferences; len(o) != 1 || o[0].Kind != "Gateway" || o[0].Name != gw.Name || o[0].UID != gw.UID {
			t.Errorf("%s: owner references %v", tc.deployment, o)
		}
		if _, err := kc.CoreV1().ServiceAccounts("default").Get(ctx, tc.deployment, metav1.GetOptions{}); err != nil {
			t.Errorf("service account %s: %v", tc.deployment, err)
		}
		var svc *corev1.Service
		waitFor(t, "service "+gw.Name, func() bool {
			svc, err = kc.CoreV1().Services("default").Get(ctx, gw.Name, metav1.GetOptions{})
			return err == nil
		})
		if len(svc.Spec.Ports) != 2 || svc.Spec.Ports[0].Port != 15008 || svc.Spec.Ports[1].Port != 15021 ||
			svc.Spec.Selector["gateway.networking.k8s.io/gateway-name"] != gw.Name {
			t.Errorf("service %s: ports %v selector %v", gw.Name, svc.Spec.Ports, svc.Spec.Selector)
		}

		// Not programmed before the Deployment is available.
		waitFor(t, "Programmed=False", func() bool {
			g, _ := gc.GatewayV1().Gateways("default").Get(ctx, gw.Name, metav1.GetOptions{})
			c := meta.FindStatusCondition(g.Status.Conditions, "Programmed")
			return c != nil && c.Status == metav1.ConditionFalse && meta.IsStatusConditionTrue(g.Status.Conditions, "Accepted")
		})
		// The API server allocates the cluster IP; the deployment controller makes a replica available.
		svc.Spec.ClusterIP = "10.96.7.7"
		if _, err := kc.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		dep.Status.AvailableReplicas, dep.Status.Replicas = 1, 1
		if _, err := kc.AppsV1().Deployments("default").UpdateStatus(ctx, dep, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "Programmed=True with the address", func() bool {
			g, _ := gc.GatewayV1().Gateways("default").Get(ctx, gw.Name, metav1.GetOptions{})
			return meta.IsStatusConditionTrue(g.Status.Conditions, "Programmed") && len(g.Status.Addresses) == 1 &&
				g.Status.Addresses[0].Value == "10.96.7.7" && len(g.Status.Listeners) == 1
		})
	}
}

func TestNonWaypointGatewayIgnored(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gw := gateway("ingress", nil)
	gw.Spec.GatewayClassName = "other"
	kc, gc := k8sfake.NewSimpleClientset(), gwfake.NewSimpleClientset()
	if _, err := gc.GatewayV1().Gateways("default").Create(ctx, gw, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kinf, ginf := informers.NewSharedInformerFactory(kc, 0), gwinformers.NewSharedInformerFactory(gc, 0)
	c := waypoints.New(kc, gc, kinf, ginf, waypoints.Options{Image: "meshlab:dev"})
	kinf.Start(ctx.Done())
	ginf.Start(ctx.Done())
	kinf.WaitForCacheSync(ctx.Done())
	ginf.WaitForCacheSync(ctx.Done())
	if err := c.Reconcile(ctx, "default", "ingress"); err != nil {
		t.Fatal(err)
	}
	if deps, _ := kc.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{}); len(deps.Items) != 0 {
		t.Errorf("a Gateway of another class got %d deployments", len(deps.Items))
	}
}
