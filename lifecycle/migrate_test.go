package lifecycle

import (
	"context"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/meshlab/meshlab/controlplane/server"
	"github.com/meshlab/meshlab/log"
	"github.com/meshlab/meshlab/manifests"
)

// recordingLogger keeps what was logged.
type recordingLogger struct{ lines []string }

func (r *recordingLogger) V(int) log.Logf {
	return func(f string, a ...any) { r.lines = append(r.lines, f) }
}
func (r *recordingLogger) Enabled(int) bool          { return true }
func (r *recordingLogger) Warnf(f string, a ...any)  { r.lines = append(r.lines, "WARNING: "+f) }
func (r *recordingLogger) Errorf(f string, a ...any) { r.lines = append(r.lines, "ERROR: "+f) }
func objMeta(ns, name string) metav1.ObjectMeta      { return metav1.ObjectMeta{Namespace: ns, Name: name} }
func exists(t *testing.T, cl client.Client, o client.Object) bool {
	t.Helper()
	err := cl.Get(context.Background(), client.ObjectKeyFromObject(o), o)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// olderLab is a cluster as meshlab left it before it took Istio's names. The API server is
// controller-runtime's fake client: the migration only reads, creates and deletes objects by name.
func olderLab(extra ...client.Object) client.Client {
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: objMeta("", olderNamespace)},
		&appsv1.Deployment{ObjectMeta: objMeta(olderNamespace, olderControlPlane)},
		&appsv1.DaemonSet{ObjectMeta: objMeta(olderNamespace, "ztunnel")},
		&corev1.Service{ObjectMeta: objMeta(olderNamespace, olderControlPlane)},
		&corev1.Secret{ObjectMeta: objMeta(olderNamespace, server.CASecret), Data: map[string][]byte{"root-cert.pem": []byte("ROOT")}},
		&corev1.ConfigMap{ObjectMeta: objMeta(olderNamespace, "kube-root-ca.crt")},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: objMeta("", olderInjector)},
		&rbacv1.ClusterRole{ObjectMeta: objMeta("", olderControlPlane)},
		&rbacv1.ClusterRoleBinding{ObjectMeta: objMeta("", olderZtunnelRBAC)},
	}
	return fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(append(objs, extra...)...).Build()
}

func TestMigrateOlderLayout(t *testing.T) {
	ctx := context.Background()
	cl := olderLab()
	logger := &recordingLogger{}
	if err := migrateOlderLayout(ctx, cl, logger); err != nil {
		t.Fatal(err)
	}
	var moved corev1.Secret
	if err := cl.Get(ctx, client.ObjectKey{Namespace: manifests.ControlPlaneNamespace, Name: server.CASecret}, &moved); err != nil || string(moved.Data["root-cert.pem"]) != "ROOT" {
		t.Errorf("CA secret in %s = %v (%v), want the older root kept", manifests.ControlPlaneNamespace, moved.Data, err)
	}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: objMeta("", olderNamespace)},
		&appsv1.Deployment{ObjectMeta: objMeta(olderNamespace, olderControlPlane)},
		&appsv1.DaemonSet{ObjectMeta: objMeta(olderNamespace, "ztunnel")},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: objMeta("", olderInjector)},
		&rbacv1.ClusterRole{ObjectMeta: objMeta("", olderControlPlane)},
		&rbacv1.ClusterRoleBinding{ObjectMeta: objMeta("", olderZtunnelRBAC)},
	} {
		if exists(t, cl, o) {
			t.Errorf("%T %s is still there", o, client.ObjectKeyFromObject(o))
		}
	}
	if len(logger.lines) == 0 || !strings.Contains(logger.lines[0], "moving meshlab's control plane") {
		t.Errorf("logged %q, want the move said", logger.lines)
	}

	// A second run, and a cluster that never had the older layout, change nothing.
	if err := migrateOlderLayout(ctx, cl, logger); err != nil {
		t.Fatal(err)
	}
	fresh := fake.NewClientBuilder().WithScheme(scheme.Scheme).Build()
	if err := migrateOlderLayout(ctx, fresh, logger); err != nil {
		t.Fatal(err)
	}
	if exists(t, fresh, &corev1.Namespace{ObjectMeta: objMeta("", manifests.ControlPlaneNamespace)}) {
		t.Error("a fresh cluster got a namespace from the migration")
	}
}

// What the user put in the older namespace stays, with the namespace.
func TestMigrateKeepsUserObjects(t *testing.T) {
	ctx := context.Background()
	mine := &corev1.ConfigMap{ObjectMeta: objMeta(olderNamespace, "my-notes")}
	cl := olderLab(mine)
	logger := &recordingLogger{}
	if err := migrateOlderLayout(ctx, cl, logger); err != nil {
		t.Fatal(err)
	}
	if !exists(t, cl, &corev1.Namespace{ObjectMeta: objMeta("", olderNamespace)}) || !exists(t, cl, mine) {
		t.Error("the namespace holding a user's ConfigMap was removed")
	}
	if last := logger.lines[len(logger.lines)-1]; !strings.Contains(last, "kept namespace") {
		t.Errorf("last log line %q, want the kept namespace said", last)
	}
}
