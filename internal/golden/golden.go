// Package golden compares what a test produced with a file under testdata, the way every golden test in
// meshlab does: `go test ./... -update` rewrites the files, and a difference is reported line by line with
// the path to the file and the command that accepts it.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// update is the one -update flag of every test binary that compares golden files.
var update = flag.Bool("update", false, "rewrite golden files under testdata with what the tests produce")

// Updating reports whether the test binary runs with -update.
func Updating() bool { return *update }

// Check compares got with the file at path (relative to the test's package directory). With -update it
// writes got to path first, creating the directory.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run `go test -update` to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s (-want +got; run `go test -update` to accept):\n%s",
			path, cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")))
	}
}

// CheckString is Check for text.
func CheckString(t testing.TB, path, got string) {
	t.Helper()
	Check(t, path, []byte(got))
}
