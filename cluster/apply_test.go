package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// The API server is faked (controller-runtime's fake client): this checks how a Deployment's status is
// read, which the kind e2e then exercises for real.
func TestDeploymentReadyOnlyWhenRolledOut(t *testing.T) {
	one := int32(1)
	for _, tc := range []struct {
		name   string
		status appsv1.DeploymentStatus
		gen    int64
		want   bool
	}{
		{"rolled out", appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}, 2, true},
		{"old pod still ready, new one not", appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}, 2, false},
		{"surge: both ready, old not gone", appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 1, ReadyReplicas: 2, AvailableReplicas: 2}, 2, false},
		{"new spec not observed yet", appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}, 2, false},
		{"not ready", appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 0}, 2, false},
	} {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", Generation: tc.gen}, Spec: appsv1.DeploymentSpec{Replicas: &one}, Status: tc.status}
		c := fake.NewClientBuilder().WithScheme(Scheme).WithObjects(d).WithStatusSubresource(d).Build()
		st, err := GetStatus(context.Background(), c, Workload{Kind: "Deployment", Namespace: "ns", Name: "d"})
		if err != nil {
			t.Fatal(err)
		}
		if st.IsReady() != tc.want {
			t.Errorf("%s: IsReady() = %v, want %v (%+v)", tc.name, st.IsReady(), tc.want, st)
		}
	}
}

// The API server is faked here too: what is tested is which errors Apply waits out. The kind cluster case
// (istiod restarting after Docker restarted) is in docs/troubleshooting.md.
// Apply waits out an API server that cannot call a webhook yet (istiod restarting), but stops at once when
// a webhook answers no, and gives up with the last error when the wait ends.
func TestApplyRetriesOnlyUnreachableWebhooks(t *testing.T) {
	unreachable := apierrors.NewInternalError(errors.New(`failed calling webhook "validation.istio.io": failed to call webhook: Post "https://istiod.istio-system.svc:443/validate?timeout=10s": dial tcp 10.96.1.2:443: connect: connection refused`))
	denied := apierrors.NewBadRequest(`admission webhook "validation.istio.io" denied the request: weight is not allowed`)
	cm := func() []client.Object {
		return []client.Object{&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "c"}}}
	}
	patcher := func(errs ...error) (client.Client, *int) {
		calls := 0
		return fake.NewClientBuilder().WithScheme(Scheme).WithInterceptorFuncs(interceptor.Funcs{
			Patch: func(context.Context, client.WithWatch, client.Object, client.Patch, ...client.PatchOption) error {
				calls++
				if calls <= len(errs) {
					return errs[calls-1]
				}
				return nil
			},
		}).Build(), &calls
	}

	c, calls := patcher(unreachable, unreachable)
	if err := Apply(context.Background(), c, cm()); err != nil || *calls != 3 {
		t.Errorf("webhook unreachable twice, then applied: err=%v after %d patches, want nil after 3", err, *calls)
	}
	c, calls = patcher(denied)
	if err := Apply(context.Background(), c, cm()); err == nil || !strings.Contains(err.Error(), "denied the request") || *calls != 1 {
		t.Errorf("a webhook's denial: err=%v after %d patches, want the denial after 1", err, *calls)
	}
	c, _ = patcher(unreachable, unreachable, unreachable, unreachable, unreachable)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := Apply(ctx, c, cm()); err == nil || !strings.Contains(err.Error(), "failed calling webhook") || !strings.Contains(err.Error(), "ConfigMap default/c") {
		t.Errorf("a webhook that stays unreachable: %v, want the last error naming the object", err)
	}
}
