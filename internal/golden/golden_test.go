package golden

import (
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing the test.
type recorder struct {
	testing.TB
	errors []string
	fatal  bool
}

func (r *recorder) Helper()                   {}
func (r *recorder) Errorf(f string, a ...any) { r.errors = append(r.errors, f) }
func (r *recorder) Fatalf(f string, a ...any) { r.fatal = true; r.errors = append(r.errors, f) }

func TestCheck(t *testing.T) {
	if Updating() {
		t.Skip("-update rewrites instead of comparing")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "x.golden")

	r := &recorder{TB: t}
	Check(r, path, []byte("a\n"))
	if !r.fatal {
		t.Errorf("a missing golden file was not reported")
	}

	*update = true
	Check(t, path, []byte("a\nb\n"))
	*update = false

	r = &recorder{TB: t}
	CheckString(r, path, "a\nb\n")
	if len(r.errors) != 0 {
		t.Errorf("equal output reported: %v", r.errors)
	}
	r = &recorder{TB: t}
	CheckString(r, path, "a\nc\n")
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "differs") {
		t.Errorf("different output not reported: %v", r.errors)
	}
}
