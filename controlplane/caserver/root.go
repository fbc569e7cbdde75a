package caserver

import (
	"context"
	"fmt"

	"github.com/meshlab/meshlab/api/mesh"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// RootConfigMap is the ConfigMap publishing rootPEM in namespace.
func RootConfigMap(namespace string, rootPEM []byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: mesh.RootConfigMapName, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/part-of": "meshlab"}},
		Data:       map[string]string{mesh.RootConfigMapKey: string(rootPEM)},
	}
}

// PublishRoot creates or updates the root ConfigMap in each namespace (the control plane calls it at start
// for istio-system, where ztunnel mounts it).
func PublishRoot(ctx context.Context, client kubernetes.Interface, rootPEM []byte, namespaces ...string) error {
	for _, ns := range namespaces {
		want := RootConfigMap(ns, rootPEM)
		cms := client.CoreV1().ConfigMaps(ns)
		got, err := cms.Get(ctx, mesh.RootConfigMapName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if _, err := cms.Create(ctx, want, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating %s/%s: %w", ns, mesh.RootConfigMapName, err)
			}
		case err != nil:
			return fmt.Errorf("reading %s/%s: %w", ns, mesh.RootConfigMapName, err)
		case got.Data[mesh.RootConfigMapKey] != want.Data[mesh.RootConfigMapKey]:
			got.Data = want.Data
			if _, err := cms.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("updating %s/%s: %w", ns, mesh.RootConfigMapName, err)
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
