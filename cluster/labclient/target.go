package labclient

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshlab/meshlab/manifests"
)

// Target is a workload named the way istioctl names one: deploy/NAME[.NAMESPACE], pod/NAME[.NAMESPACE]
// or NAME[.NAMESPACE] (a pod).
type Target struct {
	Kind      string // "deploy" or "pod"
	Name      string
	Namespace string
}

func (t Target) String() string { return t.Kind + "/" + t.Name + "." + t.Namespace }

// ParseTarget reads a target; a name without a namespace is in defaultNamespace.
func ParseTarget(s, defaultNamespace string) (Target, error) {
	t := Target{Kind: "pod"}
	rest := s
	if kind, name, ok := strings.Cut(s, "/"); ok {
		switch kind {
		case "deploy", "deployment", "deployments":
			t.Kind = "deploy"
		case "pod", "pods", "po":
		default:
			return t, fmt.Errorf("target %q: unknown kind %q; want deploy/NAME[.NAMESPACE] or a pod NAME[.NAMESPACE]", s, kind)
		}
		rest = name
	}
	name, ns, _ := strings.Cut(rest, ".")
	if name == "" || strings.Contains(ns, ".") || strings.Contains(name, "/") {
		return t, fmt.Errorf("target %q: want deploy/NAME[.NAMESPACE] or a pod NAME[.NAMESPACE]", s)
	}
	if ns == "" {
		ns = defaultNamespace
	}
	t.Name, t.Namespace = name, ns
	return t, nil
}

// Pod returns the pod a target stands for: the pod itself, or a running pod of the Deployment (the
// oldest ready one, so repeated calls agree).
func (t Target) Pod(ctx context.Context, kc kubernetes.Interface) (*corev1.Pod, error) {
	if t.Kind == "pod" {
		p, err := kc.CoreV1().Pods(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("reading pod %s/%s: %w", t.Namespace, t.Name, err)
		}
		return p, nil
	}
	d, err := kc.AppsV1().Deployments(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading deployment %s/%s: %w", t.Namespace, t.Name, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %s/%s selector: %w", t.Namespace, t.Name, err)
	}
	pods, err := RunningPods(ctx, kc, t.Namespace, sel.String())
	if err != nil {
		return nil, err
	}
	if len(pods) == 0 {
		return nil, fmt.Errorf("deployment %s/%s has no running pod", t.Namespace, t.Name)
	}
	return &pods[0], nil
}

// RunningPods lists the running, ready, not terminating pods matching a label selector, oldest first.
func RunningPods(ctx context.Context, kc kubernetes.Interface, namespace, selector string) ([]corev1.Pod, error) {
	list, err := kc.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("listing pods %q in %s: %w", selector, namespace, err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && IsReady(&p) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreationTimestamp.Equal(&out[j].CreationTimestamp) {
			return out[i].CreationTimestamp.Before(&out[j].CreationTimestamp)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// IsReady reports the pod's Ready condition.
func IsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ZtunnelPod returns the running ztunnel pod on node.
func ZtunnelPod(ctx context.Context, kc kubernetes.Interface, node string) (*corev1.Pod, error) {
	list, err := kc.CoreV1().Pods(manifests.ZtunnelNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: "app=" + manifests.ZtunnelName, FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return nil, fmt.Errorf("listing ztunnel pods on node %s: %w", node, err)
	}
	for i := range list.Items {
		if p := &list.Items[i]; p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no running ztunnel pod on node %s", node)
}
