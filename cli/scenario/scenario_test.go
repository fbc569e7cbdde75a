package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/scenarios"
)

// fakeSuite replaces the real scenarios and the lab for one test.
func fakeSuite(t *testing.T, connectErr error) {
	t.Helper()
	oldReg, oldConnect := registry, connect
	t.Cleanup(func() { registry, connect = oldReg, oldConnect })
	registry = func() *scenarios.Registry {
		return scenarios.NewRegistry(
			&scenarios.Scenario{Name: "good", Description: "always passes", Check: func(t *scenarios.T) {}},
			&scenarios.Scenario{Name: "bad", Description: "always fails", Check: func(t *scenarios.T) {
				t.Expect(false, "reviews split", "reviews-v1 180, reviews-v2 20", "reviews-v1 200")
			}},
			&scenarios.Scenario{Name: "later", Description: "needs a mesh", Requires: func(t *scenarios.T) { t.Skipf("requires ztunnel") }, Check: func(t *scenarios.T) {}},
		)
	}
	connect = func(context.Context, *cliutil.Globals, *ui.Logger) (*scenarios.Env, error) {
		return nil, connectErr
	}
}

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
		code = 0
	case errors.As(err, &exit):
		code = exit.Code
	case cliutil.IsUsage(err):
		code = 2
	default:
		code = 1
	}
	return out.String(), errOut.String(), code
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		args       []string
		connectErr error
		want       int
		wantOut    string
	}{
		{[]string{"run", "good"}, nil, 0, "1 passed, 0 failed, 0 skipped"},
		{[]string{"run", "good", "later"}, nil, 0, "requires ztunnel"},
		{[]string{"run", "good", "later", "--fail-on-skip"}, nil, 1, "1 skipped"},
		{[]string{"run", "bad"}, nil, 1, "expected: reviews-v1 180, reviews-v2 20"},
		{[]string{"run", "--all"}, nil, 1, "1 passed, 1 failed, 1 skipped"},
		{[]string{"run"}, nil, 2, ""},
		{[]string{"run", "--all", "good"}, nil, 2, ""},
		{[]string{"run", "nope"}, nil, 2, ""},
		{[]string{"run", "good", "-o", "xml"}, nil, 2, ""},
		{[]string{"run", "good"}, scenarios.ErrEnvironment, 2, ""},
		{[]string{"list"}, nil, 0, "later  needs a mesh"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fakeSuite(t, tt.connectErr)
			args := append(tt.args, "--bundle-dir", t.TempDir())
			if tt.args[0] == "list" {
				args = tt.args
			}
			out, errOut, code := run(t, args...)
			if code != tt.want {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.want, out, errOut)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantOut, out)
			}
		})
	}
}

func TestJUnitAndJSON(t *testing.T) {
	fakeSuite(t, nil)
	dir := t.TempDir()
	junit := filepath.Join(dir, "reports", "junit.xml")
	out, _, code := run(t, "run", "--all", "--junit", junit, "-o", "json", "--bundle-dir", filepath.Join(dir, "bundles"))
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	var rep struct {
		Passed, Failed, Skipped int
		Results                 []struct {
			Name   string
			Status string
			Bundle string
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if rep.Passed != 1 || rep.Failed != 1 || rep.Skipped != 1 || rep.Results[1].Bundle == "" {
		t.Errorf("report = %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(rep.Results[1].Bundle, "failure.txt")); err != nil {
		t.Errorf("failure bundle: %v", err)
	}
	data, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Cases    []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("JUnit: %v\n%s", err, data)
	}
	if len(doc.Suites) != 1 || doc.Suites[0].Tests != 3 || doc.Suites[0].Failures != 1 || doc.Suites[0].Cases[1].Failure == nil {
		t.Errorf("JUnit = %+v", doc)
	}
}
