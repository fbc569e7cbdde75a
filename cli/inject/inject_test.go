package inject_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	cliinject "github.com/meshlab/meshlab/cli/inject"
	"github.com/meshlab/meshlab/cli/ui"
)

func run(globals *cliutil.Globals, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	if globals == nil {
		globals = &cliutil.Globals{}
	}
	env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &errOut}, Globals: globals}
	cmd := cliinject.NewCommand(env)
	cmd.SetArgs(append([]string{}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

type row struct {
	NamespaceLabels map[string]string `json:"namespaceLabels"`
	PodLabels       map[string]string `json:"podLabels"`
	PodAnnotations  map[string]string `json:"podAnnotations"`
	Injected        bool              `json:"injected"`
	Reason          string            `json:"reason"`
}

// TestMatrixAgainstIstioTable checks `inject matrix -o json` against Istio's table (istio-shapes.md,
// "Injection decision"), whose pod column is the sidecar.istio.io/inject label.
func TestMatrixAgainstIstioTable(t *testing.T) {
	out, err := run(nil, "matrix", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []row
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rows); err != nil {
		t.Fatalf("decoding matrix JSON: %v\n%s", err, out)
	}
	if len(rows) != 35 {
		t.Fatalf("%d rows, want 35 (5 namespace settings x 7 pod settings)", len(rows))
	}
	find := func(nsKey, nsVal, podVal string) *row {
		for i, r := range rows {
			nsOK := (nsKey == "" && len(r.NamespaceLabels) == 0) || (nsKey != "" && len(r.NamespaceLabels) == 1 && r.NamespaceLabels[nsKey] == nsVal)
			podOK := len(r.PodAnnotations) == 0 && ((podVal == "" && len(r.PodLabels) == 0) || (podVal != "" && r.PodLabels["sidecar.istio.io/inject"] == podVal))
			if nsOK && podOK {
				return &rows[i]
			}
		}
		t.Fatalf("no matrix row for namespace %s=%s, pod label %q", nsKey, nsVal, podVal)
		return nil
	}
	for _, tc := range []struct {
		nsKey, nsVal, pod string
		want              bool
	}{
		{"istio-injection", "enabled", "", true},
		{"", "", "true", true},
		{"istio-injection", "enabled", "true", true},
		{"istio-injection", "enabled", "false", false},
		{"istio-injection", "disabled", "true", false},
		{"istio-injection", "disabled", "false", false},
		{"", "", "", false},
	} {
		r := find(tc.nsKey, tc.nsVal, tc.pod)
		if r.Injected != tc.want || r.Reason == "" {
			t.Errorf("namespace %s=%s pod label %q: injected=%v (%s), Istio says %v", tc.nsKey, tc.nsVal, tc.pod, r.Injected, r.Reason, tc.want)
		}
	}
	for _, r := range rows {
		if r.NamespaceLabels["istio.io/rev"] == "unknown" && (r.Injected || !strings.Contains(r.Reason, "does not serve")) {
			t.Errorf("unknown revision row %+v", r)
		}
		if r.PodLabels == nil || r.PodAnnotations == nil || r.NamespaceLabels == nil {
			t.Errorf("maps must be objects, not null: %+v", r)
		}
	}

	table, err := run(nil, "matrix")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 36 || !strings.HasPrefix(lines[0], "NAMESPACE LABELS") {
		t.Errorf("table has %d lines:\n%s", len(lines), table)
	}
	if _, err := run(nil, "matrix", "-o", "yaml"); !cliutil.IsUsage(err) {
		t.Errorf("-o yaml: %v, want a usage error", err)
	}
}

func TestCheckFile(t *testing.T) {
	manifest := `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {istio-injection: enabled}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: x}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: tool
  namespace: shop
  annotations: {sidecar.istio.io/inject: "false"}
spec: {containers: [{name: tool, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec: {containers: [{name: plain, image: x}]}
`
	path := filepath.Join(t.TempDir(), "app.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(nil, "check", "-f", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"shop       deployment/web  yes       namespace-label  namespace label istio-injection=enabled",
		"shop       pod/tool        no        pod-annotation",
		"default    pod/plain       no        no-opt-in",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	// --namespace-labels overrides the file's Namespace.
	out, err = run(nil, "check", "-f", path, "--namespace-labels", "istio-injection=disabled", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var decisions []struct {
		Name     string `json:"name"`
		Injected bool   `json:"injected"`
		Rule     string `json:"rule"`
	}
	if err := json.Unmarshal([]byte(out), &decisions); err != nil || len(decisions) != 3 {
		t.Fatalf("json: %v\n%s", err, out)
	}
	for _, d := range decisions {
		if d.Injected || d.Rule != "namespace-label" {
			t.Errorf("with istio-injection=disabled: %+v", d)
		}
	}
	for _, args := range [][]string{{"check"}, {"check", "pod", "-f", path}, {"check", "-f", path, "--namespace-labels", "=x"}} {
		if _, err := run(nil, args...); !cliutil.IsUsage(err) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// A List (what `kubectl get -o yaml` prints), nested too, is checked item by item; bad input is a usage
// error naming the document, line and field.
func TestCheckFileListAndBadInput(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "list.yaml")
	os.WriteFile(list, []byte(`apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a, namespace: shop}
  spec: {containers: [{name: a, image: x}]}
- apiVersion: v1
  kind: List
  items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: b, namespace: shop}
    spec: {containers: [{name: b, image: x}]}
`), 0o644)
	out, err := run(nil, "check", "-f", list, "--namespace-labels", "istio-injection=enabled")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"shop       pod/a  yes", "shop       pod/b  yes"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: a, image: x}]\n  serviceAcount: x\n"), 0o644)
	_, err = run(nil, "check", "-f", bad)
	if !cliutil.IsUsage(err) || !strings.Contains(err.Error(), `bad.yaml: document 1 (Pod a), line 6: unknown field "spec.serviceAcount"`) {
		t.Errorf("check -f bad.yaml = %v, want a usage error naming the field", err)
	}
}

// TestCheckPod reads a pod and its namespace through client-go from a small API server stand-in.
func TestCheckPod(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/namespaces/shop":
			w.Write([]byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop","labels":{"istio.io/rev":"default"}}}`))
		case "/api/v1/namespaces/shop/pods/web-1":
			w.Write([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"shop","labels":{"sidecar.istio.io/inject":"false"}},"spec":{"containers":[{"name":"web","image":"x"}]}}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"NotFound","code":404}`))
		}
	}))
	defer api.Close()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "`+api.URL+`"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
users: [{name: u, user: {}}]
current-context: c
`), 0o600)
	globals := &cliutil.Globals{Kubeconfig: kubeconfig}
	out, err := run(globals, "check", "shop/web-1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "pod/web-1") || !strings.Contains(out, "pod-label") || !strings.Contains(out, "istio.io/rev=default") {
		t.Errorf("check shop/web-1:\n%s", out)
	}
	out, err = run(globals, "check", "-n", "shop", "web-1", "--namespace-labels", "istio-injection=disabled")
	if err != nil || !strings.Contains(out, "namespace label istio-injection=disabled") {
		t.Errorf("with --namespace-labels: %v\n%s", err, out)
	}
	if _, err := run(globals, "check", "shop/missing"); err == nil || !strings.Contains(err.Error(), "reading pod shop/missing") {
		t.Errorf("missing pod: %v", err)
	}
}
