package cni

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Name of the DaemonSet, its service account and RBAC objects, in kube-system.
const Name = "meshlab-cni"

// Objects are what `meshlab up` applies for the pod network, in order.
func Objects(image string) []client.Object {
	labels := map[string]string{"app": Name}
	privileged := true
	hostPathDir := corev1.HostPathDirectoryOrCreate
	return []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: "kube-system"}},
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: Name},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}}},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: Name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: Name, Namespace: "kube-system"}},
		},
		&appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: "kube-system", Labels: labels},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						HostNetwork:        true,
						ServiceAccountName: Name,
						PriorityClassName:  "system-node-critical",
						Tolerations:        []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
						Containers: []corev1.Container{{
							Name:            "cni-agent",
							Image:           image,
							ImagePullPolicy: corev1.PullIfNotPresent,
							Args:            []string{"cni-agent", "--conf-dir", "/etc/cni/net.d"},
							Env: []corev1.EnvVar{{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{
								FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"},
							}}},
							SecurityContext: &corev1.SecurityContext{Privileged: &privileged},
							VolumeMounts:    []corev1.VolumeMount{{Name: "cni-conf", MountPath: "/etc/cni/net.d"}},
						}},
						Volumes: []corev1.Volume{{Name: "cni-conf", VolumeSource: corev1.VolumeSource{
							HostPath: &corev1.HostPathVolumeSource{Path: "/etc/cni/net.d", Type: &hostPathDir},
						}}},
					},
				},
			},
		},
	}
}
