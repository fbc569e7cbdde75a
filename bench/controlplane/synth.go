// Package controlplane measures meshlab's control plane on synthetic meshes: how much config the sidecar
// model and the waypoint model distribute (config units and bytes), how long a change takes to reach every
// affected proxy over real Delta ADS, and what building and generating at scale costs in memory and CPU.
// `meshlab bench controlplane` prints the results; docs/benchmarks.md explains every figure.
package controlplane

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
)

// Mesh describes a synthetic mesh: Namespaces namespaces, each with ServicesPerNamespace deployments of
// PodsPerService pods, every deployment fronted by a Service of the same name and running as a
// ServiceAccount of that name. Every namespace is ambient-enrolled and, when WaypointReplicas > 0, has a
// namespace waypoint (Gateway "waypoint") with that many pods, used by the whole namespace.
type Mesh struct {
	Namespaces           int
	ServicesPerNamespace int
	PodsPerService       int
	WaypointReplicas     int
	// Nodes spreads the pods over this many nodes (default 1).
	Nodes int
}

// IssueMesh is the setup of the published figure: 2 namespaces x 25 deployments x 10 pods, with 2
// waypoint replicas per namespace.
var IssueMesh = Mesh{Namespaces: 2, ServicesPerNamespace: 25, PodsPerService: 10, WaypointReplicas: 2, Nodes: 10}

// Pods returns the number of application pods (waypoint pods excluded).
func (m Mesh) Pods() int { return m.Namespaces * m.ServicesPerNamespace * m.PodsPerService }

// Services returns the number of application services.
func (m Mesh) Services() int { return m.Namespaces * m.ServicesPerNamespace }

// ScaleMesh returns a mesh of about services services and pods pods (50 services per namespace, pods
// spread evenly, rounded up), each namespace with a 2-replica waypoint, on 20 nodes.
func ScaleMesh(services, pods int) Mesh {
	perNS := min(50, max(1, services))
	ns := (services + perNS - 1) / perNS
	perSvc := max(1, (pods+services-1)/max(1, services))
	return Mesh{Namespaces: ns, ServicesPerNamespace: perNS, PodsPerService: perSvc, WaypointReplicas: 2, Nodes: 20}
}

// Names used by the synthesizer.
const (
	WaypointName = "waypoint"
	AppPort      = 9080
)

// NamespaceName, ServiceName and PodName name the synthetic objects.
func NamespaceName(i int) string         { return fmt.Sprintf("ns-%d", i) }
func ServiceName(j int) string           { return fmt.Sprintf("svc-%d", j) }
func PodName(j, k int) string            { return fmt.Sprintf("svc-%d-%d", j, k) }
func waypointPodName(r int) string       { return fmt.Sprintf("%s-%d", WaypointName, r) }
func nodeName(i int) string              { return fmt.Sprintf("node-%d", i) }
func ipv4(a, b, c, d int) string         { return fmt.Sprintf("%d.%d.%d.%d", a, b, c, d) }
func addrFrom(base [2]int, n int) string { return ipv4(base[0], base[1], (n>>8)&0xff, n&0xff) }

// Objects synthesizes the mesh's objects in a fixed order. Service VIPs come from 10.96.0.0/16 and pod IPs
// from 10.244.0.0/16 (so a mesh holds at most 65,000 of each).
func (m Mesh) Objects() ([]ingest.Object, error) {
	if m.Namespaces < 1 || m.ServicesPerNamespace < 1 || m.PodsPerService < 0 || m.WaypointReplicas < 0 {
		return nil, fmt.Errorf("mesh %+v: need at least one namespace and one service per namespace", m)
	}
	if m.Services()+m.Namespaces > 65000 || m.Pods()+m.Namespaces*m.WaypointReplicas > 65000 {
		return nil, fmt.Errorf("mesh %+v: too large for the synthetic address ranges", m)
	}
	nodes := max(1, m.Nodes)
	var (
		out          []ingest.Object
		vipN, podN   = 1, 1
		vips, podIPs = [2]int{10, 96}, [2]int{10, 244}
	)
	ready := []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	pod := func(ns, name, sa string, lbls map[string]string) *corev1.Pod {
		ip := addrFrom(podIPs, podN)
		p := &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbls, UID: types.UID("uid-" + ns + "-" + name)},
			Spec: corev1.PodSpec{ServiceAccountName: sa, NodeName: nodeName(podN % nodes), Containers: []corev1.Container{{
				Name: "app", Image: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: AppPort}},
			}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, Conditions: ready},
		}
		podN++
		return p
	}
	for i := range m.Namespaces {
		ns := NamespaceName(i)
		nsLabels := map[string]string{model.LabelDataplaneMode: "ambient"}
		if m.WaypointReplicas > 0 {
			nsLabels[model.LabelUseWaypoint] = WaypointName
		}
		out = append(out, &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: nsLabels},
		})
		if m.WaypointReplicas > 0 {
			addrType := gwv1.IPAddressType
			out = append(out, &gwv1.Gateway{
				TypeMeta:   metav1.TypeMeta{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway"},
				ObjectMeta: metav1.ObjectMeta{Name: WaypointName, Namespace: ns, Labels: map[string]string{model.LabelWaypointFor: "service"}},
				Spec: gwv1.GatewaySpec{GatewayClassName: model.WaypointGatewayClass, Listeners: []gwv1.Listener{{
					Name: "mesh", Port: mesh.HBONEPort, Protocol: "HBONE",
				}}},
				Status: gwv1.GatewayStatus{Addresses: []gwv1.GatewayStatusAddress{{Type: &addrType, Value: addrFrom(vips, vipN)}}},
			}, &corev1.ServiceAccount{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
				ObjectMeta: metav1.ObjectMeta{Name: WaypointName, Namespace: ns},
			})
			vipN++
			for r := range m.WaypointReplicas {
				out = append(out, pod(ns, waypointPodName(r), WaypointName, map[string]string{model.LabelGatewayName: WaypointName}))
			}
		}
		for j := range m.ServicesPerNamespace {
			name := ServiceName(j)
			vip := addrFrom(vips, vipN)
			vipN++
			out = append(out, &corev1.ServiceAccount{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			}, &corev1.Service{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				Spec: corev1.ServiceSpec{
					ClusterIP: vip, ClusterIPs: []string{vip}, Selector: map[string]string{"app": name},
					Ports: []corev1.ServicePort{{Name: "http", Port: AppPort, TargetPort: intstr.FromInt32(AppPort), Protocol: corev1.ProtocolTCP}},
				},
			})
			for k := range m.PodsPerService {
				out = append(out, pod(ns, PodName(j, k), name, map[string]string{"app": name}))
			}
		}
	}
	return out, nil
}

// Store synthesizes the mesh into a new ingest store.
func (m Mesh) Store() (*ingest.Store, error) {
	objs, err := m.Objects()
	if err != nil {
		return nil, err
	}
	s := ingest.NewStore()
	for _, o := range objs {
		if _, err := s.Add(o); err != nil {
			return nil, fmt.Errorf("adding %s/%s: %w", o.GetNamespace(), o.GetName(), err)
		}
	}
	return s, nil
}
