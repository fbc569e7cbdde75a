package xds

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	admin "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/version"
)

// istioctlNode is the node istioctl's ADS client (istio.io/istio/pkg/adsc) presents on its debug streams:
// an Istio sidecar ID for a made-up workload test-1 in the Istio namespace, and metadata naming the
// "event" generator and the service account its token is for.
func istioctlNode(namespace string) *core.Node {
	md, _ := structpb.NewStruct(map[string]any{
		"GENERATOR": "event", "SERVICE_ACCOUNT": "default", "NAMESPACE": namespace,
		"CLOUDRUN_ADDR": "", "ISTIO_VERSION": "65536.65536.65536",
	})
	return &core.Node{Id: "sidecar~10.1.2.3~test-1." + namespace + "~" + namespace + ".svc.cluster.local", Metadata: md}
}

// debugClient is a state-of-the-world stream used as istioctl uses it: the node rides on the first
// request, every request carries a response nonce made of the clock (adsc sets one on every Send), and
// debug responses are not ACKed.
type debugClient struct {
	t      testing.TB
	stream grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse]
	node   *core.Node
}

func newDebugClient(t testing.TB, cc *grpc.ClientConn, node *core.Node) *debugClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("StreamAggregatedResources() = %v", err)
	}
	return &debugClient{t: t, stream: stream, node: node}
}

// ask sends one debug request and returns the response, or the error that ended the stream.
func (d *debugClient) ask(typeURL string, names ...string) (*discovery.DiscoveryResponse, error) {
	d.t.Helper()
	req := &discovery.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names, ResponseNonce: time.Now().String(), Node: d.node}
	d.node = nil
	if err := d.stream.Send(req); err != nil {
		d.t.Fatalf("Send() = %v", err)
	}
	return d.stream.Recv()
}

// clientConfigs decodes a syncz response by node ID.
func clientConfigs(t testing.TB, r *discovery.DiscoveryResponse) map[string]*statusv3.ClientConfig {
	t.Helper()
	out := map[string]*statusv3.ClientConfig{}
	for _, a := range r.GetResources() {
		cc := &statusv3.ClientConfig{}
		if err := a.UnmarshalTo(cc); err != nil {
			t.Fatalf("resource %s is not a ClientConfig: %v", a.GetTypeUrl(), err)
		}
		out[cc.GetNode().GetId()] = cc
	}
	return out
}

func xdsConfig(cc *statusv3.ClientConfig, typeURL string) *statusv3.ClientConfig_GenericXdsConfig {
	for _, g := range cc.GetGenericXdsConfigs() {
		if g.GetTypeUrl() == typeURL {
			return g
		}
	}
	return nil
}

// TestDebugSynczAndConfigDump connects a delta waypoint (CDS acknowledged, LDS rejected) and a
// state-of-the-world sidecar (CDS not acknowledged), then asks as istioctl does.
func TestDebugSynczAndConfigDump(t *testing.T) {
	gen := newTestGen()
	gen.setCluster("default", "reviews", "v1", "10.0.0.1")
	gen.setCluster("other", "echo", "v1", "10.0.0.2")
	s := NewServer(gen, WithDebounce(0, 0), WithID("istiod-0"))
	cc := dial(t, startServer(t, s))

	wp := newDeltaClient(t, cc, "waypoint/default/reviews-waypoint")
	wp.subscribe(xdstype.Cluster)
	wp.ack(wp.recv())
	wp.subscribe(xdstype.Listener)
	lds := wp.recv()
	wp.send(&discovery.DeltaDiscoveryRequest{TypeUrl: xdstype.Listener, ResponseNonce: lds.Nonce, ErrorDetail: &rpcstatus.Status{Code: 3, Message: "bad filter chain"}})
	sc := newSotwClient(t, cc, "sidecar/other/echo-1")
	sc.send(&discovery.DiscoveryRequest{TypeUrl: xdstype.Cluster})
	sc.recv() // not acknowledged: STALE
	waitFor(t, "the NACK", func() bool {
		st, _ := typeStatus(s, "waypoint/default/reviews-waypoint", xdstype.Listener)
		return st.NackError != ""
	})

	ist := newDebugClient(t, cc, istioctlNode("istio-system"))
	r, err := ist.ask(xdstype.DebugSyncz)
	if err != nil {
		t.Fatalf("syncz: %v", err)
	}
	if r.GetTypeUrl() != xdstype.DebugSyncz || r.GetNonce() == "" {
		t.Errorf("response type %q nonce %q", r.GetTypeUrl(), r.GetNonce())
	}
	var cp ControlPlaneInstance
	if err := json.Unmarshal([]byte(r.GetControlPlane().GetIdentifier()), &cp); err != nil {
		t.Fatalf("control plane identifier %q: %v", r.GetControlPlane().GetIdentifier(), err)
	}
	if cp.Component != ControlPlaneComponent || cp.ID != "istiod-0" || cp.Info.Version != "meshlab-"+version.String() || cp.Info.GolangVersion == "" {
		t.Errorf("control plane = %+v", cp)
	}
	got := clientConfigs(t, r)
	if len(got) != 2 {
		t.Fatalf("syncz lists %d proxies, want the waypoint and the sidecar (not istioctl's stream): %v", len(got), got)
	}
	w := got["reviews-waypoint.default"]
	if w == nil {
		t.Fatalf("no ClientConfig for reviews-waypoint.default: %v", got)
	}
	md := w.GetNode().GetMetadata().GetFields()
	if md["NAMESPACE"].GetStringValue() != "default" || md["CLUSTER_ID"].GetStringValue() != "Kubernetes" || md["ISTIO_VERSION"].GetStringValue() != "test" {
		t.Errorf("waypoint metadata = %v", md)
	}
	if g := xdsConfig(w, xdstype.Cluster); g.GetConfigStatus() != statusv3.ConfigStatus_SYNCED || g.GetVersionInfo() == "" || g.GetLastUpdated() == nil {
		t.Errorf("waypoint CDS = %v, want SYNCED with a version and a time", g)
	}
	if g := xdsConfig(w, xdstype.Listener); g.GetConfigStatus() != statusv3.ConfigStatus_ERROR || g.GetErrorState().GetDetails() != "bad filter chain" {
		t.Errorf("waypoint LDS = %v, want ERROR with the NACK's message", g)
	}
	if xdsConfig(w, xdstype.Endpoint) != nil {
		t.Errorf("waypoint has an EDS entry it never subscribed to")
	}
	if g := xdsConfig(got["echo-1.other"], xdstype.Cluster); g.GetConfigStatus() != statusv3.ConfigStatus_STALE {
		t.Errorf("sidecar CDS = %v, want STALE", g)
	}

	// The same stream asks for the waypoint's config dump, by istioctl's name and by meshlab's ID.
	for _, name := range []string{"reviews-waypoint.default", "waypoint/default/reviews-waypoint"} {
		r, err = ist.ask(xdstype.DebugConfigDump, name)
		if err != nil {
			t.Fatalf("config_dump %s: %v", name, err)
		}
		if len(r.GetResources()) != 5 {
			t.Fatalf("config_dump %s has %d parts, want clusters, listeners, routes, secrets, ecds", name, len(r.GetResources()))
		}
		clusters := &admin.ClustersConfigDump{}
		if err := r.GetResources()[0].UnmarshalTo(clusters); err != nil {
			t.Fatal(err)
		}
		if n := len(clusters.GetDynamicActiveClusters()); n != 1 {
			t.Fatalf("config dump has %d clusters, want 1", n)
		}
		c := &cluster.Cluster{}
		if err := clusters.GetDynamicActiveClusters()[0].GetCluster().UnmarshalTo(c); err != nil || c.GetName() != "reviews" {
			t.Errorf("dumped cluster = %v, %v; want reviews", c, err)
		}
		listeners := &admin.ListenersConfigDump{}
		if err := r.GetResources()[1].UnmarshalTo(listeners); err != nil {
			t.Fatal(err)
		}
		// The NACKed listener is not what the proxy has: the server assumes it kept its last accepted one.
		if n := len(listeners.GetDynamicListeners()); n != 0 {
			t.Errorf("config dump has %d listeners, want none (the only one was rejected)", n)
		}
	}
	if r, err = ist.ask(xdstype.DebugConfigDump, "nobody.default"); err != nil || len(r.GetResources()) != 0 {
		t.Errorf("config_dump of an unknown proxy = %d resources, %v; want an empty answer", len(r.GetResources()), err)
	}
	if r, err = ist.ask(xdstype.DebugPrefix + "/unknown"); err != nil || len(r.GetResources()) != 0 {
		t.Errorf("an unknown debug type = %d resources, %v; want an empty answer", len(r.GetResources()), err)
	}
	if n := s.ConnectedProxies(); n != 2 {
		t.Errorf("ConnectedProxies() = %d after istioctl's questions, want 2", n)
	}

	// A proxy may ask on its own stream; its ACK of the answer is not a new question.
	sc.send(&discovery.DiscoveryRequest{TypeUrl: xdstype.DebugSyncz})
	own := sc.recv()
	if own.GetTypeUrl() != xdstype.DebugSyncz || len(own.GetResources()) != 2 {
		t.Fatalf("syncz on a proxy's stream = %s with %d resources", own.GetTypeUrl(), len(own.GetResources()))
	}
	sc.ack(own)
	sc.expectNone(200 * time.Millisecond)

	// So may a delta proxy: the names asked for are those subscribed, syncz's resources are named.
	wp.send(&discovery.DeltaDiscoveryRequest{TypeUrl: xdstype.DebugConfigDump, ResourceNamesSubscribe: []string{"echo-1.other"}})
	dr := wp.recv()
	if dr.GetTypeUrl() != xdstype.DebugConfigDump || len(dr.GetResources()) != 5 || dr.GetControlPlane() == nil {
		t.Fatalf("delta config_dump = %s with %d resources", dr.GetTypeUrl(), len(dr.GetResources()))
	}
	wp.ack(dr)
	wp.send(&discovery.DeltaDiscoveryRequest{TypeUrl: xdstype.DebugSyncz})
	dr = wp.recv()
	if names := resourceNames(dr.GetResources()); dr.GetTypeUrl() != xdstype.DebugSyncz || !slices.Equal(names, []string{"echo-1.other", "reviews-waypoint.default"}) {
		t.Fatalf("delta syncz = %s named %v", dr.GetTypeUrl(), names)
	}
	wp.ack(dr)
	wp.expectNone(200 * time.Millisecond)
}

func TestDebugAuthorizer(t *testing.T) {
	gen := newTestGen()
	gen.setCluster("default", "reviews", "v1", "10.0.0.1")
	gen.setCluster("other", "echo", "v1", "10.0.0.2")
	var asked atomic.Int32
	s := NewServer(gen, WithDebounce(0, 0), WithDebugAuthorizer(func(_ context.Context, client *Proxy) (string, error) {
		asked.Add(1)
		switch client.Namespace {
		case "istio-system":
			return "", nil
		case "other":
			return "other", nil
		case "denied":
			return "", errors.New("not you")
		}
		return "", status.Error(codes.Unauthenticated, "who are you")
	}))
	cc := dial(t, startServer(t, s))
	for _, id := range []string{"waypoint/default/reviews-waypoint", "sidecar/other/echo-1"} {
		c := newSotwClient(t, cc, id)
		c.send(&discovery.DiscoveryRequest{TypeUrl: xdstype.Cluster})
		c.ack(c.recv())
	}
	waitFor(t, "two proxies", func() bool { return s.ConnectedProxies() == 2 })

	all := newDebugClient(t, cc, istioctlNode("istio-system"))
	if r, err := all.ask(xdstype.DebugSyncz); err != nil || len(r.GetResources()) != 2 {
		t.Fatalf("syncz from the system namespace = %v, %v; want both proxies", r, err)
	}
	// Asked once per stream.
	if r, err := all.ask(xdstype.DebugSyncz); err != nil || len(r.GetResources()) != 2 || asked.Load() != 1 {
		t.Fatalf("second syncz = %v, %v; authorizer asked %d times", r, err, asked.Load())
	}

	scoped := newDebugClient(t, cc, istioctlNode("other"))
	r, err := scoped.ask(xdstype.DebugSyncz)
	if err != nil {
		t.Fatal(err)
	}
	if got := clientConfigs(t, r); len(got) != 1 || got["echo-1.other"] == nil {
		t.Errorf("syncz scoped to other = %v, want echo-1.other alone", got)
	}
	if r, err := scoped.ask(xdstype.DebugConfigDump, "reviews-waypoint.default"); err != nil || len(r.GetResources()) != 0 {
		t.Errorf("config_dump of another namespace's proxy = %d resources, %v; want none", len(r.GetResources()), err)
	}

	for ns, code := range map[string]codes.Code{"denied": codes.PermissionDenied, "nobody": codes.Unauthenticated} {
		_, err := newDebugClient(t, cc, istioctlNode(ns)).ask(xdstype.DebugSyncz)
		if status.Code(err) != code {
			t.Errorf("syncz from %s: %v, want %s", ns, err, code)
		}
	}
}
