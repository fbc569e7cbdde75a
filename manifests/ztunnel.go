package manifests

import (
	"path"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/dataplane/ztunnel/app"
)

// Names of ztunnel's objects.
const (
	ZtunnelNamespace = mesh.Namespace
	ZtunnelName      = "ztunnel" // ServiceAccount and DaemonSet
	ztunnelRBACName  = "ztunnel" // ClusterRole and ClusterRoleBinding, as Istio names them
	// ztunnelTokenExpiry is the projected token's lifetime in seconds; the kubelet refreshes the file at 80%.
	ztunnelTokenExpiry = 3600
)

// The files ztunnel reads (app's defaults) are mounted where it looks for them.
var (
	ztunnelTokenDir    = path.Dir(app.TokenPath)    // projected token, audience istio-ca
	ztunnelRootCertDir = path.Dir(app.RootCertPath) // ConfigMap istio-ca-root-cert
)

// Ztunnel is what `meshlab up` applies for ztunnel, in order. The control plane must also run (ztunnel
// waits for the istio-ca-root-cert ConfigMap it publishes in its namespace).
func Ztunnel(image string) []client.Object {
	labels := map[string]string{"app": ZtunnelName}
	privileged := true
	expiry := int64(ztunnelTokenExpiry)
	hostToContainer := corev1.MountPropagationHostToContainer
	dirOrCreate := corev1.HostPathDirectoryOrCreate
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	mounts := []corev1.VolumeMount{
		{Name: "netns", MountPath: app.NetnsDir, MountPropagation: &hostToContainer},
		{Name: "istio-token", MountPath: ztunnelTokenDir, ReadOnly: true},
		{Name: "istio-ca-root-cert", MountPath: ztunnelRootCertDir, ReadOnly: true},
	}
	volumes := []corev1.Volume{
		{Name: "netns", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: app.NetnsDir, Type: &dirOrCreate}}},
		{Name: "istio-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: mesh.TokenAudience, ExpirationSeconds: &expiry, Path: "istio-token",
			}}},
		}}},
		{Name: "istio-ca-root-cert", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: mesh.RootConfigMapName},
		}}},
	}
	return []client.Object{
		&corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: ZtunnelNamespace},
		},
		&corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: metav1.ObjectMeta{Name: ZtunnelName, Namespace: ZtunnelNamespace},
		},
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: ztunnelRBACName},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"pods", "namespaces"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"patch"}}, // the redirection annotation
			},
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: ztunnelRBACName},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: ztunnelRBACName},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: ZtunnelName, Namespace: ZtunnelNamespace}},
		},
		&appsv1.DaemonSet{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
			ObjectMeta: metav1.ObjectMeta{Name: ZtunnelName, Namespace: ZtunnelNamespace, Labels: labels},
			Spec: appsv1.DaemonSetSpec{
				Selector:       &metav1.LabelSelector{MatchLabels: labels},
				UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
						"prometheus.io/scrape": "true", "prometheus.io/port": "15020", "prometheus.io/path": "/stats/prometheus",
					}},
					Spec: corev1.PodSpec{
						ServiceAccountName: ZtunnelName,
						PriorityClassName:  "system-node-critical",
						Tolerations:        []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
						// Un-enrolling pods on shutdown would drop their traffic's capture; give it time.
						TerminationGracePeriodSeconds: ptr.To(int64(30)),
						Containers: []corev1.Container{{
							Name:            "istio-proxy",
							Image:           image,
							ImagePullPolicy: corev1.PullIfNotPresent,
							Args:            []string{"ztunnel"},
							Env: []corev1.EnvVar{
								fieldEnv("NODE_NAME", "spec.nodeName"),
								fieldEnv("POD_NAMESPACE", "metadata.namespace"),
								fieldEnv("POD_NAME", "metadata.name"),
								fieldEnv("INSTANCE_IP", "status.podIP"),
								{Name: "GODEBUG", Value: mesh.ProxyGODEBUG},
							},
							Ports: []corev1.ContainerPort{
								{Name: "stats", ContainerPort: app.StatsPort, Protocol: corev1.ProtocolTCP},
								{Name: "health", ContainerPort: app.HealthPort, Protocol: corev1.ProtocolTCP},
							},
							ReadinessProbe: &corev1.Probe{
								ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(app.HealthPort)}},
								PeriodSeconds: 2, FailureThreshold: 3,
							},
							SecurityContext: &corev1.SecurityContext{
								Privileged: &privileged,
								Capabilities: &corev1.Capabilities{Add: []corev1.Capability{
									"NET_ADMIN", "SYS_ADMIN", "NET_RAW",
								}},
								RunAsUser: ptr.To(int64(0)),
							},
							VolumeMounts: mounts,
						}},
						Volumes: volumes,
					},
				},
			},
		},
	}
}
