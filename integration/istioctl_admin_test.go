package integration

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshlab/meshlab/dataplane/l7xds"
	"github.com/meshlab/meshlab/internal/istioctltest"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/proxyconfig"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/controlplane/server/servertest"
	"github.com/meshlab/meshlab/dataplane/sidecar"
	"github.com/meshlab/meshlab/dataplane/waypoint"
)

// TestIstioctlReadsAdmin checks meshlab's proxies against Istio's own tool: a waypoint and a sidecar take
// bookinfo's config from the test control plane; their admin answers (/config_dump,
// /config_dump?include_eds, /clusters?format=json), saved to files, are read by the real
// `istioctl proxy-config ... --file`, which must succeed and show the expected names; so must the masked
// dumps istioctl asks a live pod for (?mask=dynamic_listeners,static_listeners, ...). meshlab's own
// `proxy-config endpoints` must print exactly istioctl's table.
func TestIstioctlReadsAdmin(t *testing.T) {
	istioctl := istioctltest.Path(t)
	var yaml []string
	for _, f := range []string{modeltest.Bookinfo, modeltest.ReviewsVS} {
		b, err := os.ReadFile(modeltest.Path(f))
		if err != nil {
			t.Fatal(err)
		}
		yaml = append(yaml, string(b))
	}
	cp := servertest.Start(t, strings.Join(yaml, "\n---\n"), servertest.Options{PlainAddr: "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	wid, _ := cp.CA.WorkloadID("default", "reviews-waypoint")
	wsvid, err := cp.CA.Issue(wid, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wp, err := waypoint.New(waypoint.Options{RouterOptions: l7xds.RouterOptions{XDSAddress: cp.PlainAddr, Namespace: "default", Name: "reviews-waypoint", IPs: []string{"10.244.1.20"},
		Version: "test", SVID: wsvid, Bundle: cp.CA.Bundle(), AdminAddress: "127.0.0.1:0", HealthAddress: "off"}, HBONEAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := wp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wp.Close() })

	sid, _ := cp.CA.WorkloadID("default", "bookinfo-productpage")
	ssvid, err := cp.CA.Issue(sid, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sidecar.New(sidecar.Options{XDSAddress: cp.PlainAddr, Namespace: "default", Pod: "productpage-v1-6b746f74dc-9stvs", IPs: []string{"10.244.1.10"},
		Version: "test", SVID: ssvid, Bundle: cp.CA.Bundle(),
		OutboundAddress: "127.0.0.1:0", InboundAddress: "127.0.0.1:0", HBONEAddress: "127.0.0.1:0",
		AdminAddress: "127.0.0.1:0", HealthAddress: "off", StatsAddress: "off"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })

	deadline := time.Now().Add(10 * time.Second)
	for !wp.Ready() || !sc.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("proxies not ready: waypoint %v, sidecar %v", wp.XDS().Status(), sc.XDS().Status())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// istioctl builds a Kubernetes client even for --file; give it one that is never used.
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
users: [{name: none, user: {}}]
current-context: none
`), 0o600)
	run := func(t *testing.T, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, istioctl, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+dir)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("istioctl %s: %v\n%s\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		t.Logf("istioctl %s:\n%s", strings.Join(args, " "), stdout.String())
		return stdout.String()
	}
	save := func(t *testing.T, admin, name, path string) string {
		t.Helper()
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d %s", path, resp.StatusCode, b)
		}
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return file
	}
	expect := func(t *testing.T, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("istioctl output lacks %q", w)
			}
		}
	}

	for _, p := range []struct {
		name, admin, node string
		listeners         []string
		clusters, routes  []string
		endpoints         []string
	}{
		{"waypoint", wp.Addrs()[1], "waypoint/default/reviews-waypoint",
			[]string{"Route: inbound-vip|9080|http|reviews.default.svc.cluster.local", "Cluster: connect_originate", "15008"},
			[]string{"reviews.default.svc.cluster.local", "encap"},
			[]string{"inbound-vip|9080|http|reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local"},
			[]string{"envoy://connect_originate/10.244.1.13:9080", "envoy://connect_originate/10.244.2.14:9080", "inbound-vip|9080|http/v2|reviews.default.svc.cluster.local"}},
		{"sidecar", sc.Addr("admin").String(), "sidecar/default/productpage-v1-6b746f74dc-9stvs",
			[]string{"0.0.0.0", "15001", "15006", "Route: 9080"},
			[]string{"reviews.default.svc.cluster.local", "PassthroughCluster", "outbound", "inbound"},
			[]string{"9080", "reviews.default.svc.cluster.local:9080"},
			[]string{"envoy://connect_originate/10.244.1.13:9080", "outbound|9080|v1|reviews.default.svc.cluster.local", "outbound|9080||details.default.svc.cluster.local"}},
	} {
		t.Run(p.name, func(t *testing.T) {
			dump := save(t, p.admin, p.name+"-config.json", "/config_dump")
			eds := save(t, p.admin, p.name+"-eds.json", "/config_dump?include_eds")
			clusters := save(t, p.admin, p.name+"-clusters.json", "/clusters?format=json")

			expect(t, run(t, "proxy-config", "listener", "--file", dump), p.listeners...)
			expect(t, run(t, "proxy-config", "cluster", "--file", dump), p.clusters...)
			expect(t, run(t, "proxy-config", "route", "--file", dump), p.routes...)
			expect(t, run(t, "proxy-config", "secret", "--file", dump), "default", "ROOTCA", "Cert Chain", "CA", "ACTIVE", "true")
			expect(t, run(t, "proxy-config", "bootstrap", "--file", dump), `"id": "`+p.node+`"`, `"xds-grpc"`)
			istioEndpoints := run(t, "proxy-config", "endpoint", "--file", clusters)
			expect(t, istioEndpoints, append([]string{"ENDPOINT", "HEALTHY", "OUTLIER CHECK"}, p.endpoints...)...)
			expect(t, run(t, "proxy-config", "all", "--file", eds), p.endpoints[0])

			// What istioctl asks a live pod for: each section by ?mask= (istioctl's clusterPath, listenerPath, ...).
			for _, m := range []struct {
				cmd, mask string
				want      []string
			}{
				{"listener", "dynamic_listeners,static_listeners", p.listeners},
				{"cluster", "dynamic_active_clusters,dynamic_warming_clusters,static_clusters", p.clusters},
				{"route", "dynamic_route_configs,static_route_configs", p.routes},
				{"secret", "dynamic_active_secrets,dynamic_warming_secrets", []string{"default", "ROOTCA"}},
				{"bootstrap", "bootstrap", []string{p.node}},
			} {
				f := save(t, p.admin, p.name+"-"+m.cmd+"-masked.json", "/config_dump?mask="+m.mask)
				expect(t, run(t, "proxy-config", m.cmd, "--file", f), m.want...)
			}

			// meshlab's own table is istioctl's, line for line.
			var out, errOut bytes.Buffer
			cmd := proxyconfig.NewCommand(cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &errOut}, Globals: &cliutil.Globals{}})
			cmd.SetArgs([]string{"endpoints", "--file", clusters})
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			if err := cmd.Execute(); err != nil {
				t.Fatalf("meshlab proxy-config endpoints: %v", err)
			}
			if out.String() != istioEndpoints {
				t.Errorf("meshlab proxy-config endpoints:\n%s\nistioctl proxy-config endpoint:\n%s", out.String(), istioEndpoints)
			}
		})
	}
}
