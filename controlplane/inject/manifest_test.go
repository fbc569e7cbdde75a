package inject

import (
	"bytes"
	"strings"
	"testing"
)

func TestReadManifestStrict(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"negative weight in a VirtualService", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [r]
  http:
  - route:
    - {destination: {host: r, subset: a}, weight: 110}
    - {destination: {host: r, subset: b}, weight: -10}
`, []string{"m.yaml: document 1 (VirtualService r), line 9: spec.http[0].route[1].weight: Invalid value: -10: must not be negative"}},
		{"misspelt field in a CronJob", `apiVersion: batch/v1
kind: CronJob
metadata: {name: c}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolcy: Never
          containers: [{name: c, image: x}]
`, []string{`m.yaml: document 1 (CronJob c), line 10: unknown field "spec.jobTemplate.spec.template.spec.restartPolcy"`}},
		{"misspelt field in a pass-through ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\nbinarydata: {}\n",
			[]string{`m.yaml: document 1 (ConfigMap c), line 5: unknown field "binarydata"`}},
		{"every document", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a, image: x}], hostnetwork: true}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: B}\n",
			[]string{`m.yaml: document 1 (Pod a), line 4: unknown field "spec.hostnetwork"`, `m.yaml: document 2 (Namespace B), line 8: metadata.name: Invalid value: "B"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := ReadManifest("m.yaml", []byte(tc.in))
			if err == nil || docs != nil {
				t.Fatalf("ReadManifest() = %d docs, %v; want only an error", len(docs), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// Kinds kube-inject has no schema for pass through verbatim, in and out of Lists.
func TestReadManifestPassThrough(t *testing.T) {
	in := "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {anything: goes}   # kept\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n  data: {k: v}\n"
	docs, err := ReadManifest("m.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || len(docs[1].Items) != 1 || len(Leaves(docs)) != 2 {
		t.Fatalf("docs = %+v", docs)
	}
	var out bytes.Buffer
	if err := WriteManifest(&out, docs); err != nil {
		t.Fatal(err)
	}
	if out.String() != in {
		t.Errorf("WriteManifest changed the documents:\n%s", out.String())
	}
}
