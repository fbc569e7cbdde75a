package manifests

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/meshlab/meshlab/controlplane/crds"
)

func allows(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
			return true
		}
	}
	return false
}

func TestControlPlane(t *testing.T) {
	objs := ControlPlane("meshlab:abc")
	if ns, ok := objs[0].(*corev1.Namespace); !ok || ns.Name != ControlPlaneNamespace {
		t.Fatalf("first object = %T %s, want the namespace", objs[0], objs[0].GetName())
	}
	var dep *appsv1.Deployment
	var svc *corev1.Service
	var role *rbacv1.ClusterRole
	crdCount := 0
	for _, o := range objs {
		if o.GetObjectKind().GroupVersionKind().Kind == "" {
			t.Errorf("%T %s has no kind set", o, o.GetName())
		}
		switch o := o.(type) {
		case *appsv1.Deployment:
			dep = o
		case *corev1.Service:
			svc = o
		case *rbacv1.ClusterRole:
			role = o
		case *apiextensionsv1.CustomResourceDefinition:
			crdCount++
		}
	}
	if crdCount != len(crds.All()) {
		t.Errorf("%d CRDs, want %d", crdCount, len(crds.All()))
	}
	if dep == nil || dep.Name != ControlPlaneWorkload.Name || *dep.Spec.Replicas != 1 {
		t.Fatalf("deployment = %+v", dep)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Image != "meshlab:abc" || c.Args[0] != "controlplane" || c.ReadinessProbe.HTTPGet.Path != "/ready" || c.ReadinessProbe.HTTPGet.Port.IntValue() != 15014 {
		t.Errorf("container = %+v", c)
	}
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = e.Value == "meshlab:abc" || e.ValueFrom != nil
	}
	if !env["POD_NAMESPACE"] || !env["MESHLAB_IMAGE"] {
		t.Errorf("env = %v", c.Env)
	}
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, p.Name)
	}
	if !slices.Equal(ports, []string{"grpc-xds", "grpc-xds-plain", "http-monitoring", "https-webhook"}) {
		t.Errorf("service ports = %v", ports)
	}
	for _, need := range []struct{ group, resource, verb string }{
		{"", "pods", "watch"}, {"", "namespaces", "list"}, {"discovery.k8s.io", "endpointslices", "watch"},
		{"gateway.networking.k8s.io", "httproutes/status", "update"}, {"gateway.networking.k8s.io", "gateways/status", "update"},
		{"gateway.networking.k8s.io", "gatewayclasses", "create"}, {"networking.istio.io", "virtualservices/status", "update"},
		{"security.istio.io", "authorizationpolicies", "watch"}, {"security.istio.io", "requestauthentications", "watch"}, {"apps", "deployments", "create"}, {"", "serviceaccounts", "create"},
		{"", "services", "update"}, {"", "events", "create"}, {"", "configmaps", "create"}, {"authentication.k8s.io", "tokenreviews", "create"},
		{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "create"}, {"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "update"},
		{"admissionregistration.k8s.io", "validatingwebhookconfigurations", "create"}, {"admissionregistration.k8s.io", "validatingwebhookconfigurations", "update"},
	} {
		if !allows(role.Rules, need.group, need.resource, need.verb) {
			t.Errorf("ClusterRole does not allow %s %s/%s", need.verb, need.group, need.resource)
		}
	}
}
