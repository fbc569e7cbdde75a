package labs_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/meshlab/meshlab/labs"
)

// e2eSetup returns the meshlab binary and the cluster to run the labs on, or skips without
// MESHLAB_E2E=1. The cluster (MESHLAB_E2E_CLUSTER, default meshlab-e2e) must be up: these tests
// neither create nor delete it. MESHLAB_BIN names the binary; without it the test builds one.
func e2eSetup(t *testing.T) (bin, cluster string) {
	t.Helper()
	if os.Getenv("MESHLAB_E2E") != "1" {
		t.Skip("set MESHLAB_E2E=1 (and MESHLAB_E2E_CLUSTER) to run the labs on a running lab cluster")
	}
	cluster = os.Getenv("MESHLAB_E2E_CLUSTER")
	if cluster == "" {
		cluster = "meshlab-e2e"
	}
	bin = os.Getenv("MESHLAB_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "meshlab")
		build := exec.Command("go", "build", "-o", bin, "github.com/meshlab/meshlab/cmd/meshlab")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building meshlab: %v\n%s", err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "--name", cluster, "status").CombinedOutput(); err != nil {
		t.Fatalf("the lab cluster %q is not up and ready (meshlab status: %v):\n%s", cluster, err, out)
	}
	return bin, cluster
}

// TestLabs runs every lab with go test's own testscript.Run, one after the other (they share the
// cluster: each t.Run returns only when its script and cleanups are done).
func TestLabs(t *testing.T) {
	bin, cluster := e2eSetup(t)
	cfg := labs.Config{Meshlab: bin, Name: cluster}
	for _, l := range labs.All() {
		t.Run(l.Name, func(t *testing.T) {
			p, err := cfg.Params(l, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			testscript.Run(t, p)
		})
	}
}

// TestLabRunCLI runs the read-only lab through `meshlab lab run`, the learner's way: the tutorial
// text is printed before the commands, and the exit code is 0.
func TestLabRunCLI(t *testing.T) {
	bin, cluster := e2eSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--name", cluster, "lab", "run", "ambient-basics")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	t.Logf("meshlab lab run ambient-basics:\n%s\nstderr:\n%s", out.String(), errOut.String())
	if err != nil {
		t.Fatalf("meshlab lab run ambient-basics: %v", err)
	}
	for _, want := range []string{"=== ambient-basics", "  In Istio's ambient mode no sidecar is injected.",
		"    $ meshlab ztunnel-config workloads", "--- PASS ambient-basics", "1 passed, 0 failed, 0 skipped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
