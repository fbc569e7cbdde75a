package load

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	env := cliutil.Env{Logger: ui.NewLogger(&out, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &out}, Globals: &cliutil.Globals{Name: "meshlab-no-such-cluster"}}
	cmd := NewCommand(env)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.Execute()
	return out.String(), err
}

func TestArgumentsAreRequired(t *testing.T) {
	for _, args := range [][]string{{"docker-image"}, {"image-archive"}} {
		if _, err := run(t, args...); !cliutil.IsUsage(err) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// A broken archive is a usage error (exit 2) found before the cluster is looked at: the missing
// cluster here is never reached.
func TestBadArchiveIsUsageError(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.tar")
	if err := os.WriteFile(bad, []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, "image-archive", bad, filepath.Join(t.TempDir(), "missing.tar"))
	if !cliutil.IsUsage(err) {
		t.Fatalf("image-archive of a bad and a missing file: %v, want a usage error", err)
	}
	for _, want := range []string{"bad.tar is not a readable tar archive", "missing.tar: open"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
