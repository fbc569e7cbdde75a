package meshlabenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/log"
)

func TestOptionsAndProvider(t *testing.T) {
	t.Setenv("MESHLAB_BIN", "/usr/local/bin/meshlab")
	t.Setenv("MESHLAB_KEEP", "")
	o := Options{}.withDefaults()
	if o.Name != DefaultName || o.Binary != "/usr/local/bin/meshlab" || o.Keep || !strings.HasSuffix(o.Kubeconfig, "meshlabenv-meshlab-e2e.kubeconfig") {
		t.Errorf("defaults = %+v", o)
	}
	p := NewProvider(Options{Kubeconfig: "/tmp/x/kc"})
	p.SetDefaults().WithName("lab2").WithPath("/bin/meshlab2")
	if p.GetKubectlContext() != "kind-lab2" || p.opts.Binary != "/bin/meshlab2" || p.GetKubeconfig() != "/tmp/x/meshlabenv-lab2.kubeconfig" {
		t.Errorf("provider = %+v", p.opts)
	}
	if _, err := p.CreateWithConfig(context.Background(), "kind.yaml"); err == nil {
		t.Errorf("CreateWithConfig accepted a kind config")
	}
}

// Destroy runs the meshlab binary's `down` against the provider's cluster, or nothing with Keep.
func TestDestroyRunsDown(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "args")
	bin := filepath.Join(dir, "meshlab")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho \"$@\" >> "+record+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	quiet := log.Noop
	if err := NewProvider(Options{Name: "lab3", Binary: bin, Logger: quiet}).Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := NewProvider(Options{Name: "kept", Binary: bin, Keep: true, Logger: quiet}).Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(record)
	if err != nil || string(got) != "--name lab3 down\n" {
		t.Errorf("binary ran %q (%v), want only `--name lab3 down`", got, err)
	}
	failing := filepath.Join(dir, "fails")
	os.WriteFile(failing, []byte("#!/bin/sh\necho boom\nexit 3\n"), 0o755)
	err = NewProvider(Options{Name: "x", Binary: failing, Logger: quiet}).Destroy(context.Background())
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("a failing down gave %v, want its output in the error", err)
	}
}
