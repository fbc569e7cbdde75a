package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/ui"
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
