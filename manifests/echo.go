package manifests

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshlab/meshlab/image"
)

// EchoOptions shape one version of the echo app (`meshlab echo manifest`).
type EchoOptions struct {
	Name      string // the app: ServiceAccount and Service name, label app
	Namespace string // empty: none written, so the manifest goes where it is applied
	Version   string // label version, the Deployment is Name-Version
	Port      int32
	Replicas  int32
	Service   bool   // write the ServiceAccount and Service too (once per app, shared by its versions)
	Image     string // default image.LabRef, the stable name `meshlab up` gives its own image
}

// Echo returns the echo app's objects for one version, in apply order: ServiceAccount and Service (when
// asked for), then a Deployment running `meshlab echo server` with the version and the pod's namespace.
// Two versions of one app are two calls with the same Name and different Versions.
func Echo(o EchoOptions) []client.Object {
	if o.Image == "" {
		o.Image = image.LabRef
	}
	app := map[string]string{"app": o.Name}
	var objs []client.Object
	if o.Service {
		objs = append(objs,
			&corev1.ServiceAccount{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
				ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, Labels: copyLabels(app)},
			},
			&corev1.Service{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
				ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, Labels: copyLabels(app)},
				Spec: corev1.ServiceSpec{
					Selector: copyLabels(app),
					Ports:    []corev1.ServicePort{{Name: "http", Port: o.Port, TargetPort: intstr.FromInt32(o.Port)}},
				},
			})
	}
	labels := map[string]string{"app": o.Name, "version": o.Version}
	c := bookinfoContainer(o.Image, "echo", []string{"echo", "server", "--port", strconv.Itoa(int(o.Port)), "--version", o.Version})
	c.Env = []corev1.EnvVar{{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: o.Port}}
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(o.Port)}}, PeriodSeconds: 2}
	grace := int64(0)
	d := bookinfoPodDeployment(o.Namespace, o.Name+"-"+o.Version, labels, o.Name, c, &grace)
	d.Spec.Replicas = &o.Replicas
	return append(objs, d)
}
