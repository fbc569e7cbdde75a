package inject

import (
	"context"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestWebhookConfigurationShape(t *testing.T) {
	cfg := WebhookConfiguration([]byte("pem"), "istiod", "istio-system")
	if cfg.Name != "istio-sidecar-injector" || len(cfg.Webhooks) != 4 {
		t.Fatalf("name %s with %d webhooks", cfg.Name, len(cfg.Webhooks))
	}
	want := []string{WebhookRevNamespace, WebhookRevObject, WebhookNamespace, WebhookObject}
	for i, wh := range cfg.Webhooks {
		svc := wh.ClientConfig.Service
		if wh.Name != want[i] || svc.Name != "istiod" || svc.Namespace != "istio-system" || *svc.Path != "/inject" || *svc.Port != 443 ||
			string(wh.ClientConfig.CABundle) != "pem" || *wh.FailurePolicy != admissionregistrationv1.Fail ||
			*wh.SideEffects != admissionregistrationv1.SideEffectClassNone || *wh.ReinvocationPolicy != admissionregistrationv1.NeverReinvocationPolicy ||
			strings.Join(wh.AdmissionReviewVersions, ",") != "v1" {
			t.Errorf("webhook %d = %+v", i, wh)
		}
		r := wh.Rules[0]
		if r.Operations[0] != admissionregistrationv1.Create || r.Resources[0] != "pods" || r.APIGroups[0] != "" || r.APIVersions[0] != "v1" {
			t.Errorf("webhook %s rules = %+v", wh.Name, wh.Rules)
		}
	}
}

func TestTemplateFromConfigMap(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	read := TemplateFromConfigMap(client)
	if got, err := read(ctx); err != nil || got != DefaultTemplate {
		t.Errorf("without the ConfigMap: %v, default=%v", err, got == DefaultTemplate)
	}
	cm := TemplateConfigMap("metadata: {}")
	if _, err := client.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := read(ctx); err != nil || got != "metadata: {}" {
		t.Errorf("with the ConfigMap: %q, %v", got, err)
	}
	if TemplateConfigMap("").Data[ConfigMapKey] != DefaultTemplate {
		t.Error("TemplateConfigMap(\"\") does not hold the default template")
	}
}
