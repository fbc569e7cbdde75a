// Package deploy builds the Kubernetes objects that run bookinfo and the sleep client from meshlab's own
// image, shaped like Istio's samples/bookinfo/platform/kube/bookinfo.yaml and samples/sleep/sleep.yaml:
// the same names, labels (app, version, service, account), ports and service accounts, so the mesh's
// identities read spiffe://cluster.local/ns/<ns>/sa/bookinfo-reviews as upstream's do. Every container
// runs `meshlab bookinfo <service>` (or `meshlab sleep`) as a non-root user with a read-only root.
package deploy

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshlab/meshlab/bookinfo"
)

// Service (and app label) names.
const (
	ProductPage = "productpage"
	Details     = "details"
	Reviews     = "reviews"
	Ratings     = "ratings"
	Sleep       = "sleep"
)

const (
	// Port is the port of every bookinfo service.
	Port = bookinfo.Port
	// SleepPort is the sleep Service's port; nothing listens on it, as upstream.
	SleepPort = 80
	// UID is the user and group every container runs as.
	UID = 1000
	// HealthPath is what the readiness probes GET on Port.
	HealthPath = "/health"
)

// Apps are the bookinfo services, in the order they are deployed.
var Apps = []string{ProductPage, Details, Reviews, Ratings}

// ReviewsVersions are the deployed versions of reviews.
var ReviewsVersions = []string{"v1", "v2", "v3"}

// ServiceNames returns the names of the Services Objects creates: the bookinfo services and sleep.
func ServiceNames() []string { return append(append([]string(nil), Apps...), Sleep) }

// DeploymentNames returns the names of the Deployments Objects creates, in apply order.
func DeploymentNames() []string {
	names := []string{DeploymentName(ProductPage, "v1"), DeploymentName(Details, "v1"), DeploymentName(Ratings, "v1")}
	for _, v := range ReviewsVersions {
		names = append(names, DeploymentName(Reviews, v))
	}
	return append(names, Sleep)
}

// DeploymentName is the name of app's Deployment at version: <app>-<version>.
func DeploymentName(app, version string) string { return app + "-" + version }

// ServiceAccountName is the service account app's pods run as: bookinfo-<app>, or sleep for sleep.
func ServiceAccountName(app string) string {
	if app == Sleep {
		return Sleep
	}
	return "bookinfo-" + app
}

// Objects returns everything bookinfo and sleep need in namespace, in apply order: ServiceAccounts,
// Services, then Deployments whose containers run image. The objects carry their TypeMeta so that they
// can be server-side applied as they are.
func Objects(image, namespace string) []client.Object {
	var objs []client.Object
	for _, app := range Apps {
		objs = append(objs, serviceAccount(namespace, app))
	}
	objs = append(objs, serviceAccount(namespace, Sleep))
	for _, app := range Apps {
		objs = append(objs, service(namespace, app, Port))
	}
	objs = append(objs, service(namespace, Sleep, SleepPort))

	objs = append(objs,
		bookinfoDeployment(image, namespace, ProductPage, "v1", nil),
		bookinfoDeployment(image, namespace, Details, "v1", nil),
		bookinfoDeployment(image, namespace, Ratings, "v1", nil),
	)
	for _, v := range ReviewsVersions {
		objs = append(objs, bookinfoDeployment(image, namespace, Reviews, v, reviewsEnv(v)))
	}
	return append(objs, sleepDeployment(image, namespace))
}

// reviewsEnv is what upstream bakes into each reviews image.
func reviewsEnv(version string) []corev1.EnvVar {
	env := []corev1.EnvVar{{Name: "SERVICE_VERSION", Value: version}}
	switch version {
	case "v1":
		return append(env, corev1.EnvVar{Name: "ENABLE_RATINGS", Value: "false"})
	case "v2":
		return append(env, corev1.EnvVar{Name: "ENABLE_RATINGS", Value: "true"}, corev1.EnvVar{Name: "STAR_COLOR", Value: "black"})
	default:
		return append(env, corev1.EnvVar{Name: "ENABLE_RATINGS", Value: "true"}, corev1.EnvVar{Name: "STAR_COLOR", Value: "red"})
	}
}

func serviceAccount(namespace, app string) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: ServiceAccountName(app), Namespace: namespace},
	}
	if app != Sleep {
		sa.Labels = map[string]string{"account": app}
	}
	return sa
}

func service(namespace, app string, port int32) *corev1.Service {
	return &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name: app, Namespace: namespace,
			Labels: map[string]string{"app": app, "service": app},
		},
		Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{
				Name: "http", Port: port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(port),
			}},
			Selector: map[string]string{"app": app},
		},
	}
}

func bookinfoDeployment(image, namespace, app, version string, env []corev1.EnvVar) *appsv1.Deployment {
	labels := map[string]string{"app": app, "version": version}
	c := container(image, app, []string{"bookinfo", app, "-v"})
	c.Env = env
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: Port, Protocol: corev1.ProtocolTCP}}
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: HealthPath, Port: intstr.FromInt32(Port), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds:    2,
		TimeoutSeconds:   1,
		FailureThreshold: 3,
	}
	return deployment(namespace, DeploymentName(app, version), labels, ServiceAccountName(app), c, nil)
}

func sleepDeployment(image, namespace string) *appsv1.Deployment {
	grace := int64(0)
	return deployment(namespace, Sleep, map[string]string{"app": Sleep}, ServiceAccountName(Sleep),
		container(image, Sleep, []string{"sleep"}), &grace)
}

// container runs meshlab's entrypoint with args, locked down.
func container(image, name string, args []string) corev1.Container {
	yes, no, uid := true, false, int64(UID)
	return corev1.Container{
		Name:            name,
		Image:           image,
		Args:            args,
		ImagePullPolicy: corev1.PullIfNotPresent,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             &yes,
			RunAsUser:                &uid,
			RunAsGroup:               &uid,
			AllowPrivilegeEscalation: &no,
			ReadOnlyRootFilesystem:   &yes,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

func deployment(namespace, name string, labels map[string]string, sa string, c corev1.Container, grace *int64) *appsv1.Deployment {
	replicas := int32(1)
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: copyLabels(labels)},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: copyLabels(labels)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: copyLabels(labels)},
				Spec: corev1.PodSpec{
					ServiceAccountName:            sa,
					TerminationGracePeriodSeconds: grace,
					Containers:                    []corev1.Container{c},
				},
			},
		},
	}
}

func copyLabels(l map[string]string) map[string]string {
	out := make(map[string]string, len(l))
	for k, v := range l {
		out[k] = v
	}
	return out
}
