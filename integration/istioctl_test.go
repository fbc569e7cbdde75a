package integration

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshlab/meshlab/internal/istioctltest"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/controlplane/server/servertest"
	"github.com/meshlab/meshlab/controlplane/xds"
)

// bearer is istioctl's per-RPC credential: its service-account token as `authorization: Bearer`, over TLS.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return true }

// TestIstioctlAgainstSidecars connects two real sidecars to the test control plane and asks what istioctl
// asks istiod: syncz on the TLS listener with the Istio namespace's token, as istioctl's client sends it,
// and — when the istioctl binary is there — `istioctl proxy-status` and `istioctl proxy-status a-1.shop`,
// whose sync diff compares the control plane's config_dump answer with the sidecar's own /config_dump.
func TestIstioctlAgainstSidecars(t *testing.T) {
	cp := servertest.Start(t, meshYAML, servertest.Options{PlainAddr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0"})
	serveLoopbackApp(t, "b", "127.31.0.3:9080")
	a := startSidecar(t, cp, "a-1", "a", "127.31.0.2")
	startSidecar(t, cp, "b-1", "b", "127.31.0.3")
	waitSynced(t, cp)

	t.Run("syncz over TLS with a token", func(t *testing.T) {
		cc, err := grpc.NewClient(cp.TLSAddr,
			grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})), //nolint:gosec // as istioctl
			grpc.WithPerRPCCredentials(bearer(servertest.Token(mesh.Namespace, "default"))))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		md, _ := structpb.NewStruct(map[string]any{"GENERATOR": "event", "SERVICE_ACCOUNT": "default", "NAMESPACE": mesh.Namespace})
		node := &core.Node{Id: "sidecar~10.1.2.3~test-1." + mesh.Namespace + "~" + mesh.Namespace + ".svc.cluster.local", Metadata: md}
		if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: xdstype.DebugSyncz, ResponseNonce: time.Now().String()}); err != nil {
			t.Fatal(err)
		}
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("syncz: %v", err)
		}
		got := map[string]*statusv3.ClientConfig{}
		for _, res := range r.GetResources() {
			cc := &statusv3.ClientConfig{}
			if err := res.UnmarshalTo(cc); err != nil {
				t.Fatal(err)
			}
			got[cc.GetNode().GetId()] = cc
		}
		for _, name := range []string{"a-1.shop", "b-1.shop"} {
			cc := got[name]
			if cc == nil {
				t.Fatalf("syncz has no %s: %v", name, got)
			}
			if len(cc.GetGenericXdsConfigs()) == 0 {
				t.Errorf("%s subscribes to nothing", name)
			}
			for _, g := range cc.GetGenericXdsConfigs() {
				if g.GetConfigStatus() != statusv3.ConfigStatus_SYNCED {
					t.Errorf("%s %s = %s, want SYNCED", name, xdstype.Short(g.GetTypeUrl()), g.GetConfigStatus())
				}
			}
		}
		var id xds.ControlPlaneInstance
		if err := json.Unmarshal([]byte(r.GetControlPlane().GetIdentifier()), &id); err != nil || id.Component != xds.ControlPlaneComponent {
			t.Errorf("control plane identifier %q (%v)", r.GetControlPlane().GetIdentifier(), err)
		}
	})

	istioctltest.Path(t)
	t.Run("istioctl proxy-status", func(t *testing.T) {
		out := runIstioctl(t, "proxy-status", "--xds-address", cp.PlainAddr, "--plaintext")
		for _, name := range []string{"a-1.shop", "b-1.shop"} {
			if !strings.Contains(out, "\n"+name+" ") {
				t.Errorf("proxy-status does not list %s", name)
			}
		}
	})
	t.Run("istioctl proxy-status a-1.shop: the control plane's view equals the sidecar's", func(t *testing.T) {
		resp, err := http.Get("http://" + a.sc.Addr("admin").String() + "/config_dump")
		if err != nil {
			t.Fatal(err)
		}
		dump, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("the sidecar's /config_dump: %s %v", resp.Status, err)
		}
		file := filepath.Join(t.TempDir(), "config_dump.json")
		if err := os.WriteFile(file, dump, 0o600); err != nil {
			t.Fatal(err)
		}
		out := runIstioctl(t, "proxy-status", "a-1.shop", "--xds-address", cp.PlainAddr, "--plaintext", "--file", file)
		for _, want := range []string{"Clusters Match", "Listeners Match", "Routes Match"} {
			if !strings.Contains(out, want) {
				t.Errorf("proxy-status a-1.shop does not say %q", want)
			}
		}
	})
}

// waitSynced waits until every connected proxy acknowledged every type it subscribes to.
func waitSynced(t *testing.T, cp *servertest.ControlPlane) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := cp.XDS.SyncStatus()
		synced := len(st.Proxies) > 0
		for _, p := range st.Proxies {
			for _, ts := range p.Types {
				synced = synced && ts.Synced()
			}
		}
		if synced {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxies not in sync: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runIstioctl runs the real istioctl with a kubeconfig pointing nowhere (istioctltest.Run): with
// --xds-address and --revision it needs no API server (without --revision it would first watch the API
// server for the default revision).
func runIstioctl(t *testing.T, args ...string) string {
	t.Helper()
	args = append(args, "--istioNamespace", mesh.Namespace, "--revision", "default", "--timeout", "10s")
	stdout, stderr, err := istioctltest.Run(t, args...)
	t.Logf("istioctl %s:\n%s%s", strings.Join(args, " "), stdout, stderr)
	if err != nil {
		t.Fatalf("istioctl %s: %v", args[0], err)
	}
	return stdout
}
