package yamldoc

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

const stream = `# license header: not a document
---
apiVersion: v1
kind: Service
metadata: {name: a}
---
# comment-only: an empty document
---
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: d
    namespace: shop
  spec:
    replicas: 1
- apiVersion: v1
  kind: List
  items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: p}
--- # a comment after the separator
{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "labels": {"app.kubernetes.io/name": "x"}}}
`

func TestRead(t *testing.T) {
	docs, err := Read("s.yaml", strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range docs {
		got = append(got, d.Where()+" @"+strconv.Itoa(d.Line))
	}
	want := []string{
		"s.yaml: document 1 (Service a) @3",
		"s.yaml: document 3 item 1 (Deployment shop/d) @12",
		"s.yaml: document 3 item 2.1 (Pod p) @22",
		"s.yaml: document 4 (Namespace n) @26",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if string(docs[1].JSON) != `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"shop"},"spec":{"replicas":1}}` {
		t.Errorf("item JSON = %s", docs[1].JSON)
	}
	if docs[0].Raw == nil || docs[1].Raw != nil {
		t.Errorf("Raw should be set for documents only")
	}
	if l := docs[2].List; l == nil || l.Kind != "List" || l.List != docs[1].List || l.List.Raw == nil || docs[0].List != nil {
		t.Errorf("List links wrong: item 2.1 is in %+v", l)
	}
	for _, tc := range []struct {
		doc  int
		path string
		line int
	}{
		{1, "spec.replicas", 18},
		{1, "spec.replicas.nope", 18},
		{1, "metadata.namespace", 16},
		{1, "", 12},
		{2, "metadata.name", 24},
		{3, "metadata.labels[app.kubernetes.io/name]", 26},
	} {
		if got := docs[tc.doc].LineOf(tc.path); got != tc.line {
			t.Errorf("%s: LineOf(%q) = %d, want %d", docs[tc.doc].Where(), tc.path, got, tc.line)
		}
	}
}

func TestReadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"malformed", "apiVersion: v1\nkind: Service\nmetadata: {name: [\n", []string{"f.yaml: document 1, line 3: malformed YAML: did not find expected node content"}},
		{"malformed in document 2", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\na: b\n c: d\n", []string{"f.yaml: document 2, line 6: malformed YAML:"}},
		{"duplicate key", "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  name: b\n", []string{`f.yaml: document 1, line 5: duplicate key "metadata.name" (first at line 4)`}},
		{"duplicate in a list", "---\nkind: x\nspec:\n  rules:\n  - action: ALLOW\n    action: DENY\n", []string{`f.yaml: document 1, line 6: duplicate key "spec.rules[0].action" (first at line 5)`}},
		{"not an object", "- a\n- b\n", []string{"f.yaml: document 1, line 1: not a Kubernetes object"}},
		{"no kind", "apiVersion: v1\nmetadata: {name: x}\n", []string{"document 1, line 1: missing apiVersion or kind"}},
		{"bad separator", "a: b\n--- c: d\n", []string{`f.yaml, line 2: invalid YAML document separator "c: d"`}},
		{"bad List item", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n- {metadata: {name: b}}\n", []string{"f.yaml: document 1 item 2, line 7: missing apiVersion or kind"}},
		{"metadata of the wrong type", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [a]\n", []string{"f.yaml: document 1, line 4: metadata.name: must be a string"}},
		{"every error", "a: [\n---\nb: [\n", []string{"document 1, line 1", "document 2, line 3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := ReadFile("f.yaml", []byte(tc.in))
			if err == nil {
				t.Fatalf("Read() = %d docs, want an error", len(docs))
			}
			if docs != nil {
				t.Errorf("Read() returned documents with an error")
			}
			var de *Error
			if !errors.As(err, &de) {
				t.Errorf("error %v is no *Error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// A line longer than any scanner buffer is read, not silently dropped.
func TestReadLongLine(t *testing.T) {
	long := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata: {k: " + strings.Repeat("x", 17<<20) + "}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: after}\n"
	docs, err := Read("big.yaml", strings.NewReader(long))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[1].Name != "after" || docs[1].Line != 6 {
		t.Fatalf("got %d docs", len(docs))
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		r.n++
		return copy(p, "apiVersion: v1\nkind: Namespace\n"), nil
	}
	return 0, io.ErrUnexpectedEOF
}

func TestReadError(t *testing.T) {
	docs, err := Read("in", &failingReader{})
	if !errors.Is(err, io.ErrUnexpectedEOF) || docs != nil || !strings.Contains(err.Error(), "reading in") {
		t.Fatalf("Read() = %v, %v", docs, err)
	}
}

func TestReadEdges(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string // Where @line of each object
	}{
		{"empty", "", nil},
		{"only separators", "---\n---\n", nil},
		{"CRLF", "apiVersion: v1\r\nkind: Namespace\r\nmetadata: {name: a}\r\n---\r\napiVersion: v1\r\nkind: Namespace\r\nmetadata: {name: b}\r\n", []string{"f: document 1 (Namespace a) @1", "f: document 2 (Namespace b) @5"}},
		{"document end marker", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n...\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n", []string{"f: document 1 (Namespace a) @1", "f: document 2 (Namespace b) @6"}},
		{"four dashes are not a separator", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  k: |\n    ----\n", []string{"f: document 1 (ConfigMap a) @1"}},
		{"empty List", "apiVersion: v1\nkind: List\nitems: []\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := Read("f", strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range docs {
				got = append(got, d.Where()+" @"+strconv.Itoa(d.Line))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
