package manifests

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshlab/meshlab/bookinfo"
)

// bookinfoUID is the user and group every bookinfo and sleep container runs as.
const bookinfoUID = 1000

// Bookinfo returns everything bookinfo and sleep need in namespace, in apply order: ServiceAccounts,
// Services, then Deployments whose containers run image. The objects carry their TypeMeta so that they
// can be server-side applied as they are.
func Bookinfo(image, namespace string) []client.Object {
	var objs []client.Object
	for _, app := range bookinfo.Apps {
		objs = append(objs, bookinfoServiceAccount(namespace, app))
	}
	objs = append(objs, bookinfoServiceAccount(namespace, bookinfo.Sleep))
	for _, app := range bookinfo.Apps {
		objs = append(objs, bookinfoService(namespace, app, bookinfo.Port))
	}
	objs = append(objs, bookinfoService(namespace, bookinfo.Sleep, bookinfo.SleepPort))

	objs = append(objs,
		bookinfoAppDeployment(image, namespace, bookinfo.ProductPage, "v1", nil),
		bookinfoAppDeployment(image, namespace, bookinfo.Details, "v1", nil),
		bookinfoAppDeployment(image, namespace, bookinfo.Ratings, "v1", nil),
	)
	for _, v := range bookinfo.ReviewsVersions {
		objs = append(objs, bookinfoAppDeployment(image, namespace, bookinfo.Reviews, v, reviewsEnv(v)))
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

func bookinfoServiceAccount(namespace, app string) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: bookinfo.ServiceAccountName(app), Namespace: namespace},
	}
	if app != bookinfo.Sleep {
		sa.Labels = map[string]string{"account": app}
	}
	return sa
}

func bookinfoService(namespace, app string, port int32) *corev1.Service {
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

func bookinfoAppDeployment(image, namespace, app, version string, env []corev1.EnvVar) *appsv1.Deployment {
	labels := map[string]string{"app": app, "version": version}
	c := bookinfoContainer(image, app, []string{"bookinfo", app, "-v"})
	c.Env = env
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: bookinfo.Port, Protocol: corev1.ProtocolTCP}}
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: bookinfo.HealthPath, Port: intstr.FromInt32(bookinfo.Port), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds:    2,
		TimeoutSeconds:   1,
		FailureThreshold: 3,
	}
	return bookinfoPodDeployment(namespace, bookinfo.DeploymentName(app, version), labels, bookinfo.ServiceAccountName(app), c, nil)
}

func sleepDeployment(image, namespace string) *appsv1.Deployment {
	grace := int64(0)
	return bookinfoPodDeployment(namespace, bookinfo.Sleep, map[string]string{"app": bookinfo.Sleep}, bookinfo.ServiceAccountName(bookinfo.Sleep),
		bookinfoContainer(image, bookinfo.Sleep, []string{"sleep"}), &grace)
}

// container runs meshlab's entrypoint with args, locked down.
func bookinfoContainer(image, name string, args []string) corev1.Container {
	yes, no, uid := true, false, int64(bookinfoUID)
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

func bookinfoPodDeployment(namespace, name string, labels map[string]string, sa string, c corev1.Container, grace *int64) *appsv1.Deployment {
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
