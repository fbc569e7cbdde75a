package admission

import (
	"context"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/meshlab/meshlab/api/mesh"
)

func TestWebhookConfigurationShape(t *testing.T) {
	cfg := WebhookConfiguration([]byte("pem"), mesh.ServiceName, mesh.Namespace)
	if cfg.Name != "istio-validator-"+mesh.Namespace || len(cfg.Webhooks) != 1 {
		t.Fatalf("name %s with %d webhooks", cfg.Name, len(cfg.Webhooks))
	}
	if cfg.APIVersion != "admissionregistration.k8s.io/v1" || cfg.Kind != "ValidatingWebhookConfiguration" {
		t.Errorf("TypeMeta %+v", cfg.TypeMeta)
	}
	wh := cfg.Webhooks[0]
	svc := wh.ClientConfig.Service
	if wh.Name != "validation.istio.io" || svc.Name != mesh.ServiceName || svc.Namespace != mesh.Namespace || *svc.Path != "/validate" || *svc.Port != 443 ||
		string(wh.ClientConfig.CABundle) != "pem" || *wh.FailurePolicy != admissionregistrationv1.Fail ||
		*wh.SideEffects != admissionregistrationv1.SideEffectClassNone || strings.Join(wh.AdmissionReviewVersions, ",") != "v1" {
		t.Errorf("webhook = %+v", wh)
	}
	if len(wh.Rules) != 1 {
		t.Fatalf("rules = %+v", wh.Rules)
	}
	r := wh.Rules[0]
	if !slices.Equal(r.Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}) ||
		!slices.Equal(r.APIGroups, []string{"networking.istio.io", "security.istio.io", "gateway.networking.k8s.io"}) ||
		!slices.Equal(r.APIVersions, []string{"*"}) || !slices.Equal(r.Resources, []string{"*"}) {
		t.Errorf("rule = %+v", r)
	}
	rbac := RBACRules()
	if len(rbac) != 1 || rbac[0].Resources[0] != "validatingwebhookconfigurations" || !slices.Contains(rbac[0].Verbs, "update") || !slices.Contains(rbac[0].Verbs, "create") {
		t.Errorf("RBAC = %+v", rbac)
	}
}

// TestPatchCABundle patches the configuration through a fake clientset: the API object's update is what
// is tested here; the API server calling the webhook with that caBundle is the kind e2e's.
func TestPatchCABundle(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	if err := PatchCABundle(ctx, client, mesh.Namespace, []byte("x")); err == nil || !strings.Contains(err.Error(), ConfigurationName(mesh.Namespace)) {
		t.Errorf("PatchCABundle() without a configuration = %v", err)
	}
	api := client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	if _, err := api.Create(ctx, WebhookConfiguration(nil, mesh.ServiceName, mesh.Namespace), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := PatchCABundle(ctx, client, mesh.Namespace, []byte("root pem")); err != nil {
		t.Fatalf("PatchCABundle() = %v", err)
	}
	got, err := api.Get(ctx, ConfigurationName(mesh.Namespace), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, wh := range got.Webhooks {
		if string(wh.ClientConfig.CABundle) != "root pem" {
			t.Errorf("%s caBundle = %q", wh.Name, wh.ClientConfig.CABundle)
		}
	}
}
