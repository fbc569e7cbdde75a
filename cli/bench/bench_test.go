package bench

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, true), Streams: ui.Streams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut},
		Globals: &cliutil.Globals{}}
	cmd := NewCommand(env)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	return out.String(), err
}

func TestControlPlaneJSON(t *testing.T) {
	out, err := run(t, "controlplane", "-o", "json", "--proxies", "3", "--changes", "2", "--services", "10", "--pods", "20")
	if err != nil {
		t.Fatalf("bench controlplane = %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	for _, f := range []string{"sidecar_configs", "waypoint_configs", "sidecar_bytes", "waypoint_bytes", "push_p50_ms", "push_p99_ms", "proxies", "heap_mb", "rss_mb", "cpu_s"} {
		if _, ok := got[f]; !ok {
			t.Errorf("field %s missing from %s", f, out)
		}
	}
	if got["sidecar_configs"] != float64(25000) || got["waypoint_configs"] != float64(100) || got["proxies"] != float64(3) {
		t.Errorf("sidecar_configs %v, waypoint_configs %v, proxies %v; want 25000, 100, 3", got["sidecar_configs"], got["waypoint_configs"], got["proxies"])
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"controlplane", "-o", "xml"},
		{"controlplane", "--proxies", "0"},
		{"dataplane", "--paths", "sideways"},
		{"dataplane", "--connections", "0"},
		{"proxy"},
	} {
		if _, err := run(t, args...); !cliutil.IsUsage(err) {
			t.Errorf("bench %v = %v, want a usage error", args, err)
		}
	}
}
