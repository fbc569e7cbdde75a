package suite

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/controlplane/inject"
	"github.com/meshlab/meshlab/scenarios"
)

// injection-matrix: for every row of `meshlab inject matrix` (namespace label x pod label/annotation),
// a namespace with those labels and a pod with those settings; which pods the webhook gives a sidecar must
// equal the matrix. Pods are created as server-side dry runs: admission, webhook included, runs in full
// but nothing is scheduled, so the whole matrix takes seconds.
func injectionMatrix() *scenarios.Scenario {
	return &scenarios.Scenario{
		Name:        "injection-matrix",
		Description: "the sidecar injection webhook decides every row of `meshlab inject matrix` the same way",
		Requires: func(t *scenarios.T) {
			t.RequireControlPlane()
			_, err := t.Env.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(t.Context(), inject.WebhookConfigurationName, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				t.Skipf("requires the sidecar injection webhook (MutatingWebhookConfiguration %s)", inject.WebhookConfigurationName)
			}
			t.Must(err, "reading the injection webhook")
		},
		Setup: func(t *scenarios.T) {
			for i, labels := range matrixNamespaces(inject.Matrix()) {
				t.Apply(namespaceYAML(matrixNamespace(i), labels))
			}
		},
		Wait: func(t *scenarios.T) {
			// Pods need the namespace's default ServiceAccount, which a controller creates shortly after.
			for i := range matrixNamespaces(inject.Matrix()) {
				waitServiceAccount(t, matrixNamespace(i), "default")
			}
		},
		Check: func(t *scenarios.T) {
			rows := inject.Matrix()
			namespaces := matrixNamespaces(rows)
			image := t.MeshlabImage()
			var want, got []string
			for i, row := range rows {
				ns := matrixNamespace(slices.IndexFunc(namespaces, func(l map[string]string) bool { return maps.Equal(l, row.NamespaceLabels) }))
				pod := matrixPod(i, image, row)
				created, err := t.Env.Kube.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				t.Must(err, fmt.Sprintf("creating (dry run) the pod of row %d", i))
				want = append(want, describeRow(row, row.Injected))
				got = append(got, describeRow(row, hasSidecar(created)))
			}
			var diff []string
			for i := range want {
				if want[i] != got[i] {
					diff = append(diff, fmt.Sprintf("row %d: expected %s, seen %s", i, want[i], got[i]))
				}
			}
			t.Logf("%d matrix rows checked", len(rows))
			t.ExpectEqual(fmt.Sprintf("which of the %d matrix pods got a sidecar matches `meshlab inject matrix`", len(rows)),
				[]string(nil), diff)
		},
	}
}

// matrixNamespaces are the distinct namespace label sets of the matrix, in order: one namespace each.
func matrixNamespaces(rows []inject.MatrixRow) []map[string]string {
	var out []map[string]string
	for _, r := range rows {
		if !slices.ContainsFunc(out, func(l map[string]string) bool { return maps.Equal(l, r.NamespaceLabels) }) {
			out = append(out, r.NamespaceLabels)
		}
	}
	return out
}

func matrixNamespace(i int) string { return fmt.Sprintf("meshlab-scenario-inject-%d", i) }

func namespaceYAML(name string, labels map[string]string) string {
	obj := map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name, "labels": labels}}
	b, _ := yaml.Marshal(obj)
	return string(b)
}

func matrixPod(i int, image string, row inject.MatrixRow) *corev1.Pod {
	labels := maps.Clone(row.PodLabels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels["app"] = "matrix"
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("row-%d", i), Labels: labels, Annotations: maps.Clone(row.PodAnnotations)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image, Args: []string{"sleep"}}}},
	}
}

// hasSidecar reports whether the webhook injected the pod: the status annotation, or a proxy container.
func hasSidecar(p *corev1.Pod) bool {
	if _, ok := p.Annotations[inject.AnnotationStatus]; ok {
		return true
	}
	for _, c := range p.Spec.Containers {
		if c.Name == "istio-proxy" {
			return true
		}
	}
	for _, c := range p.Spec.InitContainers {
		if c.Name == "istio-proxy" {
			return true
		}
	}
	return false
}

// describeRow is one matrix row as a line: "ns{istio-injection=enabled} pod labels{...} annotations{...}: injected".
func describeRow(r inject.MatrixRow, injected bool) string {
	verdict := "not injected"
	if injected {
		verdict = "injected"
	}
	return fmt.Sprintf("ns%s pod labels%s annotations%s: %s", kv(r.NamespaceLabels), kv(r.PodLabels), kv(r.PodAnnotations), verdict)
}

func kv(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func waitServiceAccount(t *scenarios.T, namespace, name string) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		_, err := t.Env.Kube.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("ServiceAccount %s/%s did not appear: %v", namespace, name, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
