package fidelity

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"istio.io/istio/pilot/pkg/features"
	istiomodel "istio.io/istio/pilot/pkg/model"
	v3 "istio.io/istio/pilot/pkg/xds/v3"
	"istio.io/istio/pilot/test/xdstest"
	istiolog "istio.io/istio/pkg/log"
	"istio.io/istio/pkg/test"
	"istio.io/istio/pkg/util/sets"

	benchcp "github.com/meshlab/meshlab/bench/controlplane"
	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
)

// speedMesh is meshlab's bench mesh at 1,000 services / 2,000 pods (bench/controlplane.ScaleMesh: 20 ambient
// namespaces of 50 services, each with a 2-replica namespace waypoint), plus one injected pod in a namespace
// of its own for the sidecar. The same YAML feeds both generators.
func speedMesh(t testing.TB) string {
	objs, err := benchcp.ScaleMesh(1000, 2000).Objects()
	if err != nil {
		t.Fatal(err)
	}
	ready := []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	objs = append(objs,
		&corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: "client"}},
		&corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: "client"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.97.0.1", ClusterIPs: []string{"10.97.0.1"}, Selector: map[string]string{"app": "client"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
		},
		&corev1.Pod{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "client-0", Namespace: "client", UID: types.UID("uid-client-0"),
				Labels:      map[string]string{"app": "client", configgen.LabelTLSMode: "istio"},
				Annotations: map[string]string{"sidecar.istio.io/status": `{"containers":["istio-proxy"]}`}},
			Spec: corev1.PodSpec{ServiceAccountName: "client", NodeName: "node-0", Containers: []corev1.Container{
				{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}, {Name: "istio-proxy", Image: "proxy"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.245.0.1", PodIPs: []corev1.PodIP{{IP: "10.245.0.1"}}, Conditions: ready},
		})
	docs := make([]map[string]any, 0, len(objs))
	for _, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, dropNulls(m).(map[string]any))
	}
	text, err := JoinYAML(Complete(docs))
	if err != nil {
		t.Fatal(err)
	}
	return text
}

type speedResult struct {
	d     time.Duration
	bytes int
}

func meshlabGenerate(t testing.TB, snap *model.Snapshot, proxies []model.Proxy) speedResult {
	start := time.Now()
	n := 0
	for _, p := range proxies {
		cfg, err := configgen.Envoy(snap, p)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []proto.Message
		for _, r := range cfg.Listeners {
			msgs = append(msgs, r)
		}
		for _, r := range cfg.Clusters {
			msgs = append(msgs, r)
		}
		for _, r := range cfg.Routes {
			msgs = append(msgs, r)
		}
		for _, r := range cfg.Endpoints {
			msgs = append(msgs, r)
		}
		for _, m := range msgs {
			b, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			n += len(b)
		}
	}
	return speedResult{time.Since(start), n}
}

type istioProxy struct {
	p           *istiomodel.Proxy
	routes, eds *istiomodel.WatchedResource
}

func istioGenerate(t testing.TB, is *Istio, proxies []istioProxy) speedResult {
	start := time.Now()
	n := 0
	gens := is.S.Discovery.Generators
	push := is.S.PushContext()
	for _, p := range proxies {
		for _, g := range []struct {
			typ string
			wr  *istiomodel.WatchedResource
		}{{v3.ListenerType, nil}, {v3.ClusterType, nil}, {v3.RouteType, p.routes}, {v3.EndpointType, p.eds}} {
			res, _, err := gens[g.typ].Generate(p.p, g.wr, &istiomodel.PushRequest{Push: push, Forced: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				n += len(r.Resource.GetValue()) // Istio's generators return resources already encoded
			}
		}
	}
	return speedResult{time.Since(start), n}
}

// TestSpeedAgainstIstio times both generators on the same 1,000-service / 2,000-pod mesh, for one waypoint
// and one sidecar: generation and encoding only, interleaved rounds. It runs only with FIDELITY_SPEED=1
// (FIDELITY_ROUNDS sets the number of rounds, 10 by default); see docs/benchmarks.md.
func TestSpeedAgainstIstio(t *testing.T) {
	if os.Getenv("FIDELITY_SPEED") == "" {
		t.Skip("set FIDELITY_SPEED=1 to time meshlab's generator against Istio's")
	}
	rounds := 10
	if r, err := strconv.Atoi(os.Getenv("FIDELITY_ROUNDS")); err == nil && r > 0 {
		rounds = r
	}
	for _, s := range istiolog.Scopes() {
		s.SetOutputLevel(istiolog.NoneLevel)
	}
	// As Istio's own generation benchmarks (pilot/pkg/xds/bench_test.go): no XDS cache, so each round generates.
	test.SetForTest(t, &features.EnableXDSCaching, false)

	setup := time.Now()
	text := speedMesh(t)
	ml, err := NewMeshlab(text, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	is := NewIstio(t, text)
	t.Logf("setup (YAML, both control planes' stores): %s", time.Since(setup).Round(time.Millisecond))

	ids := []string{"waypoint/" + benchcp.NamespaceName(0) + "/" + benchcp.WaypointName, "sidecar/client/client-0"}
	var mlProxies []model.Proxy
	var isProxies []istioProxy
	for _, id := range ids {
		p, err := ml.Proxy(id)
		if err != nil {
			t.Fatal(err)
		}
		mlProxies = append(mlProxies, p)
		var ip *istiomodel.Proxy
		if p.Kind == model.KindWaypoint {
			ip = is.WaypointProxy(p.Namespace, p.Name, p.Pod, p.IPs[:1])
		} else {
			wl := ml.Snap.Workload(p.Namespace, p.Name)
			ip = is.SidecarProxy(p.Namespace, p.Name, p.ServiceAccount, p.IPs, wl.Labels)
		}
		l := is.S.Listeners(ip)
		c := is.S.Clusters(ip)
		isProxies = append(isProxies, istioProxy{
			p:      ip,
			routes: &istiomodel.WatchedResource{ResourceNames: sets.New(xdstest.ExtractRoutesFromListeners(l)...)},
			eds:    &istiomodel.WatchedResource{ResourceNames: sets.New(xdstest.ExtractEdsClusterNames(c)...)},
		})
	}
	// One warm-up round each, not counted.
	meshlabGenerate(t, ml.Snap, mlProxies)
	istioGenerate(t, is, isProxies)

	var mlTimes, isTimes []time.Duration
	var mlBytes, isBytes int
	for r := range rounds {
		var m, i speedResult
		if r%2 == 0 {
			m = meshlabGenerate(t, ml.Snap, mlProxies)
			i = istioGenerate(t, is, isProxies)
		} else {
			i = istioGenerate(t, is, isProxies)
			m = meshlabGenerate(t, ml.Snap, mlProxies)
		}
		mlTimes, isTimes = append(mlTimes, m.d), append(isTimes, i.d)
		mlBytes, isBytes = m.bytes, i.bytes
		t.Logf("round %2d: meshlab %8.2f ms %9d B   istio %8.2f ms %9d B", r+1, ms(m.d), m.bytes, ms(i.d), i.bytes)
	}
	mm, im := median(mlTimes), median(isTimes)
	summary := fmt.Sprintf("1,000 services / 2,000 pods, %d rounds (medians): meshlab %.1f ms, Istio %.1f ms, time ratio %.2fx; "+
		"meshlab %d bytes, Istio %d bytes, bytes ratio %.2fx",
		rounds, ms(mm), ms(im), float64(mm)/float64(im), mlBytes, isBytes, float64(mlBytes)/float64(isBytes))
	t.Log(summary)
	fmt.Println(summary)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// dropNulls removes the null fields (creationTimestamp: null...) Go's JSON encoding of API objects leaves.
func dropNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
				continue
			}
			x[k] = dropNulls(e)
		}
	case []any:
		for i, e := range x {
			x[i] = dropNulls(e)
		}
	}
	return v
}
