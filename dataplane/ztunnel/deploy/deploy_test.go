package deploy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestObjectsGolden(t *testing.T) {
	var out bytes.Buffer
	for _, o := range Objects("meshlab.local/meshlab:test") {
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	golden := filepath.Join("testdata", "objects.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden (run with -update): %v", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("objects differ from %s (run with -update):\n%s", golden, out.String())
	}
}

// TestDaemonSet checks what the agent and the CA client rely on, independently of the golden file.
func TestDaemonSet(t *testing.T) {
	var ds *appsv1.DaemonSet
	for _, o := range Objects("img") {
		if d, ok := o.(*appsv1.DaemonSet); ok {
			ds = d
		}
	}
	if ds == nil {
		t.Fatal("no DaemonSet")
	}
	spec := ds.Spec.Template.Spec
	c := spec.Containers[0]
	if spec.HostNetwork {
		t.Error("ztunnel must not use the host network: its admin port is its own pod's loopback")
	}
	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Error("ztunnel must be privileged (setns into pod namespaces)")
	}
	var netns *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if m.MountPath == NetnsDir {
			netns = &c.VolumeMounts[i]
		}
	}
	if netns == nil || netns.MountPropagation == nil || *netns.MountPropagation != corev1.MountPropagationHostToContainer {
		t.Errorf("netns mount = %+v, want %s with HostToContainer propagation", netns, NetnsDir)
	}
	var token *corev1.ServiceAccountTokenProjection
	for _, v := range spec.Volumes {
		if v.Projected != nil {
			token = v.Projected.Sources[0].ServiceAccountToken
		}
	}
	if token == nil || token.Audience != "istio-ca" || token.Path != "istio-token" {
		t.Errorf("projected token = %+v, want audience istio-ca at istio-token", token)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/healthz/ready" || c.ReadinessProbe.HTTPGet.Port.IntVal != HealthPort {
		t.Errorf("readiness = %+v", c.ReadinessProbe.HTTPGet)
	}
	if len(c.Args) != 1 || c.Args[0] != "ztunnel" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("args %v, pull policy %s", c.Args, c.ImagePullPolicy)
	}
}
