package inject

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/caserver"
	"github.com/meshlab/meshlab/identity/ca"
	"github.com/meshlab/meshlab/identity/caclient"
)

// tlsServer serves h over HTTPS with a serving certificate from a fresh meshlab CA, and returns a client
// that trusts that CA (and checks the control plane's identity, as meshlab clients do).
func tlsServer(t *testing.T, h http.Handler) (*httptest.Server, *http.Client) {
	t.Helper()
	c, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	serverTLS, err := caserver.ServerTLSConfig(ctx, c, mesh.ControlPlaneID)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = serverTLS
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: caclient.ClientTLSConfig([]*x509.Certificate{c.Root()}, mesh.ServerName, mesh.ControlPlaneID, nil),
	}}
	return srv, client
}

// review builds the AdmissionReview the API server sends for creating pod in namespace.
func review(t *testing.T, namespace string, podJSON []byte) []byte {
	t.Helper()
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("uid-" + namespace),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: namespace, Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: podJSON},
		},
	}
	b, err := json.Marshal(ar)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t *testing.T, client *http.Client, url string, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	resp, err := client.Post(url+Path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", Path, err)
	}
	defer resp.Body.Close()
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil {
		t.Fatalf("decoding AdmissionReview response: %v", err)
	}
	if ar.Response == nil {
		t.Fatal("AdmissionReview without a response")
	}
	return ar.Response
}

func podJSON(t *testing.T, labels, annotations map[string]string) []byte {
	t.Helper()
	pod := reviewsPod()
	pod.Namespace = "" // the API server leaves it to the request for generateName pods
	pod.Labels = map[string]string{"app": "reviews"}
	for k, v := range labels {
		pod.Labels[k] = v
	}
	pod.Annotations = annotations
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func staticNamespaces(m map[string]map[string]string) func(context.Context, string) (map[string]string, error) {
	return func(_ context.Context, name string) (map[string]string, error) {
		l, ok := m[name]
		if !ok {
			return nil, fmt.Errorf("namespace %q not found", name)
		}
		return l, nil
	}
}

// applyPatch applies a response's JSON patch to the original pod, as the API server does.
func applyPatch(t *testing.T, original []byte, r *admissionv1.AdmissionResponse) *corev1.Pod {
	t.Helper()
	out := original
	if len(r.Patch) > 0 {
		if r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
			t.Fatalf("patch type = %v", r.PatchType)
		}
		p, err := jsonpatch.DecodePatch(r.Patch)
		if err != nil {
			t.Fatalf("decoding patch: %v", err)
		}
		if out, err = p.Apply(original); err != nil {
			t.Fatalf("applying patch: %v", err)
		}
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(out, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// TestWebhookMatrix sends every matrix row through the webhook over HTTPS and checks the answer agrees with
// the decision, and that an injected pod has the sidecar once the patch is applied.
func TestWebhookMatrix(t *testing.T) {
	namespaces := map[string]map[string]string{}
	rows := Matrix()
	for i, row := range rows {
		namespaces[fmt.Sprintf("ns%d", i)] = row.NamespaceLabels
	}
	srv, client := tlsServer(t, Handler(Options{Values: testValues, NamespaceLabels: staticNamespaces(namespaces)}))
	for i, row := range rows {
		ns := fmt.Sprintf("ns%d", i)
		raw := podJSON(t, row.PodLabels, row.PodAnnotations)
		r := post(t, client, srv.URL, review(t, ns, raw))
		if !r.Allowed {
			t.Errorf("row %d: denied: %+v", i, r.Result)
			continue
		}
		if r.UID != types.UID("uid-"+ns) {
			t.Errorf("row %d: response UID %q", i, r.UID)
		}
		pod := applyPatch(t, raw, r)
		injected := len(pod.Spec.Containers) == 2 && pod.Spec.Containers[1].Name == "istio-proxy" &&
			pod.Spec.InitContainers[0].Name == "istio-init" && pod.Annotations[AnnotationStatus] != ""
		if injected != row.Injected {
			t.Errorf("row %d (ns %v, pod labels %v, annotations %v): webhook injected=%v, decision %v (%s)",
				i, row.NamespaceLabels, row.PodLabels, row.PodAnnotations, injected, row.Injected, row.Reason)
		}
		if !injected && len(r.Patch) != 0 {
			t.Errorf("row %d: not injected but patched: %s", i, r.Patch)
		}
		if r.Result == nil || !strings.Contains(r.Result.Message, row.Reason) {
			t.Errorf("row %d: response message %+v lacks the reason %q", i, r.Result, row.Reason)
		}
	}
}

func TestWebhookBadInput(t *testing.T) {
	enabled := map[string]string{LabelInjection: "enabled"}
	namespaces := staticNamespaces(map[string]map[string]string{"demo": enabled, "rev": {LabelRevision: "canary"}})
	broken := func(context.Context) (string, error) { return "spec: {{ .Pod.Spec.Nope }}", nil }
	var panicked bool
	panicky := func(ctx context.Context, name string) (map[string]string, error) {
		if name == "boom" {
			panicked = true
			var m map[string]string
			m["x"] = "y" // a real nil-map panic, as a buggy lister would produce
		}
		return namespaces(ctx, name)
	}
	good := podJSON(t, nil, nil)
	for _, tc := range []struct {
		name      string
		opts      Options
		namespace string
		body      []byte
		allowed   bool
		code      int32
		message   string
		warning   string
	}{
		{"malformed pod JSON", Options{}, "demo", []byte(`{"spec": {"containers": "not a list"}}`), false, http.StatusBadRequest, "malformed pod", ""},
		{"broken template", Options{Template: broken}, "demo", good, false, http.StatusForbidden, "ConfigMap istio-system/istio-sidecar-injector", ""},
		{"template source fails", Options{Template: func(context.Context) (string, error) { return "", fmt.Errorf("apiserver unavailable") }}, "demo", good, false, http.StatusForbidden, "apiserver unavailable", ""},
		{"unknown revision is admitted unmodified with a warning", Options{}, "rev", good, true, http.StatusOK, "does not serve", "canary"},
		{"unknown namespace", Options{}, "nowhere", good, false, http.StatusInternalServerError, "reading namespace nowhere", ""},
		{"no proxy image", Options{Values: Values{}}, "demo", good, false, http.StatusForbidden, "no proxy image", ""},
		{"panic is recovered", Options{NamespaceLabels: panicky}, "boom", good, false, http.StatusInternalServerError, "internal error", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			if opts.Values.ProxyImage == "" && tc.name != "no proxy image" {
				opts.Values = testValues
			}
			if opts.NamespaceLabels == nil {
				opts.NamespaceLabels = namespaces
			}
			srv, client := tlsServer(t, Handler(opts))
			r := post(t, client, srv.URL, review(t, tc.namespace, tc.body))
			if r.Allowed != tc.allowed || r.Result == nil || r.Result.Code != tc.code || !strings.Contains(r.Result.Message, tc.message) {
				t.Errorf("response = allowed %v, result %+v; want allowed %v, code %d, message containing %q", r.Allowed, r.Result, tc.allowed, tc.code, tc.message)
			}
			if len(r.Patch) != 0 {
				t.Errorf("patched on bad input: %s", r.Patch)
			}
			if tc.warning != "" && (len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], tc.warning)) {
				t.Errorf("warnings = %q, want one mentioning %q", r.Warnings, tc.warning)
			}
			// The server survives and still injects.
			if r := post(t, client, srv.URL, review(t, "demo", good)); tc.name != "broken template" && tc.name != "no proxy image" && tc.name != "template source fails" && (!r.Allowed || len(r.Patch) == 0) {
				t.Errorf("after %s, a good pod is not injected: %+v", tc.name, r.Result)
			}
		})
	}
	if !panicked {
		t.Error("the panicking lister was never called")
	}
}

func TestWebhookNonPod(t *testing.T) {
	srv, client := tlsServer(t, Handler(Options{Values: testValues, NamespaceLabels: staticNamespaces(nil)}))
	var ar admissionv1.AdmissionReview
	json.Unmarshal(review(t, "demo", []byte(`{}`)), &ar)
	ar.Request.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	b, _ := json.Marshal(ar)
	if r := post(t, client, srv.URL, b); !r.Allowed || len(r.Patch) != 0 {
		t.Errorf("a Deployment got %+v", r)
	}
}
