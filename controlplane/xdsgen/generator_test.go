package xdsgen_test

import (
	"net/netip"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/controlplane/xdsgen"
)

func loadGen(t *testing.T) (*xdsgen.Generator, *ingest.Store) {
	t.Helper()
	store, _, err := ingest.LoadFiles(modeltest.Path("bookinfo.yaml"), modeltest.Path("reviews-vs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cache := xds.NewCache(xds.WithAssertions(func(err error) { t.Error(err) }))
	g := xdsgen.New(store, xdsgen.WithCache(cache))
	if _, err := g.Prepare(nil); err != nil {
		t.Fatal(err)
	}
	return g, store
}

func proxy(id string, meta map[string]any) *xds.Proxy {
	md, _ := structpb.NewStruct(meta)
	return xds.NewProxy(&core.Node{Id: id, Metadata: md})
}

func TestAffects(t *testing.T) {
	g, _ := loadGen(t)
	reviewsWP := proxy("waypoint/default/reviews-waypoint", nil)
	istioWP := proxy("waypoint~10.244.1.9~reviews-waypoint-5d8c7b9f4-x2x9k.default~default.svc.cluster.local", nil)
	otherWP := proxy("waypoint/other/other-waypoint", nil) // unknown to the model: conservatively affected
	sidecar := proxy("sidecar/default/productpage-v1-6b746f74dc-9stvs", nil)
	ztunnel := proxy("ztunnel/meshlab-worker", nil)
	key := func(kind ingest.Kind, ns, name string) xds.ConfigKey {
		return xds.ConfigKey{Kind: string(kind), Namespace: ns, Name: name}
	}
	for _, tc := range []struct {
		name  string
		req   *xds.PushRequest
		proxy *xds.Proxy
		want  bool
	}{
		{"reviews VS reaches the reviews waypoint", xds.NewPushRequest(true, "config", key(ingest.KindVirtualService, "default", "reviews")), reviewsWP, true},
		{"Istio-style id resolves through the pod's gateway label", xds.NewPushRequest(true, "config", key(ingest.KindVirtualService, "default", "reviews")), istioWP, true},
		{"reviews DR reaches the reviews waypoint", xds.NewPushRequest(true, "config", key(ingest.KindDestinationRule, "default", "reviews")), reviewsWP, true},
		{"ratings VS does not reach the reviews waypoint", xds.NewPushRequest(true, "config", key(ingest.KindVirtualService, "default", "ratings")), reviewsWP, false},
		{"details service does not reach the reviews waypoint", xds.NewPushRequest(true, "config", key(ingest.KindService, "default", "details")), reviewsWP, false},
		{"a reviews pod reaches the reviews waypoint", xds.NewPushRequest(false, "endpoint", key(ingest.KindPod, "default", "reviews-v1-545db77b95-2ps6q")), reviewsWP, true},
		{"reviews endpoints reach the reviews waypoint", xds.NewPushRequest(false, "endpoint", key(ingest.KindEndpointSlice, "default", "reviews")), reviewsWP, true},
		{"its own Gateway reaches the waypoint", xds.NewPushRequest(true, "config", key(ingest.KindGateway, "default", "reviews-waypoint")), reviewsWP, true},
		{"an unknown waypoint is affected by anything", xds.NewPushRequest(true, "config", key(ingest.KindService, "default", "details")), otherWP, true},
		{"sidecars see VirtualServices", xds.NewPushRequest(true, "config", key(ingest.KindVirtualService, "default", "reviews")), sidecar, true},
		{"sidecars ignore service accounts", xds.NewPushRequest(true, "config", key(ingest.KindServiceAccount, "default", "bookinfo-reviews")), sidecar, false},
		{"ztunnel ignores VirtualServices", xds.NewPushRequest(true, "config", key(ingest.KindVirtualService, "default", "reviews")), ztunnel, false},
		{"ztunnel sees pods", xds.NewPushRequest(false, "endpoint", key(ingest.KindPod, "default", "x")), ztunnel, true},
		{"a full push naming nothing reaches everyone", xds.NewPushRequest(true, "startup"), reviewsWP, true},
	} {
		if got := g.Affects(tc.proxy, tc.req); got != tc.want {
			t.Errorf("%s: Affects() = %t, want %t", tc.name, got, tc.want)
		}
	}
}

func TestPushRequestFor(t *testing.T) {
	g, store := loadGen(t)
	pod := func(name string) *corev1.Pod {
		o, ok := store.Get(ingest.Key{Kind: ingest.KindPod, Namespace: "default", Name: name})
		if !ok {
			t.Fatalf("no pod %s", name)
		}
		return o.(*corev1.Pod)
	}
	v2 := pod("reviews-v2-7bf8c9648f-5jw7x")
	unready := v2.DeepCopy()
	unready.Status.Conditions = append(unready.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse})
	relabelled := v2.DeepCopy()
	relabelled.Labels = map[string]string{"app": "reviews", "version": "v9"}
	noise := v2.DeepCopy()
	noise.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "x", RestartCount: 3}}
	noIP := v2.DeepCopy()
	noIP.Status.PodIP, noIP.Status.PodIPs = "", nil
	pending := &corev1.Pod{}
	pending.Name, pending.Namespace = "new", "default"
	podKey := ingest.Key{Kind: ingest.KindPod, Namespace: "default", Name: v2.Name}
	port := int32(9080)
	portName := "http"
	notReady := false
	slice := func(ready *bool, ips ...string) *discoveryv1.EndpointSlice {
		es := &discoveryv1.EndpointSlice{Ports: []discoveryv1.EndpointPort{{Name: &portName, Port: &port}}}
		es.Name, es.Namespace = "reviews-abcde", "default"
		es.Labels = map[string]string{"kubernetes.io/service-name": "reviews"}
		for _, ip := range ips {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ready}})
		}
		return es
	}
	esKey := ingest.Key{Kind: ingest.KindEndpointSlice, Namespace: "default", Name: "reviews-abcde"}
	for _, tc := range []struct {
		name     string
		ev       ingest.Event
		wantNil  bool
		wantFull bool
	}{
		{"readiness change is endpoint-only", ingest.Event{Type: ingest.Updated, Key: podKey, Old: v2, New: unready, Version: 100}, false, false},
		{"label change is a full push", ingest.Event{Type: ingest.Updated, Key: podKey, Old: v2, New: relabelled}, false, true},
		{"container status noise pushes nothing", ingest.Event{Type: ingest.Updated, Key: podKey, Old: v2, New: noise}, true, false},
		{"a pod getting its IP is a full push", ingest.Event{Type: ingest.Updated, Key: podKey, Old: noIP, New: v2}, false, true},
		{"a pod without an IP pushes nothing", ingest.Event{Type: ingest.Added, Key: ingest.Key{Kind: ingest.KindPod, Namespace: "default", Name: "new"}, New: pending}, true, false},
		{"an endpoint turning unready is endpoint-only", ingest.Event{Type: ingest.Updated, Key: esKey, Old: slice(nil, "10.244.0.5", "10.244.0.6"), New: slice(&notReady, "10.244.0.5", "10.244.0.6"), Version: 101}, false, false},
		// A new pod backing a service changes its sidecar's inbound listener: LDS must be rebuilt.
		{"an endpoint joining a service is a full push", ingest.Event{Type: ingest.Updated, Key: esKey, Old: slice(nil, "10.244.0.5"), New: slice(&notReady, "10.244.0.5", "10.244.0.6")}, false, true},
		{"a new VirtualService is a full push", ingest.Event{Type: ingest.Added, Key: ingest.Key{Kind: ingest.KindVirtualService, Namespace: "default", Name: "x"}}, false, true},
	} {
		req := g.PushRequestFor(tc.ev)
		switch {
		case tc.wantNil && req != nil:
			t.Errorf("%s: got a push (full=%t), want none", tc.name, req.Full)
		case !tc.wantNil && req == nil:
			t.Errorf("%s: got no push", tc.name)
		case req != nil && req.Full != tc.wantFull:
			t.Errorf("%s: full = %t, want %t", tc.name, req.Full, tc.wantFull)
		}
	}
}

func TestWorkloadAPIConversion(t *testing.T) {
	w := xdsgen.WorkloadAddress(configgen.ZtunnelWorkload{
		UID: "Kubernetes//Pod/default/reviews-v1", Name: "reviews-v1", Namespace: "default", Addresses: []string{"10.244.1.5", "bogus"},
		TunnelProtocol: "HBONE", Status: "UNHEALTHY", WorkloadType: "POD", Node: "meshlab-worker",
		Waypoint: &configgen.ZtunnelGatewayAddress{Address: "10.96.0.9", HBONEMTLSPort: 15008},
		Services: map[string][]configgen.ZtunnelPort{"default/reviews.default.svc.cluster.local": {{ServicePort: 9080, TargetPort: 9080}}},
	})
	name, err := xds.ResourceName(w)
	if err != nil || name != "Kubernetes//Pod/default/reviews-v1" {
		t.Errorf("ResourceName() = %q, %v", name, err)
	}
	pw := w.GetWorkload()
	if len(pw.Addresses) != 1 || netip.AddrFrom4([4]byte(pw.Addresses[0])).String() != "10.244.1.5" {
		t.Errorf("addresses = %v, want [10.244.1.5] (the bogus one dropped)", pw.Addresses)
	}
	if pw.TunnelProtocol != workloadapi.TunnelProtocol_HBONE || pw.Status != workloadapi.WorkloadStatus_UNHEALTHY || pw.WorkloadType != workloadapi.WorkloadType_POD {
		t.Errorf("enums = %v %v %v", pw.TunnelProtocol, pw.Status, pw.WorkloadType)
	}
	if a := pw.GetWaypoint().GetAddress().GetAddress(); len(a) != 4 || pw.GetWaypoint().GetHboneMtlsPort() != 15008 {
		t.Errorf("waypoint = %v", pw.GetWaypoint())
	}
	if ps := pw.Services["default/reviews.default.svc.cluster.local"].GetPorts(); len(ps) != 1 || ps[0].TargetPort != 9080 {
		t.Errorf("services = %v", pw.Services)
	}
	svc := xdsgen.ServiceAddress(configgen.ZtunnelService{Name: "reviews", Namespace: "default", Hostname: "reviews.default.svc.cluster.local", Addresses: []string{"10.96.0.7"}})
	if name, _ := xds.ResourceName(svc); name != "default/reviews.default.svc.cluster.local" {
		t.Errorf("service name = %q", name)
	}
	az := xdsgen.Authorization(configgen.ZtunnelAuthorization{Name: "deny", Namespace: "default", Scope: "WORKLOAD_SELECTOR", Action: "DENY",
		Groups: []configgen.ZtunnelGroup{{Rules: []configgen.ZtunnelRules{{Matches: []configgen.ZtunnelMatch{{
			Principals: []configgen.ZtunnelStringMatch{{Prefix: "spiffe://cluster.local/ns/default/"}},
			SourceIPs:  []string{"10.0.0.0/8", "10.244.1.5"},
		}}}}}}})
	m := az.Groups[0].Rules[0].Matches[0]
	if az.Action != security.Action_DENY || az.Scope != security.Scope_WORKLOAD_SELECTOR || m.Principals[0].GetPrefix() != "spiffe://cluster.local/ns/default/" {
		t.Errorf("authorization = %v", az)
	}
	if len(m.SourceIps) != 2 || m.SourceIps[0].Length != 8 || m.SourceIps[1].Length != 32 {
		t.Errorf("source IPs = %v", m.SourceIps)
	}
}

// TestAffectsRequestAuthentication: a RequestAuthentication reaches the waypoint it targets (through a
// Service or its Gateway) and sidecars, never ztunnel, which checks no JWT.
func TestAffectsRequestAuthentication(t *testing.T) {
	store, _, err := ingest.LoadFiles(modeltest.Path(modeltest.Bookinfo), modeltest.Path(modeltest.ReviewsJWT))
	if err != nil {
		t.Fatal(err)
	}
	g := xdsgen.New(store)
	if _, err := g.Prepare(nil); err != nil {
		t.Fatal(err)
	}
	ra := func(name string) *xds.PushRequest {
		return xds.NewPushRequest(true, "config", xds.ConfigKey{Kind: string(ingest.KindRequestAuthentication), Namespace: "default", Name: name})
	}
	for _, tc := range []struct {
		name  string
		req   *xds.PushRequest
		proxy *xds.Proxy
		want  bool
	}{
		{"the one targeting reviews reaches the reviews waypoint", ra("reviews-jwt"), proxy("waypoint/default/reviews-waypoint", nil), true},
		{"the selector one does not reach the waypoint", ra("productpage-jwt"), proxy("waypoint/default/reviews-waypoint", nil), false},
		{"sidecars see RequestAuthentications", ra("productpage-jwt"), proxy("sidecar/default/productpage-v1-6b746f74dc-9stvs", nil), true},
		{"ztunnel ignores RequestAuthentications", ra("reviews-jwt"), proxy("ztunnel/meshlab-worker", nil), false},
	} {
		if got := g.Affects(tc.proxy, tc.req); got != tc.want {
			t.Errorf("%s: Affects() = %t, want %t", tc.name, got, tc.want)
		}
	}
}
