package scenarios

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlab/meshlab/cluster/labclient"
)

// Pods returns the running, ready pods matching selector in namespace, oldest first.
func (t *T) Pods(namespace, selector string) []corev1.Pod {
	if t.Env == nil {
		t.Fatalf("no lab to list pods in")
	}
	pods, err := labclient.RunningPods(t.Context(), t.Env.Kube, namespace, selector)
	t.Must(err, "listing pods")
	return pods
}

// PodAddrs returns IP:port of every running pod matching selector, sorted (what a proxy's endpoints for
// that workload should be).
func (t *T) PodAddrs(namespace, selector string, port int) []string {
	var out []string
	for _, p := range t.Pods(namespace, selector) {
		if p.Status.PodIP != "" {
			out = append(out, net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)))
		}
	}
	sort.Strings(out)
	return out
}

// WaitPodsReady waits until at least one pod matches selector and every matching pod is running and
// ready; it returns them.
func (t *T) WaitPodsReady(namespace, selector string, timeout time.Duration) []corev1.Pod {
	if t.Env == nil {
		t.Fatalf("no lab to wait in")
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var why string
	for {
		list, err := t.Env.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err == nil {
			ready := 0
			for i := range list.Items {
				if list.Items[i].Status.Phase == corev1.PodRunning && labclient.IsReady(&list.Items[i]) {
					ready++
				}
			}
			if ready > 0 && ready == len(list.Items) {
				return list.Items
			}
			why = fmt.Sprintf("%d of %d pods ready", ready, len(list.Items))
		} else {
			why = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pods %q in %s not ready after %s: %s", selector, namespace, timeout, why)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
