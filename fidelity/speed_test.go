package fidelity

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"istio.io/istio/pilot/pkg/features"
	istiomodel "istio.io/istio/pilot/pkg/model"
	v3 "istio.io/istio/pilot/pkg/xds/v3"
	"istio.io/istio/pilot/test/xdstest"
	istiolog "istio.io/istio/pkg/log"
	"istio.io/istio/pkg/test"
	"istio.io/istio/pkg/util/sets"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
)

// speedMesh is the mesh of meshlab's scale benchmark at 1,000 services / 2,000 pods
// (bench/controlplane.ScaleMesh(1000, 2000): 20 ambient namespaces of 50 services with 2 pods each, every
// namespace using its 2-replica namespace waypoint, pods on 20 nodes), written out here as YAML because
// bench/controlplane links meshlab's xDS server, whose workload API protos share their proto names with
// Istio's (one binary cannot register both). Plus one injected pod in a namespace of its own for the
// sidecar. The same YAML feeds both generators.
func speedMesh() string {
	const namespaces, perNS, perSvc, replicas, nodes = 20, 50, 2, 2, 20
	var b strings.Builder
	vip, podN := 1, 1
	addr := func(a, b, n int) string { return fmt.Sprintf("%d.%d.%d.%d", a, b, (n>>8)&0xff, n&0xff) }
	pod := func(ns, name, sa, labels string) {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: %s, uid: uid-%s-%s, labels: {%s}}\n"+
			"spec: {serviceAccountName: %s, nodeName: node-%d, containers: [{name: app, image: app, ports: [{name: http, containerPort: 9080}]}]}\n"+
			"status: {phase: Running, podIP: %s}\n", name, ns, ns, name, labels, sa, podN%nodes, addr(10, 244, podN))
		podN++
	}
	for i := range namespaces {
		ns := fmt.Sprintf("ns-%d", i)
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint}}\n", ns)
		fmt.Fprintf(&b, "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, namespace: %s, labels: {istio.io/waypoint-for: service}}\n"+
			"spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}\n", ns)
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Service\nmetadata: {name: waypoint, namespace: %s, labels: {gateway.networking.k8s.io/gateway-name: waypoint}}\n"+
			"spec: {clusterIP: %s, selector: {gateway.networking.k8s.io/gateway-name: waypoint}, ports: [{name: mesh, port: 15008}]}\n", ns, addr(10, 96, vip))
		vip++
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: waypoint, namespace: %s}\n", ns)
		for r := range replicas {
			pod(ns, fmt.Sprintf("waypoint-%d", r), "waypoint", "gateway.networking.k8s.io/gateway-name: waypoint")
		}
		for j := range perNS {
			svc := fmt.Sprintf("svc-%d", j)
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: %s, namespace: %s}\n", svc, ns)
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\n"+
				"spec: {clusterIP: %s, selector: {app: %s}, ports: [{name: http, port: 9080, targetPort: 9080, protocol: TCP}]}\n", svc, ns, addr(10, 96, vip), svc)
			vip++
			for k := range perSvc {
				pod(ns, fmt.Sprintf("svc-%d-%d", j, k), svc, "app: "+svc)
			}
		}
	}
	b.WriteString(`---
apiVersion: v1
kind: Namespace
metadata: {name: client}
---
apiVersion: v1
kind: Service
metadata: {name: client, namespace: client}
spec: {clusterIP: 10.97.0.1, selector: {app: client}, ports: [{name: http, port: 8080, targetPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: client-0
  namespace: client
  uid: uid-client-0
  labels: {app: client, security.istio.io/tlsMode: istio}
  annotations: {sidecar.istio.io/status: '{"containers":["istio-proxy"]}'}
spec: {serviceAccountName: client, nodeName: node-0, containers: [{name: app, image: app, ports: [{containerPort: 8080}]}, {name: istio-proxy, image: proxy}]}
status: {phase: Running, podIP: 10.245.0.1}
`)
	return b.String()
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
	docs, err := SplitYAML([]byte(speedMesh()))
	if err != nil {
		t.Fatal(err)
	}
	text, err := JoinYAML(Complete(docs))
	if err != nil {
		t.Fatal(err)
	}
	ml, err := NewMeshlab(text, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	is := NewIstio(t, text)
	t.Logf("setup (YAML, both control planes' stores): %s", time.Since(setup).Round(time.Millisecond))

	ids := []string{"waypoint/ns-0/waypoint", "sidecar/client/client-0"}
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

	var mlTimes, isTimes, ratios []time.Duration
	var mlBytes, isBytes int
	runMeshlab := func() speedResult { runtime.GC(); return meshlabGenerate(t, ml.Snap, mlProxies) }
	runIstio := func() speedResult { runtime.GC(); return istioGenerate(t, is, isProxies) }
	for r := range rounds {
		var m, i speedResult
		if r%2 == 0 { // interleaved, alternating which goes first
			m, i = runMeshlab(), runIstio()
		} else {
			i, m = runIstio(), runMeshlab()
		}
		mlTimes, isTimes = append(mlTimes, m.d), append(isTimes, i.d)
		ratios = append(ratios, time.Duration(float64(m.d)/float64(i.d)*1e6)) // ratio in millionths, to reuse median
		mlBytes, isBytes = m.bytes, i.bytes
		t.Logf("round %2d: meshlab %8.2f ms %9d B   istio %8.2f ms %9d B", r+1, ms(m.d), m.bytes, ms(i.d), i.bytes)
	}
	mm, im := median(mlTimes), median(isTimes)
	summary := fmt.Sprintf("1,000 services / 2,000 pods, one waypoint + one sidecar, %d interleaved rounds: meshlab %.1f ms, Istio %.1f ms "+
		"(medians; ratio of medians %.2fx, median of per-round ratios %.2fx); meshlab %d bytes, Istio %d bytes, bytes ratio %.2fx",
		rounds, ms(mm), ms(im), float64(mm)/float64(im), float64(median(ratios))/1e6, mlBytes, isBytes, float64(mlBytes)/float64(isBytes))
	t.Log(summary)
	fmt.Println(summary)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
