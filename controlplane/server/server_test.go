package server

// These tests run the whole control plane in-process against client-go fake clientsets (Kubernetes,
// Gateway API and Istio): a real kube-apiserver cannot run here, so the API server path itself (watch
// semantics, RBAC, status subresources) is verified by the lead's kind end-to-end test. Everything after
// the API — informers, store, snapshot, generators, xDS server, gRPC over loopback (plain and TLS), status
// writes, the CA Secret and the root ConfigMaps, the waypoint controller — is the real code.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8sfake "k8s.io/client-go/kubernetes/fake"

	networkingv1alpha3api "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/kube"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/controlplane/xdsgen"
)

const reviewsRoute = "inbound-vip|9080|http|reviews.default.svc.cluster.local"

// otherNamespace adds a second ambient namespace with its own waypoint and service, to check that a
// change to reviews does not reach a waypoint that does not serve it.
const otherNamespace = `
apiVersion: v1
kind: Namespace
metadata:
  name: other
  labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: other-waypoint}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: other-waypoint, namespace: other}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: other}
spec:
  clusterIP: 10.96.50.1
  selector: {app: echo}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: echo-1, namespace: other, labels: {app: echo}}
spec:
  nodeName: meshlab-worker
  containers: [{name: echo, image: echo}]
status: {podIP: 10.244.1.50}
`

type fakeCluster struct {
	kube  *k8sfake.Clientset
	gw    *gwfake.Clientset
	istio *istiofake.Clientset
}

func (f fakeCluster) clients() *kube.Clients {
	return &kube.Clients{Kube: f.kube, Gateway: f.gw, Istio: f.istio}
}

// newFakeCluster loads YAML files (the same testdata `meshlab render` tests use) into fake clientsets.
func newFakeCluster(t *testing.T, extraYAML string, files ...string) fakeCluster {
	t.Helper()
	var paths []string
	for _, f := range files {
		paths = append(paths, modeltest.Path(f))
	}
	store, _, err := ingest.LoadFiles(paths...)
	if err != nil {
		t.Fatalf("LoadFiles() = %v", err)
	}
	if extraYAML != "" {
		objs, _, err := ingest.Decode("extra.yaml", []byte(extraYAML))
		if err != nil {
			t.Fatalf("Decode() = %v", err)
		}
		for _, o := range objs {
			if _, err := store.Add(o); err != nil {
				t.Fatal(err)
			}
		}
	}
	var kubeObjs, gwObjs, istioObjs []runtime.Object
	for _, kind := range ingest.Kinds {
		for _, o := range store.List(kind) {
			switch kind {
			case ingest.KindGatewayClass, ingest.KindGateway, ingest.KindHTTPRoute:
				gwObjs = append(gwObjs, o)
			case ingest.KindVirtualService, ingest.KindDestinationRule, ingest.KindAuthorizationPolicy:
				istioObjs = append(istioObjs, o)
			default:
				kubeObjs = append(kubeObjs, o)
			}
		}
	}
	kubeObjs = append(kubeObjs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: DefaultNamespace}})
	f := fakeCluster{
		kube:  k8sfake.NewSimpleClientset(kubeObjs...),
		gw:    gwfake.NewSimpleClientset(),
		istio: istiofake.NewSimpleClientset(istioObjs...),
	}
	// Gateway API types are registered under v1 and v1beta1 (the same Go type), and the fake tracker
	// would file them under v1beta1; add them under the v1 resource the informers watch.
	for _, o := range gwObjs {
		obj := o.(ingest.Object)
		resource := map[string]string{"Gateway": "gateways", "HTTPRoute": "httproutes", "GatewayClass": "gatewayclasses"}
		key, _ := ingest.KeyOf(obj)
		gvr := gwv1.SchemeGroupVersion.WithResource(resource[string(key.Kind)])
		if err := f.gw.Tracker().Create(gvr, obj, obj.GetNamespace()); err != nil {
			t.Fatalf("adding %s %s: %v", gvr.Resource, obj.GetName(), err)
		}
	}
	return f
}

func startServer(t *testing.T, f fakeCluster) *Server {
	t.Helper()
	// Background goroutines may log after the test ends; t.Logf must not be called then.
	var logMu sync.Mutex
	ended := false
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		if !ended {
			t.Logf(format, args...)
		}
	}
	s := New(f.clients(), Options{
		GRPCAddr: "127.0.0.1:0", PlainGRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		DebounceQuiet: 10 * time.Millisecond, DebounceMax: 200 * time.Millisecond,
		Image: "meshlab:test", ID: "istiod-test", Logf: logf,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
		logMu.Lock()
		ended = true
		logMu.Unlock()
	})
	waitFor(t, "control plane ready", 10*time.Second, s.Ready)
	return s
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dialPlain(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(s.Addr("grpc-plain").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// dialTLS connects to 15012 the way proxies do: the server's chain must lead to the CA root and its leaf
// must carry the control plane's SPIFFE ID (the certificate has no DNS name).
func dialTLS(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(s.CA().Root())
	want := "spiffe://cluster.local/ns/istio-system/sa/istiod"
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection: SPIFFE certificates have no DNS SAN
		VerifyConnection: func(cs tls.ConnectionState) error {
			leaf := cs.PeerCertificates[0]
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter}); err != nil {
				return err
			}
			if id, err := x509svid.IDFromCert(leaf); err != nil || id.String() != want {
				return fmt.Errorf("server is %v, want %s", id, want)
			}
			return nil
		},
	}
	cc, err := grpc.NewClient(s.Addr("grpc").String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// weights returns cluster -> weight of the first route of the reviews route configuration.
func weights(t *testing.T, p push) map[string]uint32 {
	t.Helper()
	for _, a := range p.resources {
		rc := &routev3.RouteConfiguration{}
		if err := a.UnmarshalTo(rc); err != nil {
			t.Fatal(err)
		}
		if rc.Name != reviewsRoute {
			continue
		}
		out := map[string]uint32{}
		r := rc.VirtualHosts[0].Routes[0].GetRoute()
		if wc := r.GetWeightedClusters(); wc != nil {
			for _, c := range wc.Clusters {
				out[c.Name] = c.Weight.GetValue()
			}
		} else {
			out[r.GetCluster()] = 100
		}
		return out
	}
	t.Fatalf("push has no route %s", reviewsRoute)
	return nil
}

func setReviewsWeights(t *testing.T, f fakeCluster, v1, v2 int32) {
	t.Helper()
	ctx := context.Background()
	vs, err := f.istio.NetworkingV1().VirtualServices("default").Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vs = vs.DeepCopy()
	vs.Spec.Http[0].Route[0].Weight, vs.Spec.Http[0].Route[1].Weight = v1, v2
	if _, err := f.istio.NetworkingV1().VirtualServices("default").Update(ctx, vs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func quiet(clients ...*adsClient) {
	for _, c := range clients {
		for len(c.drain(300*time.Millisecond)) > 0 {
		}
	}
}

// TestLiveConfigChange is the config-change journey end to end: fake API objects -> informer events ->
// store -> snapshot -> generators -> a real Delta client (the reviews waypoint) receives the 90/10 route;
// the VirtualService becomes 50/50 and only the reviews waypoint's RDS is pushed; a pod turning unready
// is an endpoint-only push (EDS and workload addresses, no snapshot rebuild for config).
func TestLiveConfigChange(t *testing.T) {
	f := newFakeCluster(t, otherNamespace, "bookinfo.yaml", "reviews-vs.yaml")
	s := startServer(t, f)
	plain := dialPlain(t, s)

	reviewsWP := newADSClient(t, plain, "waypoint/default/reviews-waypoint", true, nil)
	reviewsWP.subscribe(xdstype.Cluster, xdstype.Endpoint, xdstype.Listener, xdstype.Route)
	otherWP := newADSClient(t, plain, "waypoint~10.244.1.60~other-waypoint-abc.other~other.svc.cluster.local", false,
		map[string]any{"NAME": "other-waypoint"})
	otherWP.subscribe(xdstype.Cluster, xdstype.Endpoint, xdstype.Listener, xdstype.Route)
	ztunnel := newADSClient(t, dialTLS(t, s), "ztunnel~10.244.1.2~ztunnel-x.istio-system~istio-system.svc.cluster.local", true,
		map[string]any{"NODE_NAME": "meshlab-worker"})
	ztunnel.subscribe(xdstype.Address, xdstype.Authorization)
	// A sidecar applies VirtualServices itself (configgen/sidecar.go is not waypoint-aware), so it is
	// affected by the reviews change too — but only its RDS.
	sidecar := newADSClient(t, plain, "sidecar/default/"+podNamed(t, f, "productpage"), false, nil)
	sidecar.subscribe(xdstype.Cluster, xdstype.Endpoint, xdstype.Listener, xdstype.Route)

	first, _ := reviewsWP.next(xdstype.Route, 5*time.Second)
	if got, want := weights(t, first), map[string]uint32{
		"inbound-vip|9080|http/v1|reviews.default.svc.cluster.local": 90,
		"inbound-vip|9080|http/v2|reviews.default.svc.cluster.local": 10,
	}; !mapsEqual(got, want) {
		t.Fatalf("initial reviews route weights = %v, want %v", got, want)
	}
	if p, _ := otherWP.next(xdstype.Route, 5*time.Second); len(p.resources) == 0 {
		t.Fatalf("other waypoint got no routes")
	}
	addrs, _ := ztunnel.next(xdstype.Address, 5*time.Second)
	v2 := podNamed(t, f, "reviews-v2")
	if !slices.Contains(addrs.names, "default/reviews.default.svc.cluster.local") || !slices.Contains(addrs.names, "Kubernetes//Pod/default/"+v2) {
		t.Fatalf("ztunnel addresses %v lack the reviews service or reviews-v2", addrs.names)
	}
	// Let the waypoint controller's and the status writer's first writes settle.
	waitFor(t, "waypoint Deployment", 5*time.Second, func() bool {
		_, err := f.kube.AppsV1().Deployments("default").Get(context.Background(), "reviews-waypoint", metav1.GetOptions{})
		return err == nil
	})
	quiet(reviewsWP, otherWP, ztunnel, sidecar)

	// 90/10 -> 50/50.
	start := time.Now()
	setReviewsWeights(t, f, 50, 50)
	rds, others := reviewsWP.next(xdstype.Route, 5*time.Second)
	converged := rds.at.Sub(start)
	if got := weights(t, rds); got["inbound-vip|9080|http/v1|reviews.default.svc.cluster.local"] != 50 || got["inbound-vip|9080|http/v2|reviews.default.svc.cluster.local"] != 50 {
		t.Fatalf("reviews route weights after the change = %v, want 50/50", got)
	}
	if len(others) > 0 {
		t.Errorf("reviews waypoint got %v before RDS; want RDS only", types(others))
	}
	if extra := reviewsWP.drain(300 * time.Millisecond); len(extra) > 0 {
		t.Errorf("reviews waypoint got %v after RDS; want RDS only", types(extra))
	}
	if got := otherWP.drain(100 * time.Millisecond); len(got) > 0 {
		t.Errorf("other waypoint got %v for a change to reviews; want nothing", types(got))
	}
	if got := ztunnel.drain(100 * time.Millisecond); len(got) > 0 {
		t.Errorf("ztunnel got %v for a VirtualService change; want nothing", types(got))
	}
	if got := sidecar.drain(100 * time.Millisecond); len(got) != 1 || got[0].typeURL != xdstype.Route {
		t.Errorf("productpage sidecar got %v; want RDS alone", types(got))
	}
	var acked time.Time
	waitFor(t, "RDS ACK in syncz", 2*time.Second, func() bool {
		for _, p := range s.XDS().SyncStatus().Proxies {
			if p.ID == "waypoint/default/reviews-waypoint" {
				ts, ok := p.Type(xdstype.Route)
				acked = ts.LastAck
				return ok && ts.Synced() && ts.LastAck.After(start)
			}
		}
		return false
	})
	t.Logf("VirtualService 90/10 -> 50/50: reviews waypoint received RDS %s after the API update (debounce quiet 10ms included), acked (syncz) after %s",
		converged.Round(time.Microsecond), acked.Sub(start).Round(time.Microsecond))

	// reviews-v2 becomes unready: endpoint-only push.
	fullBefore, epBefore := s.Generator().Builds()
	pod, err := f.kube.CoreV1().Pods("default").Get(context.Background(), v2, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod = pod.DeepCopy()
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse})
	if _, err := f.kube.CoreV1().Pods("default").UpdateStatus(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eds, others := reviewsWP.next(xdstype.Endpoint, 5*time.Second)
	if len(others) > 0 {
		t.Errorf("reviews waypoint got %v with the endpoint change; want EDS only", types(others))
	}
	if !slices.Contains(eds.names, "inbound-vip|9080|http/v2|reviews.default.svc.cluster.local") {
		t.Errorf("EDS push %v lacks the v2 subset", eds.names)
	}
	if slices.Contains(eds.names, "inbound-vip|9080|http/v1|reviews.default.svc.cluster.local") {
		t.Errorf("EDS push %v resends the unchanged v1 subset; want only what changed", eds.names)
	}
	if extra := reviewsWP.drain(300 * time.Millisecond); len(extra) > 0 {
		t.Errorf("reviews waypoint got %v after EDS; want EDS only", types(extra))
	}
	zt, others := ztunnel.next(xdstype.Address, 5*time.Second)
	if len(others) > 0 || len(zt.names) != 1 || zt.names[0] != "Kubernetes//Pod/default/"+v2 {
		t.Errorf("ztunnel got %v then addresses %v; want only the reviews-v2 workload", types(others), zt.names)
	} else {
		a := &workloadapi.Address{}
		if err := zt.resources[0].UnmarshalTo(a); err != nil {
			t.Fatal(err)
		}
		if a.GetWorkload().GetStatus() != workloadapi.WorkloadStatus_UNHEALTHY {
			t.Errorf("reviews-v2 status = %v, want UNHEALTHY", a.GetWorkload().GetStatus())
		}
	}
	if got := otherWP.drain(100 * time.Millisecond); len(got) > 0 {
		t.Errorf("other waypoint got %v for a reviews endpoint; want nothing", types(got))
	}
	fullAfter, epAfter := s.Generator().Builds()
	if fullAfter != fullBefore || epAfter <= epBefore {
		t.Errorf("builds: full %d -> %d, endpoint %d -> %d; want no full build and an endpoint build", fullBefore, fullAfter, epBefore, epAfter)
	}
	// The pushes above were served through the generators' cache, which the server invalidates.
	if c := s.XDS().Cache(); c == nil || c != s.Generator().Cache() {
		t.Error("the xDS server was not given the generators' cache (xds.WithCache)")
	} else if hits, _ := c.Stats(); hits == 0 {
		t.Error("no generation was served from the cache")
	}
}

// podNamed returns the name of the default-namespace pod whose name starts with prefix.
func podNamed(t *testing.T, f fakeCluster, prefix string) string {
	t.Helper()
	pods, err := f.kube.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if strings.HasPrefix(p.Name, prefix) {
			return p.Name
		}
	}
	t.Fatalf("no pod %s*", prefix)
	return ""
}

func mapsEqual(a, b map[string]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestProblemsBecomeStatus checks that invalid config is reported on the object and breaks nothing else:
// a VirtualService routing to a service that does not exist gets an event and an Accepted=False status
// condition with a validation message, and the valid routes keep being served.
func TestProblemsBecomeStatus(t *testing.T) {
	f := newFakeCluster(t, "", "bookinfo.yaml", "reviews-vs.yaml")
	s := startServer(t, f)
	wp := newADSClient(t, dialPlain(t, s), "waypoint/default/reviews-waypoint", true, nil)
	wp.subscribe(xdstype.Route)
	wp.next(xdstype.Route, 5*time.Second)

	ctx := context.Background()
	bad := &networkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: "ghost", Namespace: "default"},
		Spec: networkingv1alpha3api.VirtualService{
			Hosts: []string{"ghost"},
			Http:  []*networkingv1alpha3api.HTTPRoute{{Route: []*networkingv1alpha3api.HTTPRouteDestination{{Destination: &networkingv1alpha3api.Destination{Host: "ghost"}}}}},
		},
	}
	if _, err := f.istio.NetworkingV1().VirtualServices("default").Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var msg string
	waitFor(t, "ghost status", 5*time.Second, func() bool {
		vs, err := f.istio.NetworkingV1().VirtualServices("default").Get(ctx, "ghost", metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range vs.Status.GetConditions() {
			if c.GetType() == "Accepted" && c.GetStatus() == "False" {
				msg = c.GetMessage()
				return len(vs.Status.GetValidationMessages()) == 1
			}
		}
		return false
	})
	if !strings.Contains(msg, "ghost") {
		t.Errorf("condition message %q does not name the problem", msg)
	}
	waitFor(t, "warning event", 5*time.Second, func() bool {
		evs, _ := f.kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "ghost" && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "matches no service") {
				return true
			}
		}
		return false
	})
	// The valid reviews VirtualService got no condition (nothing to report) and its route is unchanged.
	vs, _ := f.istio.NetworkingV1().VirtualServices("default").Get(ctx, "reviews", metav1.GetOptions{})
	if len(vs.Status.GetConditions()) != 0 {
		t.Errorf("valid VirtualService got status %v", vs.Status.GetConditions())
	}
	if got := wp.drain(200 * time.Millisecond); len(got) > 0 {
		t.Errorf("reviews waypoint got %v for an unrelated invalid VirtualService", types(got))
	}
	// Fixing it (deleting the bad host) clears the problem from /debug/problems.
	if err := f.istio.NetworkingV1().VirtualServices("default").Delete(ctx, "ghost", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "problems cleared", 5*time.Second, func() bool {
		snap := s.Generator().Snapshot()
		for _, p := range snap.Problems {
			if p.Object.Name == "ghost" {
				return false
			}
		}
		return true
	})
}

// TestCAAndRoot checks the CA lives in its Secret (a second control plane loads the same root) and that
// the root is published in every namespace, new ones included.
func TestCAAndRoot(t *testing.T) {
	f := newFakeCluster(t, "", "bookinfo.yaml")
	s := startServer(t, f)
	ctx := context.Background()
	sec, err := f.kube.CoreV1().Secrets(DefaultNamespace).Get(ctx, CASecret, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("CA secret: %v", err)
	}
	again, err := LoadOrCreateCA(ctx, f.kube, DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Root().Equal(s.CA().Root()) {
		t.Errorf("a second LoadOrCreateCA made a new root instead of loading secret %s (%d bytes)", CASecret, len(sec.Data["root-cert.pem"]))
	}
	if _, err := f.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"default", DefaultNamespace, "late"} {
		waitFor(t, "root in "+ns, 5*time.Second, func() bool {
			cm, err := f.kube.CoreV1().ConfigMaps(ns).Get(ctx, RootConfigMap, metav1.GetOptions{})
			return err == nil && cm.Data[RootConfigMapKey] == string(s.CA().RootPEM())
		})
	}
	resp, err := http.Get("http://" + s.Addr("http").String() + "/ready")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/ready = %v, %v", resp, err)
	}
	resp, err = http.Get("http://" + s.Addr("http").String() + "/debug/syncz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/debug/syncz = %v, %v", resp, err)
	}
}

// TestMain turns off client-go's streaming list (WatchListClient): the Gateway API and Istio fake clientsets
// do not send the bookmark it waits for. A real API server does; this only concerns the fakes.
//
// It also runs the generators' cache in assertion mode: a key written with two different values (a key
// missing an input) panics, failing the run.
func TestMain(m *testing.M) {
	os.Setenv("KUBE_FEATURE_WatchListClient", "false")
	xdsgen.DefaultCacheOptions = []xds.CacheOption{xds.WithAssertions(nil)}
	os.Exit(m.Run())
}
