package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/scenarios"
)

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	streams := ui.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: streams, Globals: &cliutil.Globals{Name: "meshlab"}}
	cmd := NewCommand(env)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true // as the root command does
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	var exit *cliutil.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.Code
	case cliutil.IsUsage(err):
		code = 2
	default:
		code = 1
	}
	if err != nil {
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), code
}

const example = "../../examples/canary"

func TestExitCodes(t *testing.T) {
	connected := false
	connect = func(context.Context, *cliutil.Globals, *ui.Logger) (*scenarios.Env, error) {
		connected = true
		return nil, errors.New("no cluster in unit tests")
	}
	bundles := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		want    int
		wantOut string // in stdout+stderr
	}{
		{"example passes offline", []string{"--offline", example}, 0, "3 passed, 0 failed, 0 skipped"},
		{"skips are listed", []string{"--offline", filepath.Join(example, "canary.txtar")}, 0, "line 19: split -from deploy/client"},
		{"broken variant fails", []string{"--offline", "--bundle-dir", bundles, filepath.Join(example, "testdata", "wrong-weights.txtar")}, 1, "seen:     echo-v1=50,echo-v2=50"},
		{"syntax error", []string{"--offline", filepath.Join(example, "testdata")}, 2, "syntax-error.txtar:3: unknown command \"rout\""},
		{"no such path", []string{"--offline", "nowhere.txtar"}, 2, "nowhere.txtar"},
		{"bad output", []string{"--offline", "-o", "xml", example}, 2, "unknown output format"},
		{"base without offline", []string{"-f", "x.yaml", example}, 2, "-f gives --offline base objects"},
		{"no cluster", []string{example}, 2, "no cluster in unit tests"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			connected = false
			out, errOut, code := run(t, tc.args...)
			if code != tc.want {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tc.want, out, errOut)
			}
			if !strings.Contains(out+errOut, tc.wantOut) {
				t.Errorf("output lacks %q:\n%s\n%s", tc.wantOut, out, errOut)
			}
			if tc.want == 2 && tc.name != "no cluster" && connected {
				t.Errorf("bad input reached the cluster")
			}
		})
	}
}

func TestJSONAndJUnit(t *testing.T) {
	junit := filepath.Join(t.TempDir(), "out", "junit.xml")
	out, errOut, code := run(t, "--offline", "-o", "json", "--junit", junit, "--bundle-dir", t.TempDir(),
		filepath.Join(example, "canary.txtar"), filepath.Join(example, "testdata", "no-timeout.txtar"))
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, errOut)
	}
	var rep struct {
		Passed, Failed int
		Results        []struct {
			Name     string
			Status   string
			Failures []scenarios.Failure
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Passed != 1 || rep.Failed != 1 || rep.Results[1].Failures[0].Expected != "2s" {
		t.Errorf("report %+v", rep)
	}
	data, err := os.ReadFile(junit)
	if err != nil || !strings.Contains(string(data), `name="no-timeout"`) || !strings.Contains(string(data), "<failure") {
		t.Errorf("JUnit %s: %v\n%s", junit, err, data)
	}
}
