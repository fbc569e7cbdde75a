package lifecycle

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshlab/meshlab/controlplane/server"
	"github.com/meshlab/meshlab/log"
	"github.com/meshlab/meshlab/manifests"
)

// meshlab before 2026-12 ran its control plane and ztunnel under its own names; `up` on a cluster made
// then moves it to Istio's (istio-system, istiod), keeping the CA root so that nothing the mesh had
// issued stops verifying.
const (
	olderNamespace    = "meshlab-system"
	olderControlPlane = "meshlab-controlplane"
	olderZtunnelRBAC  = "meshlab-ztunnel"
	olderInjector     = "meshlab-sidecar-injector"
)

// migrateOlderLayout removes the control plane and ztunnel of an older meshlab from cl, after copying
// its CA Secret into the new namespace. It does nothing on a cluster without one. The older namespace is
// deleted only when nothing but what meshlab put there is left in it.
func migrateOlderLayout(ctx context.Context, cl client.Client, logger log.Logger) error {
	var dep appsv1.Deployment
	err := cl.Get(ctx, client.ObjectKey{Namespace: olderNamespace, Name: olderControlPlane}, &dep)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking for an older meshlab control plane: %w", err)
	}
	logger.V(0)("moving meshlab's control plane from %s/%s to Istio's names, %s/%s",
		olderNamespace, olderControlPlane, manifests.ControlPlaneNamespace, manifests.ControlPlaneName)

	// Keep the CA root: the new control plane loads it instead of minting a new one.
	var secret corev1.Secret
	switch err := cl.Get(ctx, client.ObjectKey{Namespace: olderNamespace, Name: server.CASecret}, &secret); {
	case err == nil:
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: manifests.ControlPlaneNamespace}}
		if err := cl.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating namespace %s: %w", ns.Name, err)
		}
		moved := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: secret.Name, Namespace: manifests.ControlPlaneNamespace, Labels: secret.Labels},
			Type:       secret.Type,
			Data:       secret.Data,
		}
		if err := cl.Create(ctx, moved); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("copying the CA secret to %s: %w", manifests.ControlPlaneNamespace, err)
		}
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("reading the older CA secret: %w", err)
	}

	// The webhook first: while it points at a control plane that is going away, pod creation fails.
	old := []client.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: olderInjector}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: olderNamespace, Name: olderControlPlane}},
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: olderNamespace, Name: manifests.ZtunnelName}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: olderNamespace, Name: olderControlPlane}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: olderNamespace, Name: olderControlPlane}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: olderNamespace, Name: manifests.ZtunnelName}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: olderNamespace, Name: olderControlPlane}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: olderNamespace, Name: olderControlPlane}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: olderNamespace, Name: olderInjector}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: olderNamespace, Name: server.RootConfigMap}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: olderNamespace, Name: server.CASecret}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: olderControlPlane}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: olderControlPlane}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: olderZtunnelRBAC}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: olderZtunnelRBAC}},
	}
	for _, o := range old {
		if err := cl.Delete(ctx, o, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("removing the older %T %s: %w", o, client.ObjectKeyFromObject(o), err)
		}
	}

	leftovers, err := userObjectsIn(ctx, cl, olderNamespace)
	if err != nil {
		return err
	}
	if len(leftovers) > 0 {
		logger.Warnf("kept namespace %s: it holds objects meshlab did not create (%v)", olderNamespace, leftovers)
		return nil
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: olderNamespace}}
	if err := cl.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing namespace %s: %w", olderNamespace, err)
	}
	return nil
}

// userObjectsIn lists what namespace still holds that meshlab did not put there: workloads, services,
// config maps other than the API server's kube-root-ca.crt, and secrets.
func userObjectsIn(ctx context.Context, cl client.Client, namespace string) ([]string, error) {
	var out []string
	lists := map[string]client.ObjectList{
		"Deployment": &appsv1.DeploymentList{}, "DaemonSet": &appsv1.DaemonSetList{}, "StatefulSet": &appsv1.StatefulSetList{},
		"Service": &corev1.ServiceList{}, "ConfigMap": &corev1.ConfigMapList{}, "Secret": &corev1.SecretList{},
	}
	for kind, list := range lists {
		if err := cl.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return nil, fmt.Errorf("listing %ss in %s: %w", kind, namespace, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, item := range items {
			m, err := meta.Accessor(item)
			if err != nil {
				return nil, err
			}
			if kind == "ConfigMap" && m.GetName() == "kube-root-ca.crt" || m.GetDeletionTimestamp() != nil {
				continue
			}
			out = append(out, kind+"/"+m.GetName())
		}
	}
	return out, nil
}
