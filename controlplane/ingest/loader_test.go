package ingest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/meshlab/meshlab/controlplane/ingest"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const good = `# a comment-only document is skipped
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {clusterIP: 10.96.0.1, ports: [{port: 9080}]}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews}
`

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", good)
	write(t, dir, "b.yml", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: shop, namespace: ignored}\n")
	write(t, dir, "notes.txt", "not yaml at all: [")
	store, warnings, err := ingest.LoadFiles(dir)
	if err != nil {
		t.Fatalf("LoadFiles() = %v", err)
	}
	if got, want := store.Len(), 3; got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
	svc, ok := store.Get(ingest.Key{Kind: ingest.KindService, Namespace: "default", Name: "reviews"})
	if !ok || svc.(*corev1.Service).Spec.ClusterIP != "10.96.0.1" {
		t.Errorf("Get(Service default/reviews) = %v, %v (namespace should default to default)", svc, ok)
	}
	if _, ok := store.Get(ingest.Key{Kind: ingest.KindNamespace, Name: "shop"}); !ok {
		t.Errorf("Namespace shop from a List not loaded (cluster-scoped: namespace dropped)")
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0].String(), "a.yaml: document 3 (Deployment reviews), line 13: skipping apps/v1 Deployment") {
		t.Errorf("warnings = %v", warnings)
	}
}

func TestLoadFilesRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          []string
	}{
		{"malformed YAML", "apiVersion: v1\nkind: Service\nmetadata: {name: x\n", []string{"bad.yaml: document 1, line 2: malformed YAML"}},
		{"missing kind", "apiVersion: v1\nmetadata: {name: x}\n", []string{"bad.yaml: document 1, line 1: missing apiVersion or kind"}},
		{"unknown field", "---\napiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIp: 10.0.0.1}\n", []string{`bad.yaml: document 1 (Service x), line 5: unknown field "spec.clusterIp"`}},
		{"wrong type", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: 3}\n", []string{"bad.yaml: document 1 (Pod x), line 4: spec.containers: a number cannot be decoded into []v1.Container"}},
		{"no name", "apiVersion: v1\nkind: Pod\nmetadata: {}\n", []string{"bad.yaml: document 1 (Pod), line 3: metadata.name: Required value"}},
		{"not an object", "- a\n- b\n", []string{"not a Kubernetes object"}},
		{"duplicate", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
			[]string{"bad.yaml: document 2 (Namespace a), line 5: Namespace/a is defined twice (first in", "bad.yaml: document 1 (Namespace a), line 1)"}},
		{"bad istio spec", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: 3}\n", []string{`bad.yaml: document 1 (VirtualService x), line 4: spec.hosts: Invalid value: "number": must be a list`}},
		// Istio's specs decode unknown fields silently: the misspelt action would make a DENY policy an ALLOW one.
		{"misspelt AuthorizationPolicy field", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: deny\n  namespace: default\nspec:\n  actoin: DENY\n  rules: [{from: [{source: {namespaces: [foo]}}]}]\n",
			[]string{`bad.yaml: document 2 (AuthorizationPolicy default/deny), line 11: unknown field "spec.actoin"`}},
		{"misspelt VirtualService field", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  hosts: [x]\n  http:\n  - route:\n    - destination: {host: x}\n      wieght: 10\n",
			[]string{`bad.yaml: document 1 (VirtualService x), line 9: unknown field "spec.http[0].route[0].wieght"`}},
		{"misspelt DestinationRule field", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec:\n  host: x\n  subsets:\n  - name: v1\n    lables: {version: v1}\n",
			[]string{`bad.yaml: document 1 (DestinationRule x), line 8: unknown field "spec.subsets[0].lables"`}},
		{"misspelt HTTPRoute field", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: x}\nspec:\n  rules:\n  - backendRefs:\n    - name: x\n      prot: 80\n",
			[]string{`bad.yaml: document 1 (HTTPRoute x), line 8: unknown field "spec.rules[0].backendRefs[0].prot"`}},
		{"duplicate key", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny}\nspec:\n  action: DENY\n  action: ALLOW\n",
			[]string{`bad.yaml: document 1, line 6: duplicate key "spec.action" (first at line 5)`}},
		{"negative VirtualService weight", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  hosts: [x]\n  http:\n  - route:\n    - destination: {host: x, subset: a}\n      weight: 110\n    - destination: {host: x, subset: b}\n      weight: -10\n",
			[]string{"bad.yaml: document 1 (VirtualService x), line 11: spec.http[0].route[1].weight: Invalid value: -10: must not be negative"}},
		{"negative HTTPRoute weight", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: x}\nspec:\n  rules:\n  - backendRefs:\n    - {name: a, weight: 110}\n    - {name: b, weight: -10}\n",
			[]string{"bad.yaml: document 1 (HTTPRoute x), line 8: spec.rules[0].backendRefs[1].weight: Invalid value: -10: must not be negative"}},
		{"bad item of a nested List", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: v1\n    kind: Service\n    metadata: {name: s}\n    spec: {ports: [{port: 0}]}\n",
			[]string{"bad.yaml: document 1 item 1.1 (Service s), line 10: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535"}},
		{"every bad document", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIp: x}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {tpye: ClusterIP}\n",
			[]string{`document 1 (Service a), line 4: unknown field "spec.clusterIp"`, `document 2 (Service b), line 9: unknown field "spec.tpye"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			goodFile := write(t, dir, "good.yaml", good)
			bad := write(t, dir, "bad.yaml", tc.content)
			store, _, err := ingest.LoadFiles(goodFile, bad)
			if err == nil {
				t.Fatalf("LoadFiles() succeeded with %d objects, want an error", store.Len())
			}
			if store != nil {
				t.Errorf("LoadFiles() returned a store with an error: nothing may be half-loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// A line over any scanner's buffer (16 MiB was the old limit) neither fails nor silently ends the file.
func TestLoadFilesLongLine(t *testing.T) {
	dir := t.TempDir()
	content := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata: {k: " + strings.Repeat("x", 17<<20) + "}\n---\n" +
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: after}\n"
	store, _, err := ingest.LoadFiles(write(t, dir, "big.yaml", content))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := store.Get(ingest.Key{Kind: ingest.KindNamespace, Name: "after"}); !ok {
		t.Error("the document after the long line was not loaded")
	}
}

func TestLoadFilesMissingPath(t *testing.T) {
	_, _, err := ingest.LoadFiles(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml: no such file") {
		t.Errorf("LoadFiles(missing) = %v", err)
	}
	if _, _, err := ingest.LoadFiles(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no .yaml") {
		t.Errorf("LoadFiles(empty dir) = %v", err)
	}
}

func TestStoreEvents(t *testing.T) {
	s := ingest.NewStore()
	var events []string
	s.OnChange(func(e ingest.Event) { events = append(events, string(e.Type)+" "+e.Key.String()) })
	ns := &corev1.Namespace{}
	ns.Name = "shop"
	svc := &corev1.Service{}
	svc.Name, svc.Namespace = "cart", "shop"
	for _, o := range []ingest.Object{ns, svc, svc} {
		if _, err := s.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := s.Delete(ingest.Key{Kind: ingest.KindService, Namespace: "shop", Name: "cart"}); !ok {
		t.Error("Delete() = false")
	}
	if _, ok := s.Delete(ingest.Key{Kind: ingest.KindService, Namespace: "shop", Name: "cart"}); ok {
		t.Error("second Delete() = true")
	}
	bad := &corev1.Pod{}
	bad.Name = "x"
	if _, err := s.Add(bad); err == nil {
		t.Error("Add(pod without namespace) succeeded")
	}
	want := []string{"Added Namespace/shop", "Added Service/shop/cart", "Updated Service/shop/cart", "Deleted Service/shop/cart"}
	if strings.Join(events, ",") != strings.Join(want, ",") {
		t.Errorf("events = %v, want %v", events, want)
	}
	if s.Version() != 4 {
		t.Errorf("Version() = %d, want 4", s.Version())
	}
	if got := s.Objects(); len(got.Namespaces) != 1 || len(got.Services) != 0 {
		t.Errorf("Objects() = %+v", got)
	}
}

// TestLoadFilesCoverage: what meshlab does not implement is a warning (naming file, document and line) or,
// where ignoring it would mislead, an error; kinds meshlab does not act on are skipped with a warning that
// says so. Decode, for tests, does not check coverage.
func TestLoadFilesCoverage(t *testing.T) {
	dir := t.TempDir()
	warned := write(t, dir, "warned.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - retries: {attempts: 2, retryRemoteLocalities: true}
    route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec: {egress: [{hosts: ["./*"]}]}
`)
	store, warnings, err := ingest.LoadFiles(warned)
	if err != nil {
		t.Fatalf("LoadFiles() = %v", err)
	}
	if store.Len() != 1 {
		t.Errorf("Len() = %d, want 1 (the VirtualService)", store.Len())
	}
	var got []string
	for _, w := range warnings {
		got = append(got, w.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"warned.yaml: document 1 (VirtualService reviews), line 1: spec.http[0].retries.retryRemoteLocalities: meshlab does not implement VirtualService http.retries.retryRemoteLocalities",
		"warned.yaml: document 2 (Sidecar default), line 10: skipping networking.istio.io/v1 Sidecar: meshlab does not implement Sidecar; it has no effect",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}

	rejected := write(t, dir, "rejected.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt}
spec:
  rules:
  - when:
    - key: request.headers[x-user]
      values: [admin]
`)
	store, _, err = ingest.LoadFiles(rejected)
	if err == nil || store != nil {
		t.Fatalf("LoadFiles() = %v, %v; want an error", store, err)
	}
	if want := "rejected.yaml: document 1 (AuthorizationPolicy jwt), line 7: spec.rules[0].when[0]: meshlab does not implement AuthorizationPolicy rules.when on keys other than request.auth.*"; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v\nwant %q", err, want)
	}
	data, _ := os.ReadFile(rejected)
	if objs, _, err := ingest.Decode("rejected.yaml", data); err != nil || len(objs) != 1 {
		t.Errorf("Decode() = %d objects, %v; want the policy (Decode does not check coverage)", len(objs), err)
	}
}
