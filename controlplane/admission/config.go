package admission

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlab/meshlab/controlplane/crds"
)

// WebhookName is the webhook's name in its configuration, the one kubectl prints in a rejection
// (`admission webhook "validation.istio.io" denied the request: ...`).
const WebhookName = "validation.istio.io"

// ConfigurationName is the ValidatingWebhookConfiguration's name for a control plane in namespace, Istio's
// for the default revision: istio-validator-istio-system for istiod in istio-system.
func ConfigurationName(namespace string) string { return "istio-validator-" + namespace }

// Groups are the API groups whose create and update the API server sends to the webhook.
var Groups = []string{crds.NetworkingGroup, crds.SecurityGroup, crds.GatewayGroup}

// WebhookConfiguration returns the ValidatingWebhookConfiguration sending creates and updates of every
// resource of Groups (not their status) to service.namespace:443 at Path. As istiod's, it fails closed
// (failurePolicy Fail: while the webhook does not answer, Istio config cannot be written), has no side
// effects and speaks admission.k8s.io/v1. Istio's chart installs it with failurePolicy Ignore and istiod
// turns it to Fail once its webhook answers; the control plane instead creates it only once its webhook
// answers, so it is Fail from the start.
func WebhookConfiguration(caBundle []byte, service, namespace string) *admissionregistrationv1.ValidatingWebhookConfiguration {
	path := Path
	port := int32(443)
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(10)
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   ConfigurationName(namespace),
			Labels: map[string]string{"app.kubernetes.io/part-of": "meshlab", "istio": "istiod"},
		},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: WebhookName,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service:  &admissionregistrationv1.ServiceReference{Name: service, Namespace: namespace, Path: &path, Port: &port},
				CABundle: caBundle,
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups: append([]string(nil), Groups...), APIVersions: []string{"*"}, Resources: []string{"*"},
				},
			}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          &timeout,
		}},
	}
}

// RBACRules are what the control plane's ClusterRole needs for the webhook: creating its
// ValidatingWebhookConfiguration and keeping it (and its caBundle) as WebhookConfiguration says.
func RBACRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{{
		APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"},
		Verbs: []string{"get", "create", "update", "patch"},
	}}
}
