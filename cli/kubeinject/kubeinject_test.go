package kubeinject_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/internal/golden"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/kubeinject"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/controlplane/inject"
)

func run(stdin string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}, Globals: &cliutil.Globals{}}
	cmd := kubeinject.NewCommand(env)
	cmd.SetArgs(append([]string{}, args...)) // nil would make cobra read os.Args
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

const img = "meshlab.local/meshlab:sha-test"

func TestKubeInjectGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"app.enabled.golden.yaml", nil},
		{"app.unlabelled.golden.yaml", []string{"--namespace-labels", ""}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, err := run("", append([]string{"-f", "testdata/app.yaml", "--image", img}, tc.args...)...)
			if err != nil {
				t.Fatalf("kube-inject = %v", err)
			}
			golden.CheckString(t, filepath.Join("testdata", tc.golden), out)
		})
	}
}

func TestKubeInjectBehaviour(t *testing.T) {
	in, err := os.ReadFile("testdata/app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(string(in), "-f", "-", "--image", img)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := inject.ReadManifest("out.yaml", []byte(out))
	if err != nil {
		t.Fatalf("output does not read back: %v", err)
	}
	injected := map[string]bool{}
	for _, d := range docs {
		if d.Pod != nil {
			_, injected[d.Kind+"/"+d.Name] = d.Pod.Annotations[inject.AnnotationStatus]
		}
	}
	want := map[string]bool{"Deployment/reviews-v1": true, "Pod/opted-out": false, "DaemonSet/node-agent": false, "Job/migrate": true}
	for k, v := range want {
		if injected[k] != v {
			t.Errorf("%s injected = %v, want %v", k, injected[k], v)
		}
	}
	if !strings.Contains(out, "key: value   # comments in pass-through documents survive") {
		t.Error("the ConfigMap did not pass through verbatim")
	}
	// Injecting the output again changes nothing: injected pods say so.
	again, err := run(out, "-f", "-", "--image", img)
	if err != nil || again != out {
		t.Errorf("kube-inject is not idempotent (err %v)", err)
	}
	// Writing to a file.
	path := filepath.Join(t.TempDir(), "out.yaml")
	if _, err := run(string(in), "-f", "-", "--image", img, "-o", path); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != out {
		t.Error("-o FILE differs from standard output")
	}
}

// list is what `kubectl get deploy -o yaml` prints for one Deployment (with container lines added), inside
// a List nested in a List.
func list(container string) string {
	return `apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: x, namespace: default}
  spec:
    selector: {matchLabels: {app: x}}
    template:
      metadata: {labels: {app: x}}
      spec:
        containers:
        - name: app
` + strings.ReplaceAll(container, "    ", "          ") + `- apiVersion: v1
  kind: List
  items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: p, namespace: default}
    spec: {containers: [{name: app, image: x}]}
metadata: {resourceVersion: ""}
`
}

// kind: List (and a List in it) is read as its items: each pod is injected, the List stays a List.
func TestKubeInjectList(t *testing.T) {
	out, err := run(list("    image: x\n"), "-f", "-", "--image", img)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := inject.ReadManifest("out.yaml", []byte(out))
	if err != nil {
		t.Fatalf("output does not read back: %v\n%s", err, out)
	}
	if len(docs) != 1 || docs[0].Kind != "List" || len(docs[0].Items) != 2 || docs[0].Items[1].Kind != "List" {
		t.Fatalf("output is not the List:\n%s", out)
	}
	var injected []string
	for _, d := range inject.Leaves(docs) {
		if _, ok := d.Pod.Annotations[inject.AnnotationStatus]; ok {
			injected = append(injected, d.Kind+"/"+d.Name)
		}
	}
	if strings.Join(injected, ",") != "Deployment/x,Pod/p" {
		t.Errorf("injected %v, want the Deployment and the Pod:\n%s", injected, out)
	}
}

func TestKubeInjectErrors(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.tmpl")
	os.WriteFile(broken, []byte("spec: {{ .Nope"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: many}\n"), 0o644)
	misspelt := filepath.Join(dir, "misspelt.yaml")
	os.WriteFile(misspelt, []byte(list("    imagee: x\n")), 0o644)
	for _, tc := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{nil, true, "no input"},
		{[]string{"-f", "testdata/app.yaml", "--image", img, "--namespace-labels", "a=b=c"}, true, "--namespace-labels"},
		{[]string{"-f", "missing.yaml", "--image", img}, false, "missing.yaml"},
		{[]string{"-f", "testdata/app.yaml", "--image", img, "--template", broken}, false, "parsing injection template"},
		{[]string{"-f", bad, "--image", img}, true, "bad.yaml: document 1 (Deployment x), line 4: spec.replicas: a string cannot be decoded into int32"},
		{[]string{"-f", misspelt, "--image", img}, true, `misspelt.yaml: document 1 item 1 (Deployment default/x), line 14: unknown field "spec.template.spec.containers[0].imagee"`},
	} {
		_, err := run("", tc.args...)
		if err == nil || cliutil.IsUsage(err) != tc.usage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v (usage %v), want one containing %q (usage %v)", tc.args, err, cliutil.IsUsage(err), tc.want, tc.usage)
		}
	}
}
