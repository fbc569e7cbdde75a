package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// checkUserChecks runs `meshlab test` on the worked example of docs/writing-checks.md: its check files
// pass, each deliberately broken variant fails with expected vs seen and exit 1, and a file with a syntax
// error exits 2 before touching the lab.
func checkUserChecks(t *testing.T, ctx context.Context) {
	run := func(args ...string) (string, int) {
		t.Helper()
		stdout, stderr, code := meshlabExit(t, ctx, append([]string{"test", "--bundle-dir", t.TempDir()}, args...)...)
		t.Logf("meshlab test %s: exit %d\n%s", strings.Join(args, " "), code, stdout)
		return stdout + stderr, code
	}
	namespaces := func() string {
		t.Helper()
		out, err := kubectlCombined(t, ctx, nil, "get", "namespaces", "-o", "name")
		if err != nil {
			t.Fatalf("kubectl get namespaces: %v\n%s", err, out)
		}
		return out
	}

	if out, code := run("../examples/canary"); code != 0 {
		t.Errorf("the worked example: exit %d, want 0\n%s", code, out)
	}
	for file, want := range map[string]string{
		"wrong-weights.txtar": "seen:     echo-v1=50,echo-v2=50",
		"no-timeout.txtar":    "seen:     0s (none)",
	} {
		out, code := run("../examples/canary/testdata/" + file)
		if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "bundle") {
			t.Errorf("%s: exit %d, want 1 with %q and a bundle\n%s", file, code, want, out)
		}
	}
	before := namespaces()
	out, code := run("../examples/canary/canary.txtar", "../examples/canary/testdata/syntax-error.txtar")
	if code != 2 || !strings.Contains(out, `syntax-error.txtar:3: unknown command "rout"`) {
		t.Errorf("syntax error: exit %d, want 2 naming the file and line\n%s", code, out)
	}
	if after := namespaces(); after != before {
		t.Errorf("a rejected run changed the lab's namespaces:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// The worked example's lab (the team's canary as a tutorial) passes; its broken variant fails with the
	// assertion that did not hold, named by file and line, and exit 1.
	lab := func(path string) (string, int) {
		t.Helper()
		stdout, stderr, code := meshlabExit(t, ctx, "lab", "run", path)
		t.Logf("meshlab lab run %s: exit %d\n%s", path, code, lastLines(stdout, 30))
		return stdout + stderr, code
	}
	if out, code := lab("../examples/canary/labs/"); code != 0 || !strings.Contains(out, "--- PASS canary") {
		t.Errorf("the worked example's lab: exit %d, want 0\n%s", code, out)
	}
	want := "FAIL: ../examples/canary/testdata/broken-lab.txtar:26: no match for"
	if out, code := lab("../examples/canary/testdata/broken-lab.txtar"); code != 1 || !strings.Contains(out, want) {
		t.Errorf("the broken lab: exit %d, want 1 with %q\n%s", code, want, out)
	}

	// A check file and a lab the mesh never converges on (a waypoint whose pods a quota forbids) are not
	// judged: ERROR, exit 2, and the lab's namespaces are as they were once their cleanups ran.
	before = namespaces()
	out, code = run("--converge-timeout", "20s", "../examples/canary/testdata/never-converges.txtar")
	if code != 2 || !strings.Contains(out, "never-converges  ERROR") || !strings.Contains(out, "the lab never converged") ||
		!strings.Contains(out, "echo-waypoint was not connected") {
		t.Errorf("a check file that never converges: exit %d, want 2 with ERROR and the waypoint it waited for\n%s", code, out)
	}
	out, code = lab("../examples/canary/testdata/never-converges-lab.txtar")
	if code != 2 || !strings.Contains(out, "--- ERROR never-converges-lab") || !strings.Contains(out, "waypoint/never-converges/echo-waypoint: no proxy connected") {
		t.Errorf("a lab that never converges: exit %d, want 2 with ERROR and the waypoint it waited for\n%s", code, out)
	}
	waitNamespacesGone(t, ctx, namespaces, before)
}

// waitNamespacesGone waits until no namespace is left that before did not have: cleanups delete namespaces
// without waiting for them to terminate (and earlier tests' may still be terminating in before).
func waitNamespacesGone(t *testing.T, ctx context.Context, namespaces func() string, before string) {
	t.Helper()
	had := map[string]bool{}
	for _, ns := range strings.Fields(before) {
		had[ns] = true
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		after := namespaces()
		left := slices.DeleteFunc(strings.Fields(after), func(ns string) bool { return had[ns] })
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("namespaces left behind: %v", left)
			return
		}
		time.Sleep(2 * time.Second)
	}
}
