package manifests

import (
	"bytes"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/image"
	"github.com/meshlab/meshlab/internal/golden"
)

func TestEchoGolden(t *testing.T) {
	var buf bytes.Buffer
	for i, obj := range Echo(EchoOptions{Name: "echo", Namespace: "apps", Version: "v1", Port: 8080, Replicas: 2, Service: true}) {
		if i > 0 {
			buf.WriteString("---\n")
		}
		b, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
	}
	golden.Check(t, filepath.Join("testdata", "echo.golden.yaml"), buf.Bytes())
}

func TestEchoVersions(t *testing.T) {
	objs := Echo(EchoOptions{Name: "web", Version: "v2", Port: 9090, Replicas: 1})
	if len(objs) != 1 {
		t.Fatalf("without Service: %d objects, want only the Deployment", len(objs))
	}
	d := objs[0].(*appsv1.Deployment)
	c := d.Spec.Template.Spec.Containers[0]
	if d.Name != "web-v2" || d.Namespace != "" || d.Spec.Template.Labels["app"] != "web" || d.Spec.Template.Labels["version"] != "v2" {
		t.Errorf("Deployment %s/%s labels %v", d.Namespace, d.Name, d.Spec.Template.Labels)
	}
	if c.Image != image.LabRef || c.ImagePullPolicy != "IfNotPresent" {
		t.Errorf("image %s pull %s, want %s IfNotPresent", c.Image, c.ImagePullPolicy, image.LabRef)
	}
	if want := []string{"echo", "server", "--port", "9090", "--version", "v2"}; !slices.Equal(c.Args, want) {
		t.Errorf("args %v, want %v", c.Args, want)
	}
}
