package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cluster"
)

// checkOwnLabs runs a team's own labs the way CI does: `meshlab lab new` writes a scaffold that passes
// `meshlab lab run DIR` as written, and a malformed lab beside it stops the run with exit 2 and its
// FILE:LINE before anything touches the cluster.
func checkOwnLabs(t *testing.T, ctx context.Context) {
	dir := t.TempDir()
	if _, err := meshlab(t, ctx, "lab", "new", "team-canary", "--dir", dir); err != nil {
		t.Fatalf("meshlab lab new: %v", err)
	}
	out, err := meshlab(t, ctx, "lab", "run", dir)
	if err != nil || !strings.Contains(out, "--- PASS team-canary") {
		t.Fatalf("meshlab lab run %s: %v\n%s", dir, err, out)
	}

	broken := filepath.Join(dir, "broken.txtar")
	if err := os.WriteFile(broken, []byte("# Broken: applies a file it does not embed.\nkubectl apply -f missing.yaml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, meshlabBin, "lab", "run", dir)
	cmd.Env = append(os.Environ(), cluster.NameEnv+"="+clusterName)
	combined, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(combined), broken+":2: kubectl -f missing.yaml") ||
		strings.Contains(string(combined), "=== team-canary") {
		t.Errorf("meshlab lab run with a malformed lab: %v, want exit 2 naming %s:2 and no lab run\n%s", err, broken, combined)
	}
}
