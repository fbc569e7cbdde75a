package manifests

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshlab/meshlab/controlplane/admission"
	"github.com/meshlab/meshlab/controlplane/crds"
	"github.com/meshlab/meshlab/controlplane/inject"
	"github.com/meshlab/meshlab/controlplane/server"
)

// Names of the control plane's objects.
const (
	ControlPlaneNamespace   = server.DefaultNamespace
	ControlPlaneName        = "istiod" // ServiceAccount, Role(Binding), Deployment, Service: istiod's names
	controlPlaneClusterRole = "istiod-clusterrole-" + ControlPlaneNamespace
	controlPlaneContainer   = "discovery" // istiod's container name
	portXDS                 = 15012
	portXDSPlain            = 15010
	portMonitoring          = 15014
	portWebhook             = 15017 // inject.ListenPort, behind Service port 443
)

// ControlPlaneWorkload is the Deployment to wait for after applying Objects.
var ControlPlaneWorkload = struct{ Kind, Namespace, Name string }{"Deployment", ControlPlaneNamespace, ControlPlaneName}

// controlPlaneLabels are istiod's (istioctl finds the control plane by app=istiod and istio.io/rev), plus
// part-of=meshlab, which says whose istiod it is.
var controlPlaneLabels = map[string]string{
	"app": ControlPlaneName, "istio": "pilot", "istio.io/rev": "default",
	"app.kubernetes.io/name": ControlPlaneName, "app.kubernetes.io/part-of": "meshlab",
}

// controlPlaneSelector selects the control plane's pods, as istiod's Service does.
var controlPlaneSelector = map[string]string{"app": ControlPlaneName, "istio": "pilot"}

// with returns a copy of labels with k=v added.
func with(labels map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for lk, lv := range labels {
		out[lk] = lv
	}
	return out
}

func controlPlaneMeta(name, namespace string) metav1.ObjectMeta {
	l := map[string]string{}
	for k, v := range controlPlaneLabels {
		l[k] = v
	}
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: l}
}

// ControlPlane returns everything to apply for the control plane, in order: namespace and CRDs first, then RBAC, then the workload.
func ControlPlane(image string) []client.Object {
	out := []client.Object{
		&corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: ControlPlaneNamespace}},
	}
	for _, c := range crds.All() {
		out = append(out, c)
	}
	return append(out,
		&corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: controlPlaneMeta(ControlPlaneName, ControlPlaneNamespace)},
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: controlPlaneMeta(controlPlaneClusterRole, ""),
			Rules:      controlPlaneClusterRules(),
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: controlPlaneMeta(controlPlaneClusterRole, ""),
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: controlPlaneClusterRole},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: ControlPlaneName, Namespace: ControlPlaneNamespace}},
		},
		// The CA key lives in a Secret of the control plane's own namespace: only there may it read secrets.
		&rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
			ObjectMeta: controlPlaneMeta(ControlPlaneName, ControlPlaneNamespace),
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "create", "update"}}},
		},
		&rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: controlPlaneMeta(ControlPlaneName, ControlPlaneNamespace),
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: ControlPlaneName},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: ControlPlaneName, Namespace: ControlPlaneNamespace}},
		},
		controlPlaneDeployment(image),
		&corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: controlPlaneMeta(ControlPlaneName, ControlPlaneNamespace),
			Spec: corev1.ServiceSpec{
				Selector: controlPlaneSelector,
				Ports: []corev1.ServicePort{
					{Name: "grpc-xds", Port: portXDS, TargetPort: intstr.FromInt32(portXDS), Protocol: corev1.ProtocolTCP},
					{Name: "grpc-xds-plain", Port: portXDSPlain, TargetPort: intstr.FromInt32(portXDSPlain), Protocol: corev1.ProtocolTCP},
					{Name: "http-monitoring", Port: portMonitoring, TargetPort: intstr.FromInt32(portMonitoring), Protocol: corev1.ProtocolTCP},
					{Name: "https-webhook", Port: 443, TargetPort: intstr.FromInt32(portWebhook), Protocol: corev1.ProtocolTCP},
				},
			},
		},
	)
}

// controlPlaneClusterRules are the control plane's cluster-wide permissions: read everything it ingests; write the
// status of Gateway API and Istio objects; manage waypoint Deployments, Services and ServiceAccounts;
// create the istio-waypoint GatewayClass; events; publish the root ConfigMap everywhere; and, for the CA,
// TokenReviews and pod lookups; for sidecar injection, inject.RBACRules and creating the
// MutatingWebhookConfiguration; for validation, admission.RBACRules (the ValidatingWebhookConfiguration).
func controlPlaneClusterRules() []rbacv1.PolicyRule {
	read := []string{"get", "list", "watch"}
	write := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	status := []string{"get", "update", "patch"}
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces", "pods", "endpoints"}, Verbs: read},
		{APIGroups: []string{""}, Resources: []string{"services", "serviceaccounts"}, Verbs: write},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "update", "patch"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: write},
		{APIGroups: []string{crds.GatewayGroup}, Resources: []string{"gatewayclasses", "gateways", "httproutes", "grpcroutes", "tcproutes"}, Verbs: write},
		{APIGroups: []string{crds.GatewayGroup}, Resources: []string{"gatewayclasses/status", "gateways/status", "httproutes/status", "grpcroutes/status", "tcproutes/status"}, Verbs: status},
		{APIGroups: []string{crds.NetworkingGroup}, Resources: []string{"virtualservices", "destinationrules"}, Verbs: read},
		{APIGroups: []string{crds.NetworkingGroup}, Resources: []string{"virtualservices/status", "destinationrules/status"}, Verbs: status},
		{APIGroups: []string{crds.SecurityGroup}, Resources: []string{"authorizationpolicies", "requestauthentications"}, Verbs: read},
		{APIGroups: []string{crds.SecurityGroup}, Resources: []string{"authorizationpolicies/status", "requestauthentications/status"}, Verbs: status},
		{APIGroups: []string{crds.SecurityGroup}, Resources: []string{"peerauthentications"}, Verbs: read},
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
	}
	// Sidecar injection: namespace labels, the template ConfigMap, and the webhook configuration the
	// control plane creates once its webhook answers.
	rules = append(rules, inject.RBACRules()...)
	// Validation: the ValidatingWebhookConfiguration it creates and keeps the caBundle of.
	rules = append(rules, admission.RBACRules()...)
	return append(rules, rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"},
		Resources: []string{"mutatingwebhookconfigurations"}, Verbs: []string{"get", "create", "update", "patch"}})
}

func controlPlaneDeployment(image string) *appsv1.Deployment {
	fieldEnv := func(n, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: n, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: controlPlaneMeta(ControlPlaneName, ControlPlaneNamespace),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1), // no leader election: one control plane
			Selector: &metav1.LabelSelector{MatchLabels: controlPlaneSelector},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				// The label, not the deprecated annotation, keeps injection away (istioctl analyze warns on the annotation).
				ObjectMeta: metav1.ObjectMeta{Labels: with(controlPlaneLabels, "sidecar.istio.io/inject", "false")},
				Spec: corev1.PodSpec{
					ServiceAccountName: ControlPlaneName,
					Containers: []corev1.Container{{
						Name:            controlPlaneContainer,
						Image:           image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Args:            []string{"controlplane", "--image", image},
						Env: []corev1.EnvVar{
							fieldEnv("POD_NAME", "metadata.name"),
							fieldEnv("POD_NAMESPACE", "metadata.namespace"),
							{Name: "MESHLAB_IMAGE", Value: image},
						},
						Ports: []corev1.ContainerPort{
							{Name: "grpc-xds", ContainerPort: portXDS, Protocol: corev1.ProtocolTCP},
							{Name: "grpc-xds-plain", ContainerPort: portXDSPlain, Protocol: corev1.ProtocolTCP},
							{Name: "http-monitoring", ContainerPort: portMonitoring, Protocol: corev1.ProtocolTCP},
							{Name: "https-webhook", ContainerPort: portWebhook, Protocol: corev1.ProtocolTCP},
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(portMonitoring)}},
							PeriodSeconds: 2, FailureThreshold: 30,
						},
						SecurityContext: &corev1.SecurityContext{
							RunAsUser: ptr.To[int64](1337), RunAsGroup: ptr.To[int64](1337), RunAsNonRoot: ptr.To(true),
							AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						// LoadOrCreateCA writes a new root to a temporary directory before storing it in its Secret.
						VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
					}},
					Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				},
			},
		},
	}
}
