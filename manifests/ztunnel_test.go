package manifests

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/meshlab/meshlab/dataplane/ztunnel/app"
	"github.com/meshlab/meshlab/internal/golden"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func TestZtunnelGolden(t *testing.T) {
	var out bytes.Buffer
	for _, o := range Ztunnel("meshlab.local/meshlab:test") {
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	golden.Check(t, filepath.Join("testdata", "ztunnel.golden.yaml"), out.Bytes())
}

// TestDaemonSet checks what the agent and the CA client rely on, independently of the golden file.
func TestZtunnelDaemonSet(t *testing.T) {
	var ds *appsv1.DaemonSet
	for _, o := range Ztunnel("img") {
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
		if m.MountPath == app.NetnsDir {
			netns = &c.VolumeMounts[i]
		}
	}
	if netns == nil || netns.MountPropagation == nil || *netns.MountPropagation != corev1.MountPropagationHostToContainer {
		t.Errorf("netns mount = %+v, want %s with HostToContainer propagation", netns, app.NetnsDir)
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
	if c.ReadinessProbe.HTTPGet.Path != "/healthz/ready" || c.ReadinessProbe.HTTPGet.Port.IntVal != app.HealthPort {
		t.Errorf("readiness = %+v", c.ReadinessProbe.HTTPGet)
	}
	if len(c.Args) != 1 || c.Args[0] != "ztunnel" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("args %v, pull policy %s", c.Args, c.ImagePullPolicy)
	}
}
