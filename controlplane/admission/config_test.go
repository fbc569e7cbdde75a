package admission

import (
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

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
