package scenarios

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/xds"
)

// GatewayProblem says why the Deployment of a waypoint or ingress gateway set has no proxy running, as
// "deploy/NAME: why" from its conditions or its pods (a quota forbids its pods, its image cannot be
// pulled...), for the message of a wait that gave up.
func GatewayProblem(ctx context.Context, kc kubernetes.Interface, set ProxySet) string {
	name := set.Name
	if set.Kind == xds.KindGateway {
		name = model.GatewayDeploymentName(name)
	}
	d, err := kc.AppsV1().Deployments(set.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Sprintf("deploy/%s: %v", name, err)
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			return fmt.Sprintf("deploy/%s: %s", name, c.Message)
		}
	}
	pods, err := kc.CoreV1().Pods(set.Namespace).List(ctx, metav1.ListOptions{LabelSelector: model.LabelGatewayName + "=" + set.Name})
	if err == nil {
		for _, p := range pods.Items {
			for _, cs := range p.Status.ContainerStatuses {
				if w := cs.State.Waiting; w != nil && w.Reason != "" {
					return fmt.Sprintf("pod %s: %s %s", p.Name, w.Reason, w.Message)
				}
			}
		}
	}
	return fmt.Sprintf("deploy/%s: %d of %d replicas available", name, d.Status.AvailableReplicas, d.Status.Replicas)
}
