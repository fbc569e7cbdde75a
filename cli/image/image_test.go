package image_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/meshlab/meshlab/cli"
	"github.com/meshlab/meshlab/cli/ui"
)

func staticBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goTool, "build", "-o", "prog", "main.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return filepath.Join(dir, "prog")
}

func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	streams := ui.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	code = cli.Run(ui.NewLogger(&errOut, 0, false), streams, args)
	return code, out.String(), errOut.String()
}

func TestImageBuild(t *testing.T) {
	bin := staticBinary(t)
	tarPath := filepath.Join(t.TempDir(), "meshlab.tar")

	code, stdout, stderr := run("image", "build", "-v", "-o", tarPath, "--binary", bin)
	if code != 0 {
		t.Fatalf("image build exit %d, stderr:\n%s", code, stderr)
	}
	ref := strings.TrimSpace(stdout)
	if !regexp.MustCompile(`^meshlab\.local/meshlab:sha-[0-9a-f]{12}$`).MatchString(ref) {
		t.Errorf("stdout = %q, want only the image reference", stdout)
	}
	if !strings.Contains(stderr, "wrote "+tarPath) || !strings.Contains(stderr, "MiB") {
		t.Errorf("stderr at -v = %q, want the size and time written", stderr)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatalf("NewTag(%q) = %v", ref, err)
	}
	if _, err := tarball.ImageFromPath(tarPath, &tag); err != nil {
		t.Errorf("tarball has no image %s: %v", ref, err)
	}

	// Same binary, same reference.
	if _, again, _ := run("image", "build", "-o", tarPath, "--binary", bin); again != stdout {
		t.Errorf("second build printed %q, want %q", again, stdout)
	}
}

func TestImageBuildErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"no output", []string{"image", "build", "--binary", "/bin/ls"}, 2, "needs -o FILE"},
		{"extra argument", []string{"image", "build", "-o", filepath.Join(dir, "a.tar"), "extra"}, 2, "unknown command"},
		{"dynamic binary", []string{"image", "build", "-o", filepath.Join(dir, "b.tar"), "--binary", "/bin/ls"}, 1, "CGO_ENABLED=0"},
		{"missing binary", []string{"image", "build", "-o", filepath.Join(dir, "c.tar"), "--binary", filepath.Join(dir, "nope")}, 1, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(tt.args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("meshlab %v: exit %d, stderr %q; want exit %d and %q", tt.args, code, stderr, tt.wantCode, tt.wantStderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing on failure", stdout)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed builds left %d files behind", len(entries))
	}
}
