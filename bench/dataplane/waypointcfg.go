package dataplane

import (
	"context"
	"fmt"
	"net/netip"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/controlplane/xdsgen"
	"github.com/meshlab/meshlab/dataplane/netnstest"
)

// Names of the waypoint path's mesh.
const (
	benchNamespace = "bench"
	waypointName   = "waypoint"
	// xdsAddress is where the waypoint finds its ADS server: loopback inside its own pod, where the
	// benchmark opens the server's listener.
	xdsAddress = "127.0.0.1:15010"
)

// serviceVIP is the server Service's cluster IP, the address the client calls on the waypoint path.
var serviceVIP = netip.MustParseAddr("10.96.0.10")

// serveWaypointConfig serves the waypoint's Envoy config with the real xDS server and generators, from
// a store describing the benchmark's pods: namespace bench (ambient, use-waypoint=waypoint), the server
// Service and pod, the client pod, and the waypoint Gateway with its pod.
func serveWaypointConfig(ctx context.Context, client, server, wp *netnstest.Pod) (stop func(), err error) {
	store := ingest.NewStore()
	pod := func(p *netnstest.Pod, sa string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.PodName, Namespace: benchNamespace, Labels: labels},
			Spec:       corev1.PodSpec{ServiceAccountName: sa, NodeName: p.Node.Name},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: p.IP.String()},
		}
	}
	addrType := gwv1.IPAddressType
	objs := []ingest.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace, Labels: map[string]string{
			model.LabelDataplaneMode: "ambient", model.LabelUseWaypoint: waypointName}}},
		&gwv1.Gateway{
			ObjectMeta: metav1.ObjectMeta{Name: waypointName, Namespace: benchNamespace},
			Spec: gwv1.GatewaySpec{GatewayClassName: model.WaypointGatewayClass,
				Listeners: []gwv1.Listener{{Name: "mesh", Port: mesh.HBONEPort, Protocol: "HBONE"}}},
			Status: gwv1.GatewayStatus{Addresses: []gwv1.GatewayStatusAddress{{Type: &addrType, Value: wp.IP.String()}}},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "server", Namespace: benchNamespace},
			Spec: corev1.ServiceSpec{ClusterIP: serviceVIP.String(), Selector: map[string]string{"app": "server"},
				Ports: []corev1.ServicePort{{Name: "http", Port: ServerPort, TargetPort: intstr.FromInt32(ServerPort)}}},
		},
		pod(server, "server", map[string]string{"app": "server"}),
		pod(client, "client", map[string]string{"app": "client"}),
		pod(wp, waypointName, map[string]string{model.LabelGatewayName: waypointName}),
	}
	for _, o := range objs {
		if _, err := store.Add(o); err != nil {
			return nil, err
		}
	}
	if probs := model.Build(store.Objects()).Problems; len(probs) > 0 {
		return nil, fmt.Errorf("the waypoint path's mesh has problems: %v", probs)
	}
	srv := xds.NewServer(xdsgen.New(store), xds.WithDebounce(0, 0))
	ctx, cancel := context.WithCancel(ctx)
	srv.Start(ctx)
	l, err := wp.Listen("tcp4", xdsAddress)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("listening for ADS in the waypoint pod: %w", err)
	}
	gs := grpc.NewServer()
	srv.Register(gs)
	go gs.Serve(l)
	return func() {
		gs.Stop()
		cancel()
	}, nil
}
