package inject

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "sigs.k8s.io/json"
)

// admissionReview is the body the API server posts for creating pod (as JSON) in namespace.
func admissionReview(f *testing.F, namespace string, pod any) []byte {
	raw, err := json.Marshal(pod)
	if err != nil {
		f.Fatal(err)
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "uid-1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: namespace, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzWebhook posts arbitrary AdmissionReview bodies to the injection webhook. It must never panic (the
// handler recovers, so a recovered panic is caught from its log), must answer every well-formed review
// with a review carrying the request's UID, and a patch it returns must apply to the pod and yield a pod
// that the webhook then leaves alone (injection is idempotent).
func FuzzWebhook(f *testing.F) {
	pod := reviewsPod()
	f.Add(admissionReview(f, "bookinfo", pod))
	pod.Annotations = map[string]string{"sidecar.istio.io/inject": "true", "proxy.istio.io/config": "{}"}
	pod.Spec.HostNetwork = false
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "second", Ports: []corev1.ContainerPort{{ContainerPort: 15001}}})
	f.Add(admissionReview(f, "plain", pod))
	pod.Labels["istio.io/rev"] = "canary"
	f.Add(admissionReview(f, "bookinfo", pod))
	f.Add(admissionReview(f, "kube-system", reviewsPod()))
	f.Add(admissionReview(f, "bookinfo", map[string]any{"kind": "Pod", "spec": map[string]any{"containers": "not a list"}}))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"apps","version":"v1","kind":"Deployment"},"object":{}}}`))
	f.Add([]byte(`{"request":null}`))

	namespaces := staticNamespaces(map[string]map[string]string{
		"bookinfo": {"istio-injection": "enabled"}, "plain": {}, "kube-system": {"istio-injection": "enabled"},
	})
	var mu sync.Mutex
	var panicked string
	h := Handler(Options{Values: testValues, NamespaceLabels: namespaces, Logf: func(format string, args ...any) {
		if strings.Contains(format, "internal error") {
			mu.Lock()
			panicked = fmt.Sprintf(format, args...)
			mu.Unlock()
		}
	}})
	post := func(t *testing.T, body []byte) (*httptest.ResponseRecorder, *admissionv1.AdmissionReview) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		mu.Lock()
		defer mu.Unlock()
		if panicked != "" {
			t.Fatalf("the webhook panicked: %s", panicked)
		}
		var out admissionv1.AdmissionReview
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
			return rec, nil
		}
		return rec, &out
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		rec, out := post(t, body)
		// Read the review as the API machinery does (field names case-sensitive, as the API server writes
		// them): encoding/json would take "reqUest" for "request", a review no API server sends.
		var in admissionv1.AdmissionReview
		if kjson.UnmarshalCaseSensitivePreserveInts(body, &in) != nil || in.Request == nil || in.Kind != "AdmissionReview" || in.APIVersion != "admission.k8s.io/v1" {
			return // not a review the API server would send: refused in whatever way the server likes
		}
		if out == nil || out.Response == nil {
			t.Fatalf("a well-formed review got HTTP %d %q, want a review in return", rec.Code, rec.Body.Bytes())
		}
		if out.Response.UID != in.Request.UID {
			t.Fatalf("response UID %q, request UID %q", out.Response.UID, in.Request.UID)
		}
		if !out.Response.Allowed || len(out.Response.Patch) == 0 {
			return
		}
		p, err := jsonpatch.DecodePatch(out.Response.Patch)
		if err != nil {
			t.Fatalf("the webhook returned a malformed patch: %v", err)
		}
		patched, err := p.Apply(in.Request.Object.Raw)
		if err != nil {
			t.Fatalf("the webhook's patch does not apply to the pod it was given: %v", err)
		}
		var injected corev1.Pod
		if err := json.Unmarshal(patched, &injected); err != nil {
			t.Fatalf("the patched pod is not a pod: %v", err)
		}
		in.Request.Object.Raw = patched
		again, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if _, out := post(t, again); out == nil || out.Response == nil || !out.Response.Allowed || len(out.Response.Patch) > 0 {
			t.Fatalf("the webhook does not leave an injected pod alone: %+v", out)
		}
	})
}
