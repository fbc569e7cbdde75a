package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
)

// TestRouteParentStatusPerController: an HTTPRoute attached to an ingress Gateway (class istio) and to a
// Service gets one parent status for each, written as istio.io/gateway-controller for the Gateway (as
// Istio does) and as meshlab's controller for the Service, each with the problems about itself only; a
// parentRef to a Gateway of another class gets none; another controller's status is kept.
func TestRouteParentStatusPerController(t *testing.T) {
	ctx := context.Background()
	gw := func(name, class string) *gwv1.Gateway {
		return &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: gwv1.GatewaySpec{GatewayClassName: gwv1.ObjectName(class), Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType}}}}
	}
	svcKind, core := gwv1.Kind("Service"), gwv1.Group("")
	route := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "bookinfo", Namespace: "default", Generation: 3},
		Spec: gwv1.HTTPRouteSpec{CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{
			{Name: "bookinfo-gateway"},
			{Group: &core, Kind: &svcKind, Name: "productpage"},
			{Name: "other-gateway"},
		}}},
		Status: gwv1.HTTPRouteStatus{RouteStatus: gwv1.RouteStatus{Parents: []gwv1.RouteParentStatus{
			{ParentRef: gwv1.ParentReference{Name: "other-gateway"}, ControllerName: "example.com/other"},
		}}},
	}
	ingress, other := gw("bookinfo-gateway", model.IngressGatewayClass), gw("other-gateway", "other")
	gc := gwfake.NewSimpleClientset() // created through the typed client: the fake's object tracker files them under v1
	if _, err := gc.GatewayV1().HTTPRoutes("default").Create(ctx, route, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*gwv1.Gateway{ingress, other} {
		if _, err := gc.GatewayV1().Gateways("default").Create(ctx, g, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	store := ingest.NewStore()
	for _, o := range []ingest.Object{route, ingress, other} {
		if _, err := store.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	w := NewStatusWriter(&Clients{Kube: k8sfake.NewSimpleClientset(), Gateway: gc}, store, t.Logf)
	w.Sync(ctx, model.Build(store.Objects()))

	got, err := gc.GatewayV1().HTTPRoutes("default").Get(ctx, "bookinfo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byParent := map[string]gwv1.RouteParentStatus{}
	for _, ps := range got.Status.Parents {
		byParent[string(ps.ParentRef.Name)] = ps
	}
	if len(got.Status.Parents) != 3 {
		t.Fatalf("parents = %+v, want the gateway's, the Service's and the other controller's", got.Status.Parents)
	}
	for name, want := range map[string]gwv1.GatewayController{"bookinfo-gateway": GatewayControllerName, "productpage": ControllerName, "other-gateway": "example.com/other"} {
		if ps := byParent[name]; ps.ControllerName != want {
			t.Errorf("parent %s: controller %q, want %q", name, ps.ControllerName, want)
		}
	}
	if ps := byParent["bookinfo-gateway"]; !meta.IsStatusConditionTrue(ps.Conditions, "Accepted") || !meta.IsStatusConditionTrue(ps.Conditions, "ResolvedRefs") {
		t.Errorf("gateway parent conditions %+v, want Accepted and ResolvedRefs", ps.Conditions)
	}
	// The store has no Service productpage: that problem is the Service parent's alone.
	if c := meta.FindStatusCondition(byParent["productpage"].Conditions, "Accepted"); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "NoMatchingParent" {
		t.Errorf("Service parent Accepted = %+v, want False NoMatchingParent", c)
	}
	g, _ := gc.GatewayV1().Gateways("default").Get(ctx, "bookinfo-gateway", metav1.GetOptions{})
	if !meta.IsStatusConditionTrue(g.Status.Conditions, "Accepted") {
		t.Errorf("ingress Gateway conditions %+v, want Accepted", g.Status.Conditions)
	}
	if o, _ := gc.GatewayV1().Gateways("default").Get(ctx, "other-gateway", metav1.GetOptions{}); len(o.Status.Conditions) != 0 {
		t.Errorf("a Gateway of another class got status %+v", o.Status.Conditions)
	}
}

// TestGRPCRouteParentStatus: a GRPCRoute gets its parent statuses from the same writer: Accepted on an
// existing Service parent, NoMatchingParent (with the model's message) on a missing one.
func TestGRPCRouteParentStatus(t *testing.T) {
	ctx := context.Background()
	svcKind, core := gwv1.Kind("Service"), gwv1.Group("")
	route := &gwv1.GRPCRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "greeter", Namespace: "default", Generation: 2},
		Spec: gwv1.GRPCRouteSpec{CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{
			{Group: &core, Kind: &svcKind, Name: "greeter"},
			{Group: &core, Kind: &svcKind, Name: "missing"},
		}}},
	}
	gc := gwfake.NewSimpleClientset()
	if _, err := gc.GatewayV1().GRPCRoutes("default").Create(ctx, route, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store := ingest.NewStore()
	greeter := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "greeter", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.30", Ports: []corev1.ServicePort{{Name: "grpc", Port: 9090}}}}
	for _, o := range []ingest.Object{route, greeter} {
		if _, err := store.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	w := NewStatusWriter(&Clients{Kube: k8sfake.NewSimpleClientset(), Gateway: gc}, store, t.Logf)
	w.Sync(ctx, model.Build(store.Objects()))

	got, err := gc.GatewayV1().GRPCRoutes("default").Get(ctx, "greeter", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Status.Parents) != 2 {
		t.Fatalf("parents = %+v, want one per Service parent", got.Status.Parents)
	}
	for _, ps := range got.Status.Parents {
		accepted := meta.FindStatusCondition(ps.Conditions, "Accepted")
		switch {
		case ps.ControllerName != ControllerName:
			t.Errorf("parent %s: controller %q", ps.ParentRef.Name, ps.ControllerName)
		case ps.ParentRef.Name == "greeter" && (accepted == nil || accepted.Status != metav1.ConditionTrue || accepted.ObservedGeneration != 2):
			t.Errorf("parent greeter: Accepted %+v, want True at generation 2", accepted)
		case ps.ParentRef.Name == "missing" && (accepted == nil || accepted.Reason != "NoMatchingParent"):
			t.Errorf("parent missing: Accepted %+v, want False NoMatchingParent", accepted)
		}
	}
}

// TestTCPRouteParentStatus: a TCPRoute gets a parent status per Service parent: Accepted on its TCP port,
// NoMatchingParent on an HTTP port of the same Service (a TCPRoute has no effect there) and on a missing
// Service.
func TestTCPRouteParentStatus(t *testing.T) {
	ctx := context.Background()
	svcKind, core := gwv1.Kind("Service"), gwv1.Group("")
	port := func(p int32) *gwv1.PortNumber { return &p }
	route := &gwv1.TCPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "tcp-echo", Namespace: "default", Generation: 3},
		Spec: gwv1.TCPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{
				{Group: &core, Kind: &svcKind, Name: "tcp-echo", Port: port(9000)},
				{Group: &core, Kind: &svcKind, Name: "tcp-echo", Port: port(8080)},
				{Group: &core, Kind: &svcKind, Name: "missing"},
			}},
			Rules: []gwv1.TCPRouteRule{{BackendRefs: []gwv1.BackendRef{{BackendObjectReference: gwv1.BackendObjectReference{Name: "tcp-echo", Port: port(9000)}}}}},
		},
	}
	gc := gwfake.NewSimpleClientset()
	if _, err := gc.GatewayV1().TCPRoutes("default").Create(ctx, route, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store := ingest.NewStore()
	echo := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "tcp-echo", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.40", Ports: []corev1.ServicePort{{Name: "http", Port: 8080}, {Name: "tcp", Port: 9000}}}}
	for _, o := range []ingest.Object{route, echo} {
		if _, err := store.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	w := NewStatusWriter(&Clients{Kube: k8sfake.NewSimpleClientset(), Gateway: gc}, store, t.Logf)
	w.Sync(ctx, model.Build(store.Objects()))

	got, err := gc.GatewayV1().TCPRoutes("default").Get(ctx, "tcp-echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Status.Parents) != 3 {
		t.Fatalf("parents = %+v, want one per Service parent", got.Status.Parents)
	}
	for _, ps := range got.Status.Parents {
		accepted := meta.FindStatusCondition(ps.Conditions, "Accepted")
		resolved := meta.FindStatusCondition(ps.Conditions, "ResolvedRefs")
		name := fmt.Sprintf("%s:%d", ps.ParentRef.Name, ptr.Deref(ps.ParentRef.Port, 0))
		switch {
		case ps.ControllerName != ControllerName:
			t.Errorf("parent %s: controller %q", name, ps.ControllerName)
		case accepted == nil || resolved == nil:
			t.Errorf("parent %s: conditions %+v", name, ps.Conditions)
		case name == "tcp-echo:9000" && (accepted.Status != metav1.ConditionTrue || accepted.ObservedGeneration != 3 || resolved.Status != metav1.ConditionTrue):
			t.Errorf("parent %s: Accepted %+v ResolvedRefs %+v, want both True at generation 3", name, accepted, resolved)
		case name == "tcp-echo:8080" && (accepted.Reason != "NoMatchingParent" || !strings.Contains(accepted.Message, "port 8080 is HTTP")):
			t.Errorf("parent %s: Accepted %+v, want False NoMatchingParent (an HTTP port)", name, accepted)
		case name == "missing:0" && accepted.Reason != "NoMatchingParent":
			t.Errorf("parent %s: Accepted %+v, want False NoMatchingParent", name, accepted)
		}
	}
}
