package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/labs"
	"github.com/meshlab/meshlab/lifecycle"
)

// fake replaces the lab's status and the runner: labs named in failing fail.
func fake(t *testing.T, st *lifecycle.Status, statusErr error, failing ...string) *[]labs.Config {
	t.Helper()
	oldStatus, oldExe, oldRun := getStatus, executable, runLabs
	t.Cleanup(func() { getStatus, executable, runLabs = oldStatus, oldExe, oldRun })
	getStatus = func(context.Context, *cliutil.Globals, *ui.Logger) (*lifecycle.Status, error) { return st, statusErr }
	executable = func() (string, error) { return "/opt/meshlab", nil }
	var configs []labs.Config
	runLabs = func(cfg labs.Config, ls []labs.Lab) ([]labs.Result, error) {
		configs = append(configs, cfg)
		var rs []labs.Result
		for _, l := range ls {
			r := labs.Result{Name: l.Name, Passed: true}
			for _, f := range failing {
				if f == l.Name {
					r = labs.Result{Name: l.Name, Failure: "no match for `HBONE` found in stdout"}
				}
			}
			rs = append(rs, r)
		}
		return rs, nil
	}
	return &configs
}

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	streams := ui.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: streams,
		Globals: &cliutil.Globals{Name: "lab-e2e", Kubeconfig: "/tmp/kc", Verbosity: 1}}
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
		if exit.Err != nil {
			errOut.WriteString(exit.Err.Error())
		}
	case cliutil.IsUsage(err):
		code = 2
		errOut.WriteString(err.Error())
	default:
		code = 1
	}
	return out.String(), errOut.String(), code
}

func TestRunExitCodes(t *testing.T) {
	ready := &lifecycle.Status{Cluster: "lab-e2e", Exists: true, Ready: true}
	tests := []struct {
		name      string
		args      []string
		st        *lifecycle.Status
		statusErr error
		want      int
		wantOut   string
		wantErr   string
	}{
		{"one passes", []string{"run", "ambient-basics"}, ready, nil, 0, "1 passed, 0 failed, 0 skipped", ""},
		{"all, one fails", []string{"run", "--all"}, ready, nil, 1, fmt.Sprintf("%d passed, 1 failed", len(labs.All())-1), "1 lab failed"},
		{"one fails", []string{"run", "ambient-basics", "traffic-shifting"}, ready, nil, 1, "1 passed, 1 failed", "1 lab failed"},
		{"no names", []string{"run"}, ready, nil, 2, "", "or --all"},
		{"names and all", []string{"run", "--all", "ambient-basics"}, ready, nil, 2, "", "not both"},
		{"unknown lab", []string{"run", "nope"}, ready, nil, 2, "", `no lab "nope"`},
		{"no cluster", []string{"run", "--all"}, &lifecycle.Status{Cluster: "lab-e2e"}, nil, 2, "", "does not exist"},
		{"not ready", []string{"run", "--all"}, &lifecycle.Status{Cluster: "lab-e2e", Exists: true}, nil, 2, "", "not ready"},
		{"status error", []string{"run", "--all"}, nil, errors.New("docker is not running"), 2, "", "docker is not running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			configs := fake(t, tt.st, tt.statusErr, "traffic-shifting")
			out, errOut, code := run(t, tt.args...)
			if code != tt.want {
				t.Errorf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tt.want, out, errOut)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout = %q, want it to contain %q", out, tt.wantOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", errOut, tt.wantErr)
			}
			if tt.want == 2 && len(*configs) != 0 {
				t.Errorf("labs ran despite a usage or environment error")
			}
		})
	}
}

func TestRunConfig(t *testing.T) {
	configs := fake(t, &lifecycle.Status{Exists: true, Ready: true}, nil)
	if _, _, code := run(t, "run", "sidecar-injection", "--timeout", "90s"); code != 0 {
		t.Fatalf("exit code = %d", code)
	}
	c := (*configs)[0]
	if c.Meshlab != "/opt/meshlab" || c.Name != "lab-e2e" || c.Kubeconfig != "/tmp/kc" || !c.Verbose ||
		c.LabTimeout.Seconds() != 90 || c.Out == nil {
		t.Errorf("labs.Config = %+v; want the running binary, the global --name/--kubeconfig, -v, --timeout, stdout", c)
	}
}

func TestListAndShow(t *testing.T) {
	out, _, code := run(t, "list")
	if code != 0 || !strings.HasPrefix(out, "NAME") {
		t.Fatalf("list: code %d\n%s", code, out)
	}
	for _, l := range labs.All() {
		if !strings.Contains(out, l.Name) || !strings.Contains(out, l.Title) {
			t.Errorf("list lacks %s: %s", l.Name, l.Title)
		}
	}
	out, _, _ = run(t, "list", "-o", "json")
	if !strings.Contains(out, `"name": "traffic-shifting"`) {
		t.Errorf("list -o json:\n%s", out)
	}

	out, _, code = run(t, "show", "traffic-shifting")
	for _, want := range []string{"=== traffic-shifting\n", "  Traffic shifting: a waypoint", "    $ kubectl apply -f reviews-90-10.yaml",
		"--- reviews-90-10.yaml ---", "weight: 90", "  A waypoint only receives traffic for what opts in."} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("show (code %d) lacks %q:\n%s", code, want, out)
		}
	}
	if _, _, code := run(t, "show", "nope"); code != 2 {
		t.Errorf("show nope: code %d, want 2", code)
	}
}

func TestOwnLabs(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.txtar")
	bad := filepath.Join(dir, "bad.txtar")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(good, "# Good: a lab of a team's own.\n#\n# It explains itself.\nkubectl get pods\n")
	write(bad, "# Bad: a lab with mistakes.\nkubectl apply -f missing.yaml\nwaitfor '^ok$'\n")

	configs := fake(t, &lifecycle.Status{Cluster: "lab-e2e", Exists: true, Ready: true}, nil)
	out, _, code := run(t, "run", good, "ambient-basics")
	if code != 0 || !strings.Contains(out, "2 passed") {
		t.Errorf("run good.txtar ambient-basics: code %d\n%s", code, out)
	}
	// A malformed lab stops the whole run before anything reaches the cluster, every problem named.
	statusRead := false
	getStatus = func(context.Context, *cliutil.Globals, *ui.Logger) (*lifecycle.Status, error) {
		statusRead = true
		return &lifecycle.Status{Exists: true, Ready: true}, nil
	}
	_, errOut, code := run(t, "run", dir)
	for _, want := range []string{bad + ":2: kubectl -f missing.yaml: the lab embeds no file missing.yaml",
		bad + ":3: usage: waitfor [-timeout DURATION] REGEXP COMMAND ARGS..."} {
		if !strings.Contains(errOut, want) {
			t.Errorf("run DIR stderr lacks %q:\n%s", want, errOut)
		}
	}
	if code != 2 || statusRead || len(*configs) != 1 {
		t.Errorf("run DIR with a malformed lab: code %d, status read %v, runs %d; want 2, no status, only the earlier run", code, statusRead, len(*configs))
	}
	if _, errOut, code := run(t, "show", bad); code != 2 || !strings.Contains(errOut, bad+":2:") {
		t.Errorf("show bad.txtar: code %d, stderr %s", code, errOut)
	}
	if out, _, code := run(t, "show", good); code != 0 || !strings.Contains(out, "=== good\n") || !strings.Contains(out, "$ kubectl get pods") {
		t.Errorf("show good.txtar: code %d\n%s", code, out)
	}
}

func TestNewWritesARunnableScaffold(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := run(t, "new", "my-canary", "--dir", dir)
	path := filepath.Join(dir, "my-canary.txtar")
	if code != 0 || !strings.Contains(out, "Wrote "+path) {
		t.Fatalf("new: code %d\n%s%s", code, out, errOut)
	}
	ls, err := labs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := labs.Check(ls[0]); err != nil {
		t.Errorf("the scaffold does not pass its own check:\n%v", err)
	}
	if !strings.HasPrefix(ls[0].Title, "my-canary: ") {
		t.Errorf("title = %q", ls[0].Title)
	}
	script := string(ls[0].Script)
	for _, want := range []string{"\ncleanup ", "\nwaitfor ", "\nstdout ", "\n-- waypoint.yaml --\n", "kubectl apply -f waypoint.yaml"} {
		if !strings.Contains(script, want) {
			t.Errorf("scaffold lacks %q", want)
		}
	}
	// It never overwrites: the author's edits survive a second `lab new`.
	if err := os.WriteFile(path, []byte("# edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run(t, "new", "my-canary", "--dir", dir); code != 2 || !strings.Contains(errOut, "already exists") {
		t.Errorf("second new: code %d, stderr %q", code, errOut)
	}
	if data, _ := os.ReadFile(path); string(data) != "# edited\n" {
		t.Errorf("the existing lab was overwritten: %q", data)
	}
	if _, _, code := run(t, "new", "Bad Name", "--dir", dir); code != 2 {
		t.Errorf("new with a bad name: code %d, want 2", code)
	}
}

func TestStepUsage(t *testing.T) {
	fake(t, &lifecycle.Status{Exists: true, Ready: true}, nil)
	for _, args := range [][]string{
		{"run", "--step"},
		{"run", "--step", "ambient-basics", "traffic-shifting"},
		{"run", "--step", "--all"},
		{"run", "--restart", "ambient-basics"},
		{"run", "--step", "--restart", "--reset", "ambient-basics"},
	} {
		if _, _, code := run(t, args...); code != 2 {
			t.Errorf("%v: code %d, want 2", args, code)
		}
	}
}
