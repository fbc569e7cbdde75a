package diff_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli"
	"github.com/meshlab/meshlab/cli/ui"
	cpdiff "github.com/meshlab/meshlab/controlplane/diff"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

// run drives the whole CLI, as the binary does, so exit codes are the real ones.
func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = cli.Run(ui.NewLogger(&errOut, 0, false), ui.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, append([]string{"diff"}, args...))
	return code, out.String(), errOut.String()
}

var (
	bookinfo = modeltest.Path(modeltest.Bookinfo)
	vs       = modeltest.Path(modeltest.ReviewsVS)
	weights  = filepath.Join("..", "..", "controlplane", "diff", "testdata", "change", "reviews-weight-50-50.yaml")
)

func TestExitCode(t *testing.T) {
	const rds = "~ RDS inbound-vip|9080|http|reviews.default.svc.cluster.local"
	for _, tc := range []struct {
		name string
		args []string
		want int
		out  string
	}{
		{"change, no --exit-code", []string{"--base-file", bookinfo, "--base-file", vs, "-f", weights}, 0, rds},
		{"change", []string{"--base-file", bookinfo, "--base-file", vs, "-f", weights, "--exit-code"}, 1, rds},
		{"no change", []string{"--base-file", bookinfo, "--base-file", vs, "-f", vs, "--exit-code"}, 0, "no proxy config changes"},
		{"narrowed to an untouched proxy", []string{"--base-file", bookinfo, "--base-file", vs, "-f", weights, "--exit-code", "--proxy", "ztunnel/meshlab-worker"}, 0,
			"untouched (1): ztunnel/meshlab-worker\nno proxy config changes\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := run(tc.args...)
			if code != tc.want {
				t.Errorf("exit %d, want %d (stderr: %s)", code, tc.want, stderr)
			}
			if !strings.Contains(out, tc.out) {
				t.Errorf("stdout lacks %q:\n%s", tc.out, out)
			}
			if stderr != "" {
				t.Errorf("stderr = %q, want nothing", stderr)
			}
		})
	}
}

func TestOutputFormats(t *testing.T) {
	code, out, stderr := run("--base-file", bookinfo, "--base-file", vs, "-f", weights, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r cpdiff.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("-o json is not a report: %v\n%s", err, out)
	}
	if len(r.Proxies) != 1 || r.Proxies[0].Proxy != "waypoint/default/reviews-waypoint" || len(r.Proxies[0].Resources) != 1 ||
		len(r.Proxies[0].Resources[0].Fields) != 2 || len(r.Untouched) != 2 {
		t.Errorf("report = %+v", r)
	}
	if f := r.Proxies[0].Resources[0].Fields[0]; f.Old != float64(90) || f.New != float64(50) {
		t.Errorf("first field = %+v, want 90 -> 50", f)
	}
	code, out, _ = run("--base-file", bookinfo, "--base-file", vs, "-f", weights, "-o", "yaml")
	if code != 0 || !strings.Contains(out, "untouched:\n- ztunnel/meshlab-worker\n") || !strings.Contains(out, "type: RDS") {
		t.Errorf("-o yaml: exit %d\n%s", code, out)
	}
}

// Every error exits 2 (1 means "some change"), with the problem and where it is on stderr and nothing on
// stdout.
func TestErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	malformed := write("bad.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: [\n")
	unknown := write("widget.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: default}\n")
	invalid := write("vs.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
      weight: -5
`)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"live base, no lab", []string{"--kubeconfig", "/nonexistent/kubeconfig", "-f", weights}, `the base is the running lab "meshlab" (no --base-file)`},
		{"no change", []string{"--base-file", bookinfo}, "give at least one -f"},
		{"malformed change", []string{"--base-file", bookinfo, "-f", malformed}, "bad.yaml: document 1, line 3: malformed YAML"},
		{"malformed base", []string{"--base-file", malformed, "-f", weights}, "bad.yaml: document 1, line 3: malformed YAML"},
		{"unknown kind", []string{"--base-file", bookinfo, "-f", unknown}, "widget.yaml: document 1 (Widget default/w), line 1: example.com/v1 Widget: not a kind the control plane reads"},
		{"invalid object", []string{"--base-file", bookinfo, "-f", invalid}, "vs.yaml: document 1 (VirtualService default/reviews), line 9: spec.http[0].route[0].weight"},
		{"missing file", []string{"--base-file", "/nonexistent.yaml", "-f", weights}, "/nonexistent.yaml: no such file"},
		{"bad proxy id", []string{"--base-file", bookinfo, "-f", weights, "--proxy", "router/x"}, `unknown kind "router"`},
		{"unknown proxy", []string{"--base-file", bookinfo, "-f", weights, "--proxy", "waypoint/default/nope"}, "no proxy waypoint/default/nope in the base or the new world"},
		{"bad format", []string{"--base-file", bookinfo, "-f", weights, "-o", "xml"}, "unknown output format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := run(append(tc.args, "--exit-code")...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr: %s)", code, stderr)
			}
			if !strings.Contains(stderr, "ERROR: ") || !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr = %q, want an error with %q", stderr, tc.want)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
		})
	}
}

// In --replace mode -f is the whole new world: a kind the control plane does not read is a warning (as in
// render), and what -f leaves out is deleted.
func TestReplace(t *testing.T) {
	dir := t.TempDir()
	cm := filepath.Join(dir, "cm.yaml")
	if err := os.WriteFile(cm, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run("--base-file", bookinfo, "--base-file", vs, "--replace", "-f", bookinfo, "-f", cm, "--exit-code", "--proxy", "waypoint/default/reviews-waypoint")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (stderr: %s)", code, stderr)
	}
	if !strings.Contains(out, "- CDS inbound-vip|9080|http/v1|reviews.default.svc.cluster.local") {
		t.Errorf("deleting the DestinationRule does not remove the subset clusters:\n%s", out)
	}
	if !strings.Contains(stderr, "WARNING: ") || !strings.Contains(stderr, "ConfigMap") {
		t.Errorf("stderr = %q, want a warning about the ConfigMap", stderr)
	}
}
