package apps

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/meshlab/meshlab/cluster"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mapper knows core/v1 and apps/v1 kinds the way an API server's discovery would.
func mapper() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	for _, k := range []string{"Namespace", "Node"} {
		m.Add(schema.GroupVersionKind{Version: "v1", Kind: k}, meta.RESTScopeRoot)
	}
	m.Add(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}, meta.RESTScopeRoot)
	for _, k := range []string{"Service", "ServiceAccount", "Pod", "ConfigMap"} {
		m.Add(schema.GroupVersionKind{Version: "v1", Kind: k}, meta.RESTScopeNamespace)
	}
	for _, k := range []string{"Deployment", "StatefulSet", "DaemonSet"} {
		m.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: k}, meta.RESTScopeNamespace)
	}
	return m
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec: {}
`

func TestReadDirectorySortedListsExpandedAndCheckOrders(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"b-app.yaml": deployment + "---\n" + `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: shop}
- apiVersion: v1
  kind: Pod
  metadata: {name: one, namespace: shop}
`,
		"a-ns.yml":   "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
		"c-crd.json": `{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets.example.com"},"spec":{"group":"example.com","scope":"Namespaced","names":{"kind":"Widget"},"versions":[{"name":"v1"}]}}`,
		"d-cr.yaml":  "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
		"notes.txt":  "not a manifest",
	})
	objs, err := Read([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	var read []string
	for _, o := range objs {
		read = append(read, o.U.GetKind()+"/"+o.U.GetName())
	}
	if want := []string{"Namespace/shop", "Deployment/web", "Service/web", "Pod/one", "CustomResourceDefinition/widgets.example.com", "Widget/w"}; !slices.Equal(read, want) {
		t.Errorf("read %v, want %v (files in name order, List items in place)", read, want)
	}
	ordered, err := Check(objs, mapper())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range ordered {
		got = append(got, o.U.GetKind()+" "+o.U.GetNamespace()+"/"+o.U.GetName())
	}
	want := []string{"Namespace /shop", "CustomResourceDefinition /widgets.example.com", "Deployment default/web", "Service shop/web", "Pod shop/one", "Widget default/w"}
	if !slices.Equal(got, want) {
		t.Errorf("Check order = %v\nwant %v", got, want)
	}
	ws := Workloads(ordered)
	if want := []cluster.Workload{{Kind: "Deployment", Namespace: "default", Name: "web"}, {Kind: "Pod", Namespace: "shop", Name: "one"}}; !slices.Equal(ws, want) {
		t.Errorf("Workloads = %v, want %v", ws, want)
	}
	if got := Namespaces(ws); !slices.Equal(got, []string{"default", "shop"}) {
		t.Errorf("Namespaces = %v", got)
	}
}

func TestReadReportsEveryBadFileWithLine(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  name: y\n",
		"b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
		"c.yaml": deployment,
	})
	_, err := Read([]string{dir, filepath.Join(dir, "missing.yaml")})
	if !errors.Is(err, ErrInput) {
		t.Fatalf("Read: %v, want ErrInput", err)
	}
	for _, want := range []string{
		"a.yaml: document 1, line 5: duplicate key \"metadata.name\" (first at line 4)",
		"b.yaml: document 1 (ConfigMap), line 3: metadata.name is required",
		"missing.yaml: no such file",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := Read([]string{writeFiles(t, map[string]string{"x.txt": ""})}); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "no .yaml, .yml or .json files") {
		t.Errorf("empty directory: %v", err)
	}
}

func TestCheckRejectsUnknownKindsAndNamespacedClusterObjects(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml": deployment + "---\napiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns1\n  namespace: default\n",
	})
	objs, err := Read([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Check(objs, mapper())
	if !errors.Is(err, ErrInput) {
		t.Fatalf("Check: %v, want ErrInput", err)
	}
	for _, want := range []string{
		"document 2 (Gadget g), line 8: kind Gadget (apiVersion example.com/v1) is not known to the lab's API server",
		"document 3 (Namespace default/ns1), line 16: Namespace is cluster-scoped and takes no namespace",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestParseRecord(t *testing.T) {
	ws, err := parseRecord("Deployment shop/web\n\nPod shop/one\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := []cluster.Workload{{Kind: "Deployment", Namespace: "shop", Name: "web"}, {Kind: "Pod", Namespace: "shop", Name: "one"}}; !slices.Equal(ws, want) {
		t.Errorf("parseRecord = %v, want %v", ws, want)
	}
	if _, err := parseRecord("Deployment web\n"); err == nil {
		t.Error("parseRecord accepted a line without namespace/name")
	}
}

// Record keeps what earlier runs recorded and adds each workload once.
func TestRecordMerges(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(cluster.Scheme).Build()
	ctx := context.Background()
	if ws, err := Recorded(ctx, c); err != nil || len(ws) != 0 {
		t.Fatalf("Recorded on a fresh lab = %v, %v; want none", ws, err)
	}
	a := cluster.Workload{Kind: "Deployment", Namespace: "shop", Name: "web"}
	b := cluster.Workload{Kind: "Pod", Namespace: "shop", Name: "one"}
	if err := Record(ctx, c, []cluster.Workload{a}); err != nil {
		t.Fatal(err)
	}
	if err := Record(ctx, c, []cluster.Workload{b, a}); err != nil {
		t.Fatal(err)
	}
	ws, err := Recorded(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if want := []cluster.Workload{a, b}; !slices.Equal(ws, want) {
		t.Errorf("Recorded = %v, want %v", ws, want)
	}
}
