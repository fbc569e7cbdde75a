package inject

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WebhookConfigurationName names the MutatingWebhookConfiguration (and matches the template ConfigMap).
const WebhookConfigurationName = "istio-sidecar-injector"

// Webhook entry names, Istio's: the revision-based pair first, then the istio-injection pair.
const (
	WebhookRevNamespace = "rev.namespace.sidecar-injector.istio.io"
	WebhookRevObject    = "rev.object.sidecar-injector.istio.io"
	WebhookNamespace    = "namespace.sidecar-injector.istio.io"
	WebhookObject       = "object.sidecar-injector.istio.io"
)

// WebhookConfiguration returns the MutatingWebhookConfiguration sending pod creations to service.namespace:443
// at Path, for the default revision. Its four entries encode Decide's namespace and label rules in
// selectors, so the API server only calls the webhook for pods that may be injected (Decide still has the
// last word: hostNetwork, the legacy annotation, already injected pods):
//
//   - rev.namespace: namespace istio.io/rev=default (and no istio-injection), pod not labelled inject=false;
//   - rev.object: namespace without either label, pod labelled istio.io/rev=default and not inject=false;
//   - namespace: namespace istio-injection=enabled, pod not labelled inject=false;
//   - object: namespace without either label, pod labelled inject=true and no istio.io/rev.
//
// Every entry also leaves out ExcludedNamespaces by their kubernetes.io/metadata.name label.
func WebhookConfiguration(caBundle []byte, service, namespace string) *admissionregistrationv1.MutatingWebhookConfiguration {
	path := Path
	port := int32(443)
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	never := admissionregistrationv1.NeverReinvocationPolicy
	timeout := int32(10)
	req := func(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: key, Operator: op, Values: values}
	}
	notSystem := req(LabelNamespaceName, metav1.LabelSelectorOpNotIn, ExcludedNamespaces...)
	notOptedOut := req(LabelSidecarInject, metav1.LabelSelectorOpNotIn, "false")
	entry := func(name string, ns, obj []metav1.LabelSelectorRequirement) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name: name,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service:  &admissionregistrationv1.ServiceReference{Name: service, Namespace: namespace, Path: &path, Port: &port},
				CABundle: caBundle,
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
				},
			}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      &never,
			TimeoutSeconds:          &timeout,
			NamespaceSelector:       &metav1.LabelSelector{MatchExpressions: append(ns, notSystem)},
			ObjectSelector:          &metav1.LabelSelector{MatchExpressions: obj},
		}
	}
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   WebhookConfigurationName,
			Labels: map[string]string{"app.kubernetes.io/part-of": "meshlab", LabelRevision: DefaultRevision},
		},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			entry(WebhookRevNamespace,
				[]metav1.LabelSelectorRequirement{
					req(LabelRevision, metav1.LabelSelectorOpIn, DefaultRevision),
					req(LabelInjection, metav1.LabelSelectorOpDoesNotExist),
				},
				[]metav1.LabelSelectorRequirement{notOptedOut}),
			entry(WebhookRevObject,
				[]metav1.LabelSelectorRequirement{
					req(LabelRevision, metav1.LabelSelectorOpDoesNotExist),
					req(LabelInjection, metav1.LabelSelectorOpDoesNotExist),
				},
				[]metav1.LabelSelectorRequirement{notOptedOut, req(LabelRevision, metav1.LabelSelectorOpIn, DefaultRevision)}),
			entry(WebhookNamespace,
				[]metav1.LabelSelectorRequirement{req(LabelInjection, metav1.LabelSelectorOpIn, "enabled")},
				[]metav1.LabelSelectorRequirement{notOptedOut}),
			entry(WebhookObject,
				[]metav1.LabelSelectorRequirement{
					req(LabelInjection, metav1.LabelSelectorOpDoesNotExist),
					req(LabelRevision, metav1.LabelSelectorOpDoesNotExist),
				},
				[]metav1.LabelSelectorRequirement{
					req(LabelSidecarInject, metav1.LabelSelectorOpIn, "true"),
					req(LabelRevision, metav1.LabelSelectorOpDoesNotExist),
				}),
		},
	}
}

// TemplateConfigMap is the ConfigMap holding the injection template (DefaultTemplate when text is empty);
// `up` installs it so that users can see and edit what is injected.
func TemplateConfigMap(text string) *corev1.ConfigMap {
	if text == "" {
		text = DefaultTemplate
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: ConfigMapNamespace, Labels: map[string]string{"app.kubernetes.io/part-of": "meshlab"}},
		Data:       map[string]string{ConfigMapKey: text},
	}
}

// RBACRules are what the control plane's ClusterRole needs for injection: reading namespaces and the template
// ConfigMap, and updating the webhook configuration's caBundle.
func RBACRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces", "configmaps"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"}, Verbs: []string{"get", "update", "patch"}},
	}
}
