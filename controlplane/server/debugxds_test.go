package server

// istioctl's questions to istiod (istio.io/debug/syncz and config_dump over ADS), asked of the whole
// control plane the way istioctl asks them: on 15010 in plain text, and on 15012 over TLS with a
// service-account token of audience istio-ca (checked by a TokenReview, answered here by the fake API
// server) or with a client certificate.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	admin "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/version"
)

// envoyTypes are the types the test proxies subscribe to.
var envoyTypes = []string{xdstype.Cluster, xdstype.Endpoint, xdstype.Listener, xdstype.Route}

// saToken is the token the fake API server's TokenReview accepts for namespace/serviceAccount, minted
// for audience istio-ca.
func saToken(namespace, serviceAccount string) string {
	return "sa-token:" + namespace + ":" + serviceAccount
}

// answerTokenReviews makes the fake API server review tokens as a real one reviews projected
// service-account tokens: saToken's are authenticated for their service account when reviewed for
// audience istio-ca, anything else is not.
func answerTokenReviews(f fakeCluster) {
	f.kube.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		user, ok := strings.CutPrefix(tr.Spec.Token, "sa-token:")
		ns, sa, _ := strings.Cut(user, ":")
		if !ok || !slices.Contains(tr.Spec.Audiences, mesh.TokenAudience) {
			tr.Status = authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
			return true, tr, nil
		}
		tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{mesh.TokenAudience},
			User: authenticationv1.UserInfo{Username: "system:serviceaccount:" + ns + ":" + sa}}
		return true, tr, nil
	})
}

// bearer is istioctl's per-RPC credential: a token in `authorization` metadata, over TLS only.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return true }

// dialAsIstioctl connects to 15012 as istioctl does with a token: TLS without verifying the server
// ("always skip verifying"), the token as per-RPC credentials. cert, when set, is presented as a client
// certificate instead (istioctl's --cert-dir).
func dialAsIstioctl(t *testing.T, s *Server, token string, cert *tls.Certificate) *grpc.ClientConn {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // as istioctl
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	cc, err := grpc.NewClient(s.Addr("grpc").String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// askAsIstioctl opens an ADS stream and asks one debug question the way istioctl's client (adsc) does:
// its node (an Istio sidecar ID for workload test-1 of namespace, metadata naming the "event" generator,
// the namespace and the service account its token is for), a response nonce made of the clock, and the
// first response of the type is the answer.
func askAsIstioctl(t *testing.T, cc *grpc.ClientConn, namespace, typeURL string, names ...string) (*discovery.DiscoveryResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	md, _ := structpb.NewStruct(map[string]any{
		"GENERATOR": "event", "SERVICE_ACCOUNT": "default", "NAMESPACE": namespace, "CLOUDRUN_ADDR": "",
		"ISTIO_VERSION": "65536.65536.65536",
	})
	node := &core.Node{Id: "sidecar~10.1.2.3~test-1." + namespace + "~" + namespace + ".svc.cluster.local", Metadata: md}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: typeURL, ResourceNames: names, ResponseNonce: time.Now().String()}); err != nil {
		return nil, err
	}
	return stream.Recv()
}

// debugLab is a control plane with two proxies in sync: the productpage sidecar (state of the world, in
// default) and the other namespace's waypoint (delta).
type debugLab struct {
	f       fakeCluster
	s       *Server
	sidecar *adsClient
	pod     string // the productpage pod
}

func startDebugLab(t *testing.T) *debugLab {
	t.Helper()
	f := newFakeCluster(t, otherNamespace, "bookinfo.yaml")
	answerTokenReviews(f)
	s := startServer(t, f)
	plain := dialPlain(t, s)
	l := &debugLab{f: f, s: s, pod: podNamed(t, f, "productpage")}
	l.sidecar = newADSClient(t, plain, "sidecar/default/"+l.pod, false, map[string]any{"MESHLAB_VERSION": "v-sidecar"})
	l.sidecar.subscribe(envoyTypes...)
	wp := newADSClient(t, plain, "waypoint/other/other-waypoint", true, map[string]any{"MESHLAB_VERSION": "v-waypoint"})
	wp.subscribe(envoyTypes...)
	waitFor(t, "both proxies synced on every type", 10*time.Second, func() bool {
		st := s.XDS().SyncStatus()
		synced := 0
		for _, p := range st.Proxies {
			for _, typ := range envoyTypes {
				if ts, ok := p.Type(typ); ok && ts.Synced() {
					synced++
				}
			}
		}
		return synced == 2*len(envoyTypes)
	})
	return l
}

// syncz decodes a syncz answer by node ID, checking it comes from this control plane.
func syncz(t *testing.T, r *discovery.DiscoveryResponse) map[string]*statusv3.ClientConfig {
	t.Helper()
	var cp xds.ControlPlaneInstance
	if err := json.Unmarshal([]byte(r.GetControlPlane().GetIdentifier()), &cp); err != nil {
		t.Fatalf("control_plane.identifier %q: %v", r.GetControlPlane().GetIdentifier(), err)
	}
	if cp.Component != xds.ControlPlaneComponent || cp.ID != "istiod-test" || cp.Info.Version != "meshlab-"+version.String() {
		t.Errorf("control plane = %+v, want %s istiod-test at meshlab-%s", cp, xds.ControlPlaneComponent, version.String())
	}
	out := map[string]*statusv3.ClientConfig{}
	for _, a := range r.GetResources() {
		cc := &statusv3.ClientConfig{}
		if err := a.UnmarshalTo(cc); err != nil {
			t.Fatalf("syncz resource %s: %v", a.GetTypeUrl(), err)
		}
		out[cc.GetNode().GetId()] = cc
	}
	return out
}

// checkSynced checks that cc reports every Envoy type SYNCED, sorted by type URL, with the version its
// proxy presented.
func checkSynced(t *testing.T, cc *statusv3.ClientConfig, namespace, proxyVersion string) {
	t.Helper()
	md := cc.GetNode().GetMetadata().GetFields()
	if md["NAMESPACE"].GetStringValue() != namespace || md["ISTIO_VERSION"].GetStringValue() != proxyVersion || md["CLUSTER_ID"].GetStringValue() != "Kubernetes" {
		t.Errorf("%s: node metadata %v", cc.GetNode().GetId(), md)
	}
	var got []string
	for _, g := range cc.GetGenericXdsConfigs() {
		got = append(got, g.GetTypeUrl())
		if g.GetConfigStatus() != statusv3.ConfigStatus_SYNCED || g.GetVersionInfo() == "" || g.GetLastUpdated() == nil {
			t.Errorf("%s %s: %v, want SYNCED with a version and a time", cc.GetNode().GetId(), xdstype.Short(g.GetTypeUrl()), g)
		}
	}
	want := slices.Sorted(slices.Values(envoyTypes))
	if !slices.Equal(got, want) {
		t.Errorf("%s: types %v, want %v", cc.GetNode().GetId(), got, want)
	}
}

func TestIstioctlSyncz(t *testing.T) {
	l := startDebugLab(t)
	sidecarName := l.pod + ".default"
	checkAll := func(t *testing.T, r *discovery.DiscoveryResponse, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("syncz: %v", err)
		}
		got := syncz(t, r)
		if len(got) != 2 || got[sidecarName] == nil || got["other-waypoint.other"] == nil {
			t.Fatalf("syncz lists %v, want %s and other-waypoint.other", slices.Sorted(maps.Keys(got)), sidecarName)
		}
		checkSynced(t, got[sidecarName], "default", "v-sidecar")
		checkSynced(t, got["other-waypoint.other"], "other", "v-waypoint")
	}

	t.Run("plaintext 15010", func(t *testing.T) {
		r, err := askAsIstioctl(t, dialPlain(t, l.s), DefaultNamespace, xdstype.DebugSyncz)
		checkAll(t, r, err)
	})
	t.Run("TLS with the control plane namespace's token", func(t *testing.T) {
		r, err := askAsIstioctl(t, dialAsIstioctl(t, l.s, saToken(DefaultNamespace, "default"), nil), DefaultNamespace, xdstype.DebugSyncz)
		checkAll(t, r, err)
	})
	t.Run("TLS with a client certificate", func(t *testing.T) {
		id, err := l.s.CA().WorkloadID(DefaultNamespace, "default")
		if err != nil {
			t.Fatal(err)
		}
		svid, err := l.s.CA().Issue(id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cert := &tls.Certificate{PrivateKey: svid.PrivateKey}
		for _, c := range svid.Certificates {
			cert.Certificate = append(cert.Certificate, c.Raw)
		}
		r, err := askAsIstioctl(t, dialAsIstioctl(t, l.s, "", cert), DefaultNamespace, xdstype.DebugSyncz)
		checkAll(t, r, err)
	})
	t.Run("TLS with another namespace's token sees that namespace", func(t *testing.T) {
		r, err := askAsIstioctl(t, dialAsIstioctl(t, l.s, saToken("other", "default"), nil), "other", xdstype.DebugSyncz)
		if err != nil {
			t.Fatal(err)
		}
		if got := syncz(t, r); len(got) != 1 || got["other-waypoint.other"] == nil {
			t.Errorf("syncz for other lists %v, want other-waypoint.other alone", slices.Sorted(maps.Keys(got)))
		}
		r, err = askAsIstioctl(t, dialAsIstioctl(t, l.s, saToken("other", "default"), nil), "other", xdstype.DebugConfigDump, sidecarName)
		if err != nil || len(r.GetResources()) != 0 {
			t.Errorf("config_dump of default's sidecar for other = %d parts, %v; want none", len(r.GetResources()), err)
		}
	})
	for _, tc := range []struct {
		name, token, nodeNamespace string
		want                       codes.Code
	}{
		{"TLS without credentials", "", DefaultNamespace, codes.Unauthenticated},
		{"TLS with a token the API server rejects", "not-a-token", DefaultNamespace, codes.Unauthenticated},
		{"TLS with a node claiming another namespace than the token's", saToken("other", "default"), DefaultNamespace, codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := askAsIstioctl(t, dialAsIstioctl(t, l.s, tc.token, nil), tc.nodeNamespace, xdstype.DebugSyncz)
			if status.Code(err) != tc.want {
				t.Errorf("syncz = %v, want %s", err, tc.want)
			}
		})
	}
	if n := l.s.XDS().ConnectedProxies(); n != 2 {
		t.Errorf("ConnectedProxies() = %d after istioctl's questions, want the 2 proxies", n)
	}
}

func TestIstioctlConfigDump(t *testing.T) {
	l := startDebugLab(t)
	cc := dialAsIstioctl(t, l.s, saToken(DefaultNamespace, "default"), nil)
	r, err := askAsIstioctl(t, cc, DefaultNamespace, xdstype.DebugConfigDump, l.pod+".default")
	if err != nil {
		t.Fatal(err)
	}
	status := l.s.XDS().SyncStatus()
	var sidecar xds.ProxyStatus
	for _, p := range status.Proxies {
		if p.Name == l.pod {
			sidecar = p
		}
	}
	counts := map[string]int{}
	for _, a := range r.GetResources() {
		switch a.GetTypeUrl() {
		case "type.googleapis.com/envoy.admin.v3.ClustersConfigDump":
			d := &admin.ClustersConfigDump{}
			if err := a.UnmarshalTo(d); err != nil {
				t.Fatal(err)
			}
			counts[xdstype.Cluster] = len(d.GetDynamicActiveClusters())
		case "type.googleapis.com/envoy.admin.v3.ListenersConfigDump":
			d := &admin.ListenersConfigDump{}
			if err := a.UnmarshalTo(d); err != nil {
				t.Fatal(err)
			}
			counts[xdstype.Listener] = len(d.GetDynamicListeners())
		case "type.googleapis.com/envoy.admin.v3.RoutesConfigDump":
			d := &admin.RoutesConfigDump{}
			if err := a.UnmarshalTo(d); err != nil {
				t.Fatal(err)
			}
			counts[xdstype.Route] = len(d.GetDynamicRouteConfigs())
		}
	}
	for _, typ := range []string{xdstype.Cluster, xdstype.Listener, xdstype.Route} {
		ts, _ := sidecar.Type(typ)
		if counts[typ] != ts.Resources || ts.Resources == 0 {
			t.Errorf("config dump has %d %s, syncz says %d were sent", counts[typ], xdstype.Short(typ), ts.Resources)
		}
	}
}
