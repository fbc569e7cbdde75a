package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/cluster"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Run(ui.NewLogger(&errOut, 0, false), ui.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, args)
	return code, out.String(), errOut.String()
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"version"}, 0},
		{[]string{"bogus"}, 2},
		{[]string{"version", "--nope"}, 2},
		{[]string{"version", "extra-arg"}, 2},
		{[]string{"up", "--workers", "-1"}, 2},
		{[]string{"inject", "matrix", "-o", "xml"}, 2},
		{[]string{"render", "-f", "/does/not/exist.yaml", "--proxy", "waypoint/default/waypoint"}, 1},
	} {
		code, _, stderr := run(tc.args...)
		if code != tc.want {
			t.Errorf("meshlab %s: exit %d, want %d (stderr: %s)", strings.Join(tc.args, " "), code, tc.want, stderr)
		}
		if code != 0 && !strings.Contains(stderr, "ERROR") {
			t.Errorf("meshlab %s: exit %d without an error message on stderr: %q", strings.Join(tc.args, " "), code, stderr)
		}
	}
}

// Bad input files exit 2 with the message on stderr and nothing on stdout: render, kube-inject and inject
// check share the strict loaders.
func TestBadInputExitsTwo(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	os.WriteFile(policy, []byte(`apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny
  namespace: default
spec:
  actoin: DENY
  rules: [{from: [{source: {namespaces: [foo]}}]}]
`), 0o644)
	deploy := filepath.Join(dir, "deploy.yaml")
	os.WriteFile(deploy, []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: x
        image: y
`), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"render", "-f", policy, "--proxy", "ztunnel/n"}, `policy.yaml: document 2 (AuthorizationPolicy default/deny), line 11: unknown field "spec.actoin"`},
		{[]string{"kube-inject", "-f", deploy, "--image", "x:1"}, `deploy.yaml: document 1, line 12: duplicate key "spec.template.spec.containers[0].image" (first at line 11)`},
		{[]string{"inject", "check", "-f", deploy}, `deploy.yaml: document 1, line 12: duplicate key`},
		{[]string{"explain", "-f", policy, "--from", "default/p", "http://x/"}, `policy.yaml: document 2 (AuthorizationPolicy default/deny), line 11: unknown field "spec.actoin"`},
	} {
		code, stdout, stderr := run(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("meshlab %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stdout, stderr, tc.want)
		}
	}
}

func TestResultsOnStdoutLogsOnStderr(t *testing.T) {
	code, stdout, stderr := run("inject", "matrix", "-o", "json")
	if code != 0 {
		t.Fatalf("inject matrix: exit %d: %s", code, stderr)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil || len(rows) == 0 {
		t.Fatalf("stdout is not the JSON matrix: %v\n%s", err, stdout)
	}
	if stderr != "" {
		t.Errorf("stderr = %q, want nothing on success", stderr)
	}
}

func TestClusterFlagReachesCommandsThatShadowName(t *testing.T) {
	// waypoint generate has its own --name (the waypoint's); --cluster must still name the cluster and
	// must not change the waypoint's name.
	code, stdout, stderr := run("--cluster", "other", "waypoint", "generate", "--name", "wp", "-n", "ns1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "name: wp") || !strings.Contains(stdout, "namespace: ns1") {
		t.Errorf("generate output:\n%s", stdout)
	}
	root := NewRootCommand(ui.NewLogger(&bytes.Buffer{}, 0, false), ui.Streams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	root.SetArgs([]string{"--cluster", "other", "version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got := root.PersistentFlags().Lookup("name").Value.String(); got != "other" {
		t.Errorf("--cluster other: cluster name = %q, want other", got)
	}
}

func TestProxyConfigNameIsTheRouteFilter(t *testing.T) {
	// proxy-config routes/all have istioctl's --name (a route name); --cluster still names the kind cluster,
	// and endpoints' own --cluster (a cluster name) leaves --name to the kind cluster.
	dump := filepath.Join("proxyconfig", "testdata", "istio-waypoint-config_dump.json")
	route := "inbound-vip|8000|http|httpbin.default.svc.cluster.local"
	code, stdout, stderr := run("--cluster", "other", "proxy-config", "routes", "--file", dump, "--name", route)
	if code != 0 || !strings.Contains(stdout, route) {
		t.Fatalf("routes --name %s: exit %d\n%s%s", route, code, stdout, stderr)
	}
	code, stdout, stderr = run("proxy-config", "routes", "--file", dump, "--name", "nothing")
	if code != 0 || strings.Contains(stdout, route) {
		t.Errorf("routes --name nothing: exit %d, route not filtered out\n%s%s", code, stdout, stderr)
	}
	root := NewRootCommand(ui.NewLogger(&bytes.Buffer{}, 0, false), ui.Streams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	root.SetArgs([]string{"--cluster", "other", "proxy-config", "routes", "--file", dump, "--name", route})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got := root.PersistentFlags().Lookup("name").Value.String(); got != "other" {
		t.Errorf("--cluster other with routes --name: cluster name = %q, want other", got)
	}
}

func TestProxyConfigRefusesWhatIsNoDump(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pod.json")
	if err := os.WriteFile(path, []byte(`{"apiVersion": "v1", "kind": "Pod"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run("proxy-config", "listeners", "--file", path)
	if code != 2 || !strings.Contains(stderr, path+` is not an Envoy config dump`) || !strings.Contains(stderr, `it has no "configs"`) {
		t.Errorf("exit %d, stderr %q; want 2 and the reason", code, stderr)
	}
}

// TestClusterFromEnvironment: MESHLAB_CLUSTER names the kind cluster without a flag, which is how lab
// scripts call commands whose own --name and --cluster mean something else.
func TestClusterFromEnvironment(t *testing.T) {
	t.Setenv(cluster.NameEnv, "from-env")
	for _, args := range [][]string{
		{"version"},
		{"proxy-config", "routes", "--file", filepath.Join("proxyconfig", "testdata", "istio-waypoint-config_dump.json"), "--name", "x"},
	} {
		root := NewRootCommand(ui.NewLogger(&bytes.Buffer{}, 0, false), ui.Streams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		if got := root.PersistentFlags().Lookup("name").Value.String(); got != "from-env" {
			t.Errorf("%v with %s=from-env: cluster name = %q", args, cluster.NameEnv, got)
		}
	}
}

// Every command that reads the lab exits 2 (environment) with a message naming the cluster when the
// cluster is unreachable: here a kubeconfig whose API server is a closed port on loopback.
func TestUnreachableClusterExitsTwo(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: kind-gone, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: kind-gone, user: {token: x}}]
contexts: [{name: kind-gone, context: {cluster: kind-gone, user: kind-gone}}]
current-context: kind-gone
`), 0o600)
	for _, args := range [][]string{
		{"status"},
		{"proxy-status"},
		{"proxy-config", "listeners", "deploy/waypoint"},
		{"proxy-config", "endpoints", "productpage-v1-abc.default"},
		{"ztunnel-config", "workload"},
		{"waypoint", "list"},
		{"waypoint", "apply", "-n", "default", "--name", "waypoint"},
		{"check"},
		{"scenario", "run", "--all"},
		{"lab", "run", "--all"},
	} {
		args := append(args, "--cluster", "gone", "--kubeconfig", kubeconfig)
		code, _, stderr := run(args...)
		if code != 2 || !strings.Contains(stderr, "ERROR") {
			t.Errorf("meshlab %s: exit %d, want 2 with an error:\n%s", strings.Join(args, " "), code, stderr)
		}
	}
}

func TestArgsDispatchOnEchoNames(t *testing.T) {
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"/usr/local/bin/meshlab", "up"}, "up"},
		{[]string{"/usr/local/bin/client", "http://echo/", "--method=GET", "-H", "A:b"}, "echo client http://echo/ --method=GET -H A:b"},
		{[]string{"/usr/local/bin/server", "--port=8080", "--tcp=9090"}, "echo server --port=8080 --tcp=9090"},
		{[]string{"server"}, "echo server"},
		{nil, ""},
	} {
		if got := strings.Join(Args(c.argv), " "); got != c.want {
			t.Errorf("Args(%q) = %q, want %q", c.argv, got, c.want)
		}
	}
}
