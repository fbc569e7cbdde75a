package manifests

import (
	"bytes"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/bookinfo"
	"github.com/meshlab/meshlab/internal/golden"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

const bookinfoImage = "meshlab.local/meshlab:dev"

func TestBookinfoGolden(t *testing.T) {
	var buf bytes.Buffer
	for i, obj := range Bookinfo(bookinfoImage, "default") {
		if i > 0 {
			buf.WriteString("---\n")
		}
		b, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatalf("marshalling %s: %v", obj.GetName(), err)
		}
		buf.Write(b)
	}
	golden.Check(t, filepath.Join("testdata", "bookinfo.golden.yaml"), buf.Bytes())
}

func TestBookinfoOrderAndNames(t *testing.T) {
	var got []string
	for _, obj := range Bookinfo(bookinfoImage, "bookinfo") {
		if obj.GetNamespace() != "bookinfo" {
			t.Errorf("%s is in namespace %q", obj.GetName(), obj.GetNamespace())
		}
		got = append(got, obj.GetObjectKind().GroupVersionKind().Kind+"/"+obj.GetName())
	}
	want := []string{
		"ServiceAccount/bookinfo-productpage", "ServiceAccount/bookinfo-details", "ServiceAccount/bookinfo-reviews",
		"ServiceAccount/bookinfo-ratings", "ServiceAccount/sleep",
		"Service/productpage", "Service/details", "Service/reviews", "Service/ratings", "Service/sleep",
		"Deployment/productpage-v1", "Deployment/details-v1", "Deployment/ratings-v1",
		"Deployment/reviews-v1", "Deployment/reviews-v2", "Deployment/reviews-v3", "Deployment/sleep",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Bookinfo() = %v\nwant %v", got, want)
	}
	if want := []string{"productpage", "details", "reviews", "ratings", "sleep"}; !slices.Equal(bookinfo.ServiceNames(), want) {
		t.Errorf("bookinfo.ServiceNames() = %v, want %v", bookinfo.ServiceNames(), want)
	}
	if want := []string{"productpage-v1", "details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3", "sleep"}; !slices.Equal(bookinfo.DeploymentNames(), want) {
		t.Errorf("bookinfo.DeploymentNames() = %v, want %v", bookinfo.DeploymentNames(), want)
	}
}

func byName[T client.Object](objs []client.Object) map[string]T {
	m := map[string]T{}
	for _, o := range objs {
		if t, ok := o.(T); ok {
			m[o.GetName()] = t
		}
	}
	return m
}

func TestBookinfoServices(t *testing.T) {
	svcs := byName[*corev1.Service](Bookinfo(bookinfoImage, "default"))
	for _, tt := range []struct {
		name string
		port int32
	}{{"productpage", 9080}, {"details", 9080}, {"reviews", 9080}, {"ratings", 9080}, {"sleep", 80}} {
		s := svcs[tt.name]
		if s == nil {
			t.Errorf("no Service %s", tt.name)
			continue
		}
		if !reflect.DeepEqual(s.Spec.Selector, map[string]string{"app": tt.name}) {
			t.Errorf("Service %s selector = %v", tt.name, s.Spec.Selector)
		}
		if !reflect.DeepEqual(s.Labels, map[string]string{"app": tt.name, "service": tt.name}) {
			t.Errorf("Service %s labels = %v", tt.name, s.Labels)
		}
		if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Name != "http" || s.Spec.Ports[0].Port != tt.port || s.Spec.Ports[0].TargetPort.IntVal != tt.port {
			t.Errorf("Service %s ports = %+v, want http %d", tt.name, s.Spec.Ports, tt.port)
		}
	}
}

func TestBookinfoDeployments(t *testing.T) {
	deps := byName[*appsv1.Deployment](Bookinfo(bookinfoImage, "default"))
	sas := byName[*corev1.ServiceAccount](Bookinfo(bookinfoImage, "default"))
	tests := []struct {
		name     string
		labels   map[string]string
		sa       string
		args     []string
		env      map[string]string
		probe    bool
		graceful bool // keeps the default termination grace period
	}{
		{"productpage-v1", map[string]string{"app": "productpage", "version": "v1"}, "bookinfo-productpage", []string{"bookinfo", "productpage", "-v"}, nil, true, true},
		{"details-v1", map[string]string{"app": "details", "version": "v1"}, "bookinfo-details", []string{"bookinfo", "details", "-v"}, nil, true, true},
		{"ratings-v1", map[string]string{"app": "ratings", "version": "v1"}, "bookinfo-ratings", []string{"bookinfo", "ratings", "-v"}, nil, true, true},
		{"reviews-v1", map[string]string{"app": "reviews", "version": "v1"}, "bookinfo-reviews", []string{"bookinfo", "reviews", "-v"},
			map[string]string{"SERVICE_VERSION": "v1", "ENABLE_RATINGS": "false"}, true, true},
		{"reviews-v2", map[string]string{"app": "reviews", "version": "v2"}, "bookinfo-reviews", []string{"bookinfo", "reviews", "-v"},
			map[string]string{"SERVICE_VERSION": "v2", "ENABLE_RATINGS": "true", "STAR_COLOR": "black"}, true, true},
		{"reviews-v3", map[string]string{"app": "reviews", "version": "v3"}, "bookinfo-reviews", []string{"bookinfo", "reviews", "-v"},
			map[string]string{"SERVICE_VERSION": "v3", "ENABLE_RATINGS": "true", "STAR_COLOR": "red"}, true, true},
		{"sleep", map[string]string{"app": "sleep"}, "sleep", []string{"sleep"}, nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deps[tt.name]
			if d == nil {
				t.Fatalf("no Deployment %s", tt.name)
			}
			if !reflect.DeepEqual(d.Spec.Selector.MatchLabels, tt.labels) || !reflect.DeepEqual(d.Spec.Template.Labels, tt.labels) || !reflect.DeepEqual(d.Labels, tt.labels) {
				t.Errorf("labels: deployment %v, selector %v, pod %v; want %v", d.Labels, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels, tt.labels)
			}
			pod := d.Spec.Template.Spec
			if pod.ServiceAccountName != tt.sa || sas[tt.sa] == nil {
				t.Errorf("serviceAccountName = %q (created: %v), want %q", pod.ServiceAccountName, sas[tt.sa] != nil, tt.sa)
			}
			if tt.graceful != (pod.TerminationGracePeriodSeconds == nil) || (!tt.graceful && *pod.TerminationGracePeriodSeconds != 0) {
				t.Errorf("terminationGracePeriodSeconds = %v", pod.TerminationGracePeriodSeconds)
			}
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			c := pod.Containers[0]
			if c.Image != bookinfoImage || c.ImagePullPolicy != corev1.PullIfNotPresent || len(c.Command) != 0 || !slices.Equal(c.Args, tt.args) {
				t.Errorf("container image %q pull %q command %v args %v; want %q IfNotPresent, entrypoint, args %v", c.Image, c.ImagePullPolicy, c.Command, c.Args, bookinfoImage, tt.args)
			}
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			if len(env) != len(tt.env) || (len(env) > 0 && !reflect.DeepEqual(env, tt.env)) {
				t.Errorf("env = %v, want %v", env, tt.env)
			}
			if p := c.ReadinessProbe; tt.probe != (p != nil) || (p != nil && (p.HTTPGet == nil || p.HTTPGet.Path != "/health" || p.HTTPGet.Port.IntVal != 9080)) {
				t.Errorf("readiness probe = %+v, want GET /health on 9080: %v", p, tt.probe)
			}
			sc := c.SecurityContext
			if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != bookinfoUID ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
				t.Errorf("securityContext = %+v, want non-root %d, no escalation, read-only root, drop ALL", sc, bookinfoUID)
			}
		})
	}
}

func TestBookinfoServiceAccountLabels(t *testing.T) {
	for name, sa := range byName[*corev1.ServiceAccount](Bookinfo(bookinfoImage, "default")) {
		var want map[string]string
		if app, ok := strings.CutPrefix(name, "bookinfo-"); ok {
			want = map[string]string{"account": app}
		}
		if !reflect.DeepEqual(sa.Labels, want) {
			t.Errorf("ServiceAccount %s labels = %v, want %v", name, sa.Labels, want)
		}
	}
}
