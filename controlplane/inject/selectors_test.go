package inject

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// called reports whether the API server would call any entry of cfg for a pod with podLabels in a namespace
// with nsLabels: both selectors of one entry must match (the API server adds kubernetes.io/metadata.name).
func called(t *testing.T, cfg *admissionregistrationv1.MutatingWebhookConfiguration, namespace string, nsLabels, podLabels map[string]string) []string {
	t.Helper()
	ns := labels.Set{LabelNamespaceName: namespace}
	for k, v := range nsLabels {
		ns[k] = v
	}
	var matched []string
	for _, wh := range cfg.Webhooks {
		nsSel, err := metav1.LabelSelectorAsSelector(wh.NamespaceSelector)
		if err != nil {
			t.Fatalf("%s: namespaceSelector: %v", wh.Name, err)
		}
		objSel, err := metav1.LabelSelectorAsSelector(wh.ObjectSelector)
		if err != nil {
			t.Fatalf("%s: objectSelector: %v", wh.Name, err)
		}
		if nsSel.Matches(ns) && objSel.Matches(labels.Set(podLabels)) {
			matched = append(matched, wh.Name)
		}
	}
	return matched
}

type selectorCase struct {
	namespace   string
	nsLabels    map[string]string
	podLabels   map[string]string
	annotations map[string]string
}

// TestSelectorsAgreeWithDecide proves that the webhook configuration and the code say the same thing: for
// every matrix row and a set of extra cases, "the API server calls the webhook" and "the handler injects"
// together equal Decide. It also checks that the pods the selectors are meant to keep away (opted out,
// disabled or unlabelled namespaces, unknown revisions, system namespaces) never reach the webhook.
func TestSelectorsAgreeWithDecide(t *testing.T) {
	var cases []selectorCase
	for _, row := range Matrix() {
		cases = append(cases, selectorCase{MatrixNamespace, row.NamespaceLabels, row.PodLabels, row.PodAnnotations})
	}
	l := labelsOf
	enabled := l(LabelInjection, "enabled")
	cases = append(cases,
		selectorCase{"kube-system", enabled, l(LabelSidecarInject, "true"), nil},
		selectorCase{"kube-public", nil, l(LabelSidecarInject, "true"), nil},
		selectorCase{"kube-node-lease", l(LabelRevision, "default"), nil, nil},
		selectorCase{"local-path-storage", enabled, nil, nil},
		selectorCase{"demo", nil, l(LabelRevision, "default"), nil},
		selectorCase{"demo", nil, l(LabelRevision, "default", LabelSidecarInject, "false"), nil},
		selectorCase{"demo", nil, l(LabelRevision, "canary"), nil},
		selectorCase{"demo", nil, l(LabelRevision, "canary", LabelSidecarInject, "true"), nil},
		selectorCase{"demo", l(LabelInjection, "disabled", LabelRevision, "default"), nil, nil},
		selectorCase{"demo", l(LabelInjection, "enabled", LabelRevision, "canary"), nil, nil},
		selectorCase{"demo", l(LabelInjection, "yes"), l(LabelSidecarInject, "true"), nil},
		selectorCase{"demo", enabled, l(LabelSidecarInject, "yes"), nil},
		selectorCase{"demo", enabled, l(LabelSidecarInject, "no"), nil},
		selectorCase{"demo", nil, l(LabelSidecarInject, "yes"), nil},
		selectorCase{"demo", enabled, nil, l(AnnotationStatus, "{}")},
	)

	cfg := WebhookConfiguration([]byte("ca"), "istiod", "istio-system")
	for i, c := range cases {
		h := Handler(Options{Values: testValues, NamespaceLabels: func(_ context.Context, name string) (map[string]string, error) {
			if name != c.namespace {
				return nil, fmt.Errorf("namespace %s not found", name)
			}
			return c.nsLabels, nil
		}})
		want := Decide(Input{Namespace: c.namespace, NamespaceLabels: c.nsLabels, PodLabels: c.podLabels, PodAnnotations: c.annotations})
		matched := called(t, cfg, c.namespace, c.nsLabels, c.podLabels)
		injects := handlerInjects(t, h, c)
		if got := len(matched) > 0 && injects; got != want.Injected {
			t.Errorf("case %d ns %s %v pod %v %v: webhooks %v called, handler injects %v; Decide = %+v",
				i, c.namespace, c.nsLabels, c.podLabels, c.annotations, matched, injects, want)
		}
		if len(matched) > 1 {
			t.Errorf("case %d: more than one webhook entry matches (%v): the pod would be injected twice", i, matched)
		}
		keptAway := want.Rule == RuleExcludedNamespace || want.Rule == RuleUnknownRevision || want.Rule == RuleNoOptIn ||
			(want.Rule == RuleNamespaceLabel && !want.Injected) || (want.Rule == RulePodLabel && c.podLabels[LabelSidecarInject] == "false")
		if keptAway && len(matched) > 0 {
			t.Errorf("case %d ns %s %v pod %v: %s (%s) should keep the pod away from the webhook, but %v match",
				i, c.namespace, c.nsLabels, c.podLabels, want.Rule, want.Reason, matched)
		}
	}
}

// handlerInjects runs one AdmissionReview through h (in-process; TestWebhookMatrix covers the TLS path).
func handlerInjects(t *testing.T, h http.Handler, c selectorCase) bool {
	t.Helper()
	body := review(t, c.namespace, podJSON(t, c.podLabels, c.annotations))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("decoding response: %v", err)
	}
	if out.Response == nil || !out.Response.Allowed {
		t.Fatalf("handler denied: %+v", out.Response)
	}
	return len(out.Response.Patch) > 0
}
