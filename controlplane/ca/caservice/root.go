package caservice

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The root is published like Istio's: ConfigMap istio-ca-root-cert, key root-cert.pem. Proxies mount it
// to verify the control plane (and each other).
const (
	RootConfigMapName = "istio-ca-root-cert"
	RootConfigMapKey  = "root-cert.pem"
)

// RootConfigMap is the ConfigMap publishing rootPEM in namespace.
func RootConfigMap(namespace string, rootPEM []byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: RootConfigMapName, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/part-of": "meshlab"}},
		Data:       map[string]string{RootConfigMapKey: string(rootPEM)},
	}
}

// PublishRoot creates or updates the root ConfigMap in each namespace (the control plane calls it at start
// for meshlab-system, where ztunnel mounts it).
func PublishRoot(ctx context.Context, client kubernetes.Interface, rootPEM []byte, namespaces ...string) error {
	for _, ns := range namespaces {
		want := RootConfigMap(ns, rootPEM)
		cms := client.CoreV1().ConfigMaps(ns)
		got, err := cms.Get(ctx, RootConfigMapName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if _, err := cms.Create(ctx, want, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating %s/%s: %w", ns, RootConfigMapName, err)
			}
		case err != nil:
			return fmt.Errorf("reading %s/%s: %w", ns, RootConfigMapName, err)
		case got.Data[RootConfigMapKey] != want.Data[RootConfigMapKey]:
			got.Data = want.Data
			if _, err := cms.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("updating %s/%s: %w", ns, RootConfigMapName, err)
			}
		}
	}
	return nil
}

// RBACRules are what the control plane's ClusterRole needs for the CA service: TokenReviews to
// authenticate callers, pods to check impersonation, ConfigMaps to publish the root.
func RBACRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "create", "update"}},
	}
}
