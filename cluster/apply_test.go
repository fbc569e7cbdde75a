package cluster

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
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
