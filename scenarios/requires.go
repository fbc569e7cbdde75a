package scenarios

import (
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlab/meshlab/cluster/labclient"
)

// Prerequisite checks. Each skips the scenario with a "requires ..." reason when the lab lacks the piece,
// so that a suite run today reports what is missing and lights up as the mesh lands.

// RequireLab skips without a running lab.
func (t *T) RequireLab() {
	if t.Env == nil {
		t.Skipf("requires a running lab (meshlab up)")
	}
}

// RequireControlPlane skips unless the control plane's Deployment exists with a ready replica; when it
// does, /debug/syncz must answer (not answering is a failure, not a skip).
func (t *T) RequireControlPlane() {
	t.RequireLab()
	d, err := t.Env.Kube.AppsV1().Deployments(labclient.ControlPlaneNamespace).Get(t.Context(), labclient.ControlPlaneDeployment, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		t.Skipf("requires the meshlab control plane (Deployment %s/%s)", labclient.ControlPlaneNamespace, labclient.ControlPlaneDeployment)
	}
	t.Must(err, "reading the control plane Deployment")
	if d.Status.ReadyReplicas == 0 {
		t.Fatalf("the control plane Deployment %s/%s has no ready replica", labclient.ControlPlaneNamespace, labclient.ControlPlaneDeployment)
	}
	_, err = t.Env.Syncz(t.Context())
	t.Must(err, "reading the control plane's /debug/syncz")
}

// RequireZtunnel skips unless the ztunnel DaemonSet exists; its pods must be ready.
func (t *T) RequireZtunnel() {
	t.RequireLab()
	ds, err := t.Env.Kube.AppsV1().DaemonSets(labclient.ControlPlaneNamespace).Get(t.Context(), labclient.ZtunnelDaemonSet, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		t.Skipf("requires ztunnel (DaemonSet %s/%s)", labclient.ControlPlaneNamespace, labclient.ZtunnelDaemonSet)
	}
	t.Must(err, "reading the ztunnel DaemonSet")
	if ds.Status.DesiredNumberScheduled == 0 || ds.Status.NumberReady < ds.Status.DesiredNumberScheduled {
		t.Fatalf("ztunnel is not ready: %d of %d pods", ds.Status.NumberReady, ds.Status.DesiredNumberScheduled)
	}
}

// RequireResource skips unless the API server serves resource in groupVersion (a CRD is installed).
func (t *T) RequireResource(groupVersion, resource string) {
	t.RequireLab()
	list, err := t.Env.Kube.Discovery().ServerResourcesForGroupVersion(groupVersion)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Must(err, "reading the API server's resources")
	}
	if list == nil || !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == resource }) {
		t.Skipf("requires the %s API (%s.%s)", groupVersion, resource, groupOf(groupVersion))
	}
}

func groupOf(gv string) string {
	for i := range gv {
		if gv[i] == '/' {
			return gv[:i]
		}
	}
	return gv
}

// RequireAmbient skips unless namespace is enrolled in the ambient mesh (istio.io/dataplane-mode=ambient).
func (t *T) RequireAmbient(namespace string) {
	t.RequireLab()
	ns, err := t.Env.Kube.CoreV1().Namespaces().Get(t.Context(), namespace, metav1.GetOptions{})
	t.Must(err, "reading namespace "+namespace)
	if ns.Labels["istio.io/dataplane-mode"] != "ambient" {
		t.Skipf("requires namespace %s enrolled in the mesh (label istio.io/dataplane-mode=ambient)", namespace)
	}
}

// RequireWorkload fails unless a Deployment of the lab is ready (bookinfo is part of every lab, so a
// missing one is a broken lab, not a missing feature).
func (t *T) RequireWorkload(namespace, deployment string) {
	t.RequireLab()
	d, err := t.Env.Kube.AppsV1().Deployments(namespace).Get(t.Context(), deployment, metav1.GetOptions{})
	t.Must(err, fmt.Sprintf("reading Deployment %s/%s", namespace, deployment))
	if d.Status.ReadyReplicas == 0 {
		t.Fatalf("Deployment %s/%s has no ready replica", namespace, deployment)
	}
}

// MeshlabImage is the image the lab's workloads run (meshlab's own), read from the sleep Deployment, for
// scenarios that start extra pods.
func (t *T) MeshlabImage() string {
	t.RequireLab()
	d, err := t.Env.Kube.AppsV1().Deployments(t.Env.Namespace).Get(t.Context(), "sleep", metav1.GetOptions{})
	t.Must(err, "reading the sleep Deployment")
	return d.Spec.Template.Spec.Containers[0].Image
}
