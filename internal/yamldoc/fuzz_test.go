package yamldoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRead feeds the loader arbitrary streams, seeded with the repository's own manifests. It must not
// panic; a refused stream is refused with *Errors that name the source; an accepted one yields documents
// whose JSON is valid, whose lines are inside the stream, and which read the same when their document is
// read on its own (splitting a stream does not change what its documents say).
func FuzzRead(f *testing.F) {
	seeds, _ := filepath.Glob("../../controlplane/model/modeltest/testdata/*.yaml")
	more, _ := filepath.Glob("../../examples/*/*.yaml")
	for _, name := range append(seeds, more...) {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b, "spec.http[0].route[1].weight")
		}
	}
	for _, s := range []string{
		"# only a comment\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - {apiVersion: v1, kind: Service, metadata: {name: s}}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  a: yes\n  a: no\n",
		"a: &x [1, 2]\nb: *x\n--- # comment\n{\"apiVersion\": \"v1\", \"kind\": \"Pod\"}\n---x\n",
		"kind: Pod\nspec:\n  containers:\n  - name: |\n      ---\n      multi\n",
		"--- not a comment\n",
		"\t- tab\n",
	} {
		f.Add([]byte(s), "metadata.labels[app]")
	}
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		docs, err := ReadFile("in.yaml", data)
		if err != nil {
			checkErrors(t, err)
			return
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		byIndex := map[int][]*Doc{}
		for _, d := range docs {
			if !json.Valid(d.JSON) {
				t.Fatalf("%s: invalid JSON %q", d.Where(), d.JSON)
			}
			if d.Line < 1 || d.Line > lines {
				t.Fatalf("%s: starts on line %d of a %d-line stream", d.Where(), d.Line, lines)
			}
			if l := d.LineOf(path); l < 0 || l > lines {
				t.Fatalf("%s: LineOf(%q) = %d in a %d-line stream", d.Where(), path, l, lines)
			}
			if !strings.HasPrefix(d.Where(), "in.yaml") {
				t.Fatalf("Where() = %q does not name the source", d.Where())
			}
			byIndex[d.Index] = append(byIndex[d.Index], d)
		}
		for index, group := range byIndex {
			top := group[0]
			for top.List != nil {
				top = top.List
			}
			again, err := ReadFile("again.yaml", top.Raw)
			if err != nil {
				t.Fatalf("document %d reads in its stream but not on its own: %v", index, err)
			}
			if len(again) != len(group) {
				t.Fatalf("document %d: %d objects in its stream, %d on its own", index, len(group), len(again))
			}
			for i := range again {
				if !bytes.Equal(again[i].JSON, group[i].JSON) {
					t.Fatalf("document %d object %d: %s in its stream, %s on its own", index, i, group[i].JSON, again[i].JSON)
				}
			}
		}
	})
}

// checkErrors checks that every error Read joined is an *Error naming the source.
func checkErrors(t *testing.T, err error) {
	t.Helper()
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var de *Error
		if !errors.As(e, &de) {
			t.Fatalf("error %q (%T) is not an *Error", e, e)
		}
		if msg := e.Error(); !strings.HasPrefix(msg, "in.yaml") {
			t.Fatalf("error %q does not name the source", msg)
		}
	}
}
