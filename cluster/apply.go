package cluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Scheme knows every type meshlab applies.
var Scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(Scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(Scheme))
	utilruntime.Must(gwv1.Install(Scheme))
}

// FieldManager owns the fields meshlab applies.
const FieldManager = "meshlab"

// Apply server-side-applies objects in order, so a second `up` converges instead of failing. It stops at
// the first error, naming the object.
func Apply(ctx context.Context, c client.Client, objs []client.Object) error {
	for _, obj := range objs {
		gvk, err := apiutil.GVKForObject(obj, Scheme)
		if err != nil {
			return fmt.Errorf("applying %T %s: %w", obj, obj.GetName(), err)
		}
		obj.GetObjectKind().SetGroupVersionKind(gvk)
		obj.SetManagedFields(nil)
		obj.SetResourceVersion("")
		for {
			err = c.Patch(ctx, obj, client.Apply, client.FieldOwner(FieldManager), client.ForceOwnership) //nolint:staticcheck // typed SSA is what we want here
			if err == nil || !webhookUnreachable(err) {
				break
			}
			// The API server could not call a webhook at all (its pod is starting, or the node's service
			// routing is not back yet after a restart); a rejection by the webhook is not retried.
			select {
			case <-ctx.Done():
				return fmt.Errorf("applying %s %s/%s: %w (still failing when the wait ended)", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
			case <-time.After(2 * time.Second):
			}
		}
		if err != nil {
			return fmt.Errorf("applying %s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
	}
	return nil
}

// webhookUnreachable reports an API server error saying that calling an admission webhook failed, as
// opposed to the webhook answering "denied".
func webhookUnreachable(err error) bool {
	return apierrors.IsInternalError(err) && strings.Contains(err.Error(), "failed calling webhook")
}

// Workload names a Deployment, DaemonSet, StatefulSet or Pod to wait for.
type Workload struct {
	Kind      string // Deployment, DaemonSet, StatefulSet or Pod
	Namespace string
	Name      string
}

func (w Workload) String() string { return fmt.Sprintf("%s %s/%s", w.Kind, w.Namespace, w.Name) }

// WorkloadStatus is the readiness of one workload.
type WorkloadStatus struct {
	Workload
	Ready    int32 `json:"ready"`
	Desired  int32 `json:"desired"`
	Found    bool  `json:"found"`
	Updating bool  `json:"updating"` // a rollout is still in progress
}

// IsReady reports whether every desired replica is ready and up to date.
func (s WorkloadStatus) IsReady() bool {
	return s.Found && s.Desired > 0 && s.Ready >= s.Desired && !s.Updating
}

// GetStatus reads one workload's readiness.
func GetStatus(ctx context.Context, c client.Client, w Workload) (WorkloadStatus, error) {
	st := WorkloadStatus{Workload: w}
	key := client.ObjectKey{Namespace: w.Namespace, Name: w.Name}
	switch w.Kind {
	case "Deployment":
		var d appsv1.Deployment
		if err := c.Get(ctx, key, &d); err != nil {
			return st, client.IgnoreNotFound(err)
		}
		st.Found = true
		st.Desired = 1
		if d.Spec.Replicas != nil {
			st.Desired = *d.Spec.Replicas
		}
		// Like `kubectl rollout status`: ready means the new template is fully rolled out and no
		// old pods are left, not merely that enough pods (old and new) pass readiness.
		st.Ready = min(d.Status.ReadyReplicas, d.Status.UpdatedReplicas, st.Desired)
		st.Updating = d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas < st.Desired ||
			d.Status.Replicas > d.Status.UpdatedReplicas || d.Status.AvailableReplicas < st.Desired
	case "DaemonSet":
		var ds appsv1.DaemonSet
		if err := c.Get(ctx, key, &ds); err != nil {
			return st, client.IgnoreNotFound(err)
		}
		st.Found = true
		st.Desired = ds.Status.DesiredNumberScheduled
		st.Ready = min(ds.Status.NumberReady, ds.Status.UpdatedNumberScheduled)
		st.Updating = ds.Status.ObservedGeneration < ds.Generation || ds.Status.UpdatedNumberScheduled < st.Desired
	case "StatefulSet":
		var ss appsv1.StatefulSet
		if err := c.Get(ctx, key, &ss); err != nil {
			return st, client.IgnoreNotFound(err)
		}
		st.Found = true
		st.Desired = 1
		if ss.Spec.Replicas != nil {
			st.Desired = *ss.Spec.Replicas
		}
		st.Ready = min(ss.Status.ReadyReplicas, ss.Status.UpdatedReplicas, st.Desired)
		st.Updating = ss.Status.ObservedGeneration < ss.Generation || ss.Status.UpdatedReplicas < st.Desired
	case "Pod":
		var p corev1.Pod
		if err := c.Get(ctx, key, &p); err != nil {
			return st, client.IgnoreNotFound(err)
		}
		st.Found, st.Desired = true, 1
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				st.Ready = 1
			}
		}
		// A pod that ran to completion is as ready as it will be.
		if p.Status.Phase == corev1.PodSucceeded {
			st.Ready = 1
		}
	default:
		return st, fmt.Errorf("unknown workload kind %q", w.Kind)
	}
	return st, nil
}

// WaitReady waits until every workload is ready.
func WaitReady(ctx context.Context, c client.Client, ws []Workload) error {
	return poll(ctx, pollInterval, func() (bool, string, error) {
		var waiting []string
		for _, w := range ws {
			st, err := GetStatus(ctx, c, w)
			if err != nil {
				return false, "", err
			}
			if !st.IsReady() {
				waiting = append(waiting, fmt.Sprintf("%s (%d/%d ready)", w, st.Ready, st.Desired))
			}
		}
		if len(waiting) == 0 {
			return true, "", nil
		}
		return false, fmt.Sprintf("not ready: %v", waiting), nil
	})
}

// NodeStatus is one node's readiness.
type NodeStatus struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
}

// ListNodeStatus lists the Kubernetes nodes and their Ready condition.
func ListNodeStatus(ctx context.Context, c client.Client) ([]NodeStatus, error) {
	var list corev1.NodeList
	if err := c.List(ctx, &list); err != nil {
		return nil, err
	}
	var out []NodeStatus
	for _, n := range list.Items {
		ns := NodeStatus{Name: n.Name}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ns.Ready = true
			}
		}
		out = append(out, ns)
	}
	return out, nil
}

// WaitNodesReady waits until want nodes exist and all are Ready.
func WaitNodesReady(ctx context.Context, c client.Client, want int) error {
	return poll(ctx, pollInterval, func() (bool, string, error) {
		ns, err := ListNodeStatus(ctx, c)
		if err != nil {
			return false, err.Error(), nil // the API server may still be settling
		}
		ready := 0
		for _, n := range ns {
			if n.Ready {
				ready++
			}
		}
		return ready >= want, fmt.Sprintf("%d/%d nodes Ready", ready, want), nil
	})
}
