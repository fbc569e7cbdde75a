package render_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	clirender "github.com/meshlab/meshlab/cli/render"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

func run(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &errOut}, Globals: &cliutil.Globals{}}
	cmd := clirender.NewCommand(env)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestRender(t *testing.T) {
	out, _, err := run("-f", modeltest.Path(modeltest.Bookinfo), "-f", modeltest.Path(modeltest.ReviewsVS), "--proxy", "waypoint/default/reviews-waypoint")
	if err != nil {
		t.Fatalf("render = %v", err)
	}
	for _, want := range []string{`"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"`, `"weight": 90`, `"endpointId": "10.244.1.13:9080"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s", want)
		}
	}
	out, _, err = run("-f", modeltest.Dir(), "--proxy", "ztunnel/meshlab-worker", "-o", "yaml")
	if err != nil || !strings.Contains(out, "workloads:") {
		t.Errorf("render ztunnel -o yaml = %v\n%s", err, out)
	}
}

func TestRenderErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: Service\nmetadata: {name: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bookinfo := modeltest.Path(modeltest.Bookinfo)
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool // exit 2 rather than 1
		want  string
	}{
		{"no files", []string{"--proxy", "ztunnel/n"}, true, "give at least one -f"},
		{"no proxy", []string{"-f", bookinfo}, true, "no proxy"},
		{"bad proxy id", []string{"-f", bookinfo, "--proxy", "router/x"}, true, `unknown kind "router"`},
		{"bad format", []string{"-f", bookinfo, "--proxy", "ztunnel/n", "-o", "xml"}, true, "unknown output format"},
		{"missing file", []string{"-f", "/nonexistent.yaml", "--proxy", "ztunnel/n"}, false, "/nonexistent.yaml: no such file"},
		{"bad yaml", []string{"-f", bad, "--proxy", "ztunnel/n"}, true, "bad.yaml: document 1, line 3: malformed YAML"},
		{"unknown waypoint", []string{"-f", bookinfo, "--proxy", "waypoint/default/nope"}, false, "no waypoint default/nope"},
		{"unknown node", []string{"-f", bookinfo, "--proxy", "ztunnel/nowhere"}, false, `no pods on node "nowhere"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(tc.args...)
			if err == nil {
				t.Fatal("render succeeded")
			}
			var u *cliutil.UsageError
			if errors.As(err, &u) != tc.usage {
				t.Errorf("usage error = %v, want %v (%v)", !tc.usage, tc.usage, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want %q", err, tc.want)
			}
		})
	}
}

// TestRenderCoverage: what meshlab does not implement is printed as a warning, and what it rejects fails
// the render with exit 2 (a UsageError) naming file, line, field and "meshlab does not implement".
func TestRenderCoverage(t *testing.T) {
	dir := t.TempDir()
	warned := filepath.Join(dir, "dr.yaml")
	if err := os.WriteFile(warned, []byte(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-lb, namespace: default}
spec:
  host: ratings
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST, warmupDurationSecs: 30s}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	bookinfo := modeltest.Path(modeltest.Bookinfo)
	out, stderr, err := run("-f", bookinfo, "-f", warned, "--proxy", "ztunnel/meshlab-worker")
	if err != nil || !strings.Contains(out, "workloads") {
		t.Fatalf("render with a warned field = %v\n%s", err, stderr)
	}
	if want := "spec.trafficPolicy.loadBalancer.warmupDurationSecs: meshlab does not implement DestinationRule trafficPolicy.loadBalancer.warmupDurationSecs"; !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}

	rejected := filepath.Join(dir, "vs.yaml")
	if err := os.WriteFile(rejected, []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: ratings}}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = run("-f", bookinfo, "-f", rejected, "--proxy", "ztunnel/meshlab-worker")
	var u *cliutil.UsageError
	if err == nil || !errors.As(err, &u) {
		t.Fatalf("render with a rejected field = %v, want a usage error (exit 2)", err)
	}
	if want := "vs.yaml: document 1 (VirtualService default/ratings), line 7: spec.http[0].fault.abort.grpcStatus: meshlab does not implement VirtualService http.fault.abort.grpcStatus"; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v\nwant %q", err, want)
	}
	if out != "" {
		t.Errorf("rendered despite the rejection:\n%s", out)
	}
}
