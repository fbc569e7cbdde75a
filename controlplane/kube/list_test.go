package kube

import (
	"context"
	"os"
	"testing"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/meshlab/meshlab/controlplane/ingest"
)

// TestMain turns off client-go's streaming list (WatchListClient): the Istio fake clientset does not send
// the bookmark it waits for (see controlplane/server's TestMain). A real API server does.
func TestMain(m *testing.M) {
	os.Setenv("KUBE_FEATURE_WatchListClient", "false")
	os.Exit(m.Run())
}

// TestList: every object of every kind the API server holds is in the store List returns, managed
// fields stripped, as the control plane's informers store them.
func TestList(t *testing.T) {
	meta := func(ns, name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: ns, Name: name, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}
	}
	var objs []*corev1.Pod
	for _, n := range []string{"a", "b", "c"} {
		objs = append(objs, &corev1.Pod{ObjectMeta: meta("default", n), Status: corev1.PodStatus{PodIP: "10.0.0.1"}})
	}
	kc := k8sfake.NewSimpleClientset(&corev1.Namespace{ObjectMeta: meta("", "default")}, &corev1.Service{ObjectMeta: meta("default", "reviews")}, objs[0], objs[1], objs[2])
	gc := gwfake.NewSimpleClientset()
	ic := istiofake.NewSimpleClientset()
	ctx := context.Background()
	// Created through the typed clients: the fakes' trackers file them under the version the informers list.
	if _, err := gc.GatewayV1().Gateways("default").Create(ctx, &gwv1.Gateway{ObjectMeta: meta("default", "wp"), Spec: gwv1.GatewaySpec{GatewayClassName: "istio-waypoint"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.NetworkingV1().VirtualServices("default").Create(ctx, &networkingv1.VirtualService{ObjectMeta: meta("default", "reviews")}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store, warnings, err := List(ctx, &Clients{Kube: kc, Gateway: gc, Istio: ic}, 10*time.Second)
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	for kind, want := range map[ingest.Kind]int{ingest.KindNamespace: 1, ingest.KindService: 1, ingest.KindPod: 3, ingest.KindGateway: 1, ingest.KindVirtualService: 1, ingest.KindHTTPRoute: 0} {
		if got := len(store.List(kind)); got != want {
			t.Errorf("%s: %d objects, want %d", kind, got, want)
		}
	}
	for _, o := range store.List(ingest.KindPod) {
		if len(o.GetManagedFields()) != 0 {
			t.Errorf("pod %s kept its managed fields", o.GetName())
		}
	}
	if len(warnings) != 0 {
		t.Errorf("warnings = %v", warnings)
	}
}
