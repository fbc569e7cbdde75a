package diff

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
)

// TestHasSidecar: an istio-proxy container beside the app's is a sidecar; alone (ztunnel's pod, as a live
// lab lists it) it is not.
func TestHasSidecar(t *testing.T) {
	pod := func(name string, containers ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: name}, Status: corev1.PodStatus{PodIP: "10.244.0." + name[len(name)-1:]}}
		for _, c := range containers {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
		}
		return p
	}
	store := ingest.NewStore()
	for _, o := range []ingest.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}},
		pod("ztunnel-1", "istio-proxy"), pod("app-2", "app", "istio-proxy"), pod("plain-3", "app")} {
		if _, err := store.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	snap := model.Build(store.Objects())
	for name, want := range map[string]bool{"ztunnel-1": false, "app-2": true, "plain-3": false} {
		wl := snap.Workload("istio-system", name)
		if wl == nil {
			t.Fatalf("no workload %s", name)
		}
		if got := HasSidecar(snap, wl); got != want {
			t.Errorf("HasSidecar(%s) = %v, want %v", name, got, want)
		}
	}
}
