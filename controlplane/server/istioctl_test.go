package server

// Real istioctl against the control plane, with --xds-address so that it needs no Kubernetes API: it
// asks istio.io/debug/syncz (proxy-status) and istio.io/debug/config_dump (proxy-status POD, diffed with
// an Envoy config dump given by --file) exactly as it asks istiod. Finding istiod's pods and port-forwarding
// to them need the kind lab (e2e).

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshlab/meshlab/internal/istioctltest"

	admin "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshlab/meshlab/api/xdstype"
)

// runIstioctl runs the real istioctl with a kubeconfig pointing nowhere (istioctltest.Run): with
// --xds-address and --revision it needs no API server (without --revision it would first watch the API
// server for the default revision).
func runIstioctl(t *testing.T, args ...string) string {
	t.Helper()
	args = append(args, "--istioNamespace", DefaultNamespace, "--revision", "default", "--timeout", "10s")
	stdout, stderr, err := istioctltest.Run(t, args...)
	t.Logf("istioctl %s:\n%s%s", strings.Join(args, " "), stdout, stderr)
	if err != nil {
		t.Fatalf("istioctl %s: %v", args[0], err)
	}
	return stdout
}

// envoyDump is the sidecar's own view of its config, from the responses it received and ACKed, as Envoy's
// /config_dump shows it (what `istioctl proxy-status POD` reads from the pod).
func envoyDump(t *testing.T, l *debugLab) []byte {
	t.Helper()
	last := map[string][]*anypb.Any{}
	for _, p := range l.sidecar.drain(300 * time.Millisecond) {
		last[p.typeURL] = p.resources // state of the world: each response is the whole set
	}
	clusters := &admin.ClustersConfigDump{}
	for _, a := range last[xdstype.Cluster] {
		clusters.DynamicActiveClusters = append(clusters.DynamicActiveClusters, &admin.ClustersConfigDump_DynamicCluster{Cluster: a})
	}
	listeners := &admin.ListenersConfigDump{}
	for _, a := range last[xdstype.Listener] {
		listeners.DynamicListeners = append(listeners.DynamicListeners, &admin.ListenersConfigDump_DynamicListener{
			ActiveState: &admin.ListenersConfigDump_DynamicListenerState{Listener: a}})
	}
	routes := &admin.RoutesConfigDump{}
	for _, a := range last[xdstype.Route] {
		routes.DynamicRouteConfigs = append(routes.DynamicRouteConfigs, &admin.RoutesConfigDump_DynamicRouteConfig{RouteConfig: a})
	}
	if len(clusters.DynamicActiveClusters) == 0 || len(listeners.DynamicListeners) == 0 || len(routes.DynamicRouteConfigs) == 0 {
		t.Fatalf("the sidecar holds %d clusters, %d listeners, %d routes; want some of each",
			len(clusters.DynamicActiveClusters), len(listeners.DynamicListeners), len(routes.DynamicRouteConfigs))
	}
	dump := &admin.ConfigDump{}
	for _, m := range []proto.Message{clusters, listeners, routes} {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		dump.Configs = append(dump.Configs, a)
	}
	b, err := protojson.Marshal(dump)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRealIstioctlProxyStatus(t *testing.T) {
	istioctltest.Path(t)
	l := startDebugLab(t)
	sidecarName := l.pod + ".default"
	// NAME CLUSTER ISTIOD VERSION SUBSCRIBED TYPES, the types in istioctl's order.
	rows := map[string]*regexp.Regexp{
		sidecarName:            regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sidecarName) + `\s+Kubernetes\s+istiod-test\s+v-sidecar\s+4 \(CDS,LDS,EDS,RDS\)\s*$`),
		"other-waypoint.other": regexp.MustCompile(`(?m)^other-waypoint\.other\s+Kubernetes\s+istiod-test\s+v-waypoint\s+4 \(CDS,LDS,EDS,RDS\)\s*$`),
	}
	checkTable := func(t *testing.T, out string) {
		t.Helper()
		if !regexp.MustCompile(`(?m)^NAME\s+CLUSTER\s+ISTIOD\s+VERSION\s+SUBSCRIBED TYPES\s*$`).MatchString(out) {
			t.Errorf("no proxy-status header in:\n%s", out)
		}
		for name, re := range rows {
			if !re.MatchString(out) {
				t.Errorf("no row for %s matching %s in:\n%s", name, re, out)
			}
		}
		if strings.Contains(out, "test-1") {
			t.Errorf("istioctl's own stream is listed:\n%s", out)
		}
	}

	t.Run("plaintext 15010", func(t *testing.T) {
		checkTable(t, runIstioctl(t, "proxy-status", "--xds-address", l.s.Addr("grpc-plain").String(), "--plaintext"))
	})

	t.Run("TLS 15012 with a client certificate", func(t *testing.T) {
		// istioctl's --cert-dir: cert-chain.pem and key.pem present an identity of the Istio namespace's
		// default service account, as istioctl's token would; --insecure because the serving certificate
		// names the control plane by SPIFFE ID only.
		id, err := l.s.CA().WorkloadID(DefaultNamespace, "default")
		if err != nil {
			t.Fatal(err)
		}
		svid, err := l.s.CA().Issue(id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		chain, key, err := svid.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		for name, b := range map[string][]byte{"cert-chain.pem": chain, "key.pem": key, "root-cert.pem": l.s.CA().RootPEM()} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		checkTable(t, runIstioctl(t, "proxy-status", "--xds-address", l.s.Addr("grpc").String(), "--cert-dir", dir, "--insecure"))
	})

	t.Run("json", func(t *testing.T) {
		out := runIstioctl(t, "proxy-status", "--xds-address", l.s.Addr("grpc-plain").String(), "--plaintext", "-o", "json")
		var resp struct {
			ControlPlane struct{ Identifier string } `json:"controlPlane"`
			Resources    []struct {
				Node struct{ ID string } `json:"node"`
			} `json:"resources"`
		}
		if err := json.Unmarshal([]byte(out), &resp); err != nil {
			t.Fatalf("decoding istioctl's JSON: %v", err)
		}
		if !strings.Contains(resp.ControlPlane.Identifier, `"ID":"istiod-test"`) || len(resp.Resources) != 2 {
			t.Errorf("istioctl's JSON: control plane %q, %d proxies", resp.ControlPlane.Identifier, len(resp.Resources))
		}
	})

	t.Run("sync diff of one proxy", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "envoy.json")
		if err := os.WriteFile(file, envoyDump(t, l), 0o600); err != nil {
			t.Fatal(err)
		}
		out := runIstioctl(t, "proxy-status", sidecarName, "--xds-address", l.s.Addr("grpc-plain").String(), "--plaintext", "--file", file)
		for _, want := range []string{"Clusters Match", "Listeners Match", "Routes Match"} {
			if !strings.Contains(out, want) {
				t.Errorf("istioctl proxy-status %s does not say %q", sidecarName, want)
			}
		}
	})
}
