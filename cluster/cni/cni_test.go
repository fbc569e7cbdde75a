package cni

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func node(name, cidr, ip string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.NodeSpec{PodCIDR: cidr},
		Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}},
	}
}

// The API server is faked here (client-go's fake clientset); the real one is exercised by the kind e2e test.
func TestAgentSyncWritesConfigAndRoutes(t *testing.T) {
	kube := fake.NewSimpleClientset(
		node("a", "10.244.0.0/24", "172.18.0.2"),
		node("b", "10.244.1.0/24", "172.18.0.3"),
		node("c", "", "172.18.0.4"), // no CIDR yet: no route
	)
	dir := t.TempDir()
	var got []Route
	a := &Agent{Kube: kube, NodeName: "a", ConfDir: dir, SetRoute: func(r Route) error { got = append(got, r); return nil }, Logf: t.Logf}
	if err := a.Sync(context.Background()); err != nil {
		t.Fatalf("Sync() = %v", err)
	}
	if want := []Route{{CIDR: "10.244.1.0/24", Via: "172.18.0.3"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("routes = %v, want %v", got, want)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Plugins []struct {
			Type   string
			IPMasq bool
			IPAM   struct{ Ranges [][]map[string]string } `json:"ipam"`
		}
	}
	if err := json.Unmarshal(raw, &conf); err != nil {
		t.Fatal(err)
	}
	if conf.Plugins[0].Type != "ptp" || conf.Plugins[0].IPMasq || conf.Plugins[0].IPAM.Ranges[0][0]["subnet"] != "10.244.0.0/24" {
		t.Errorf("config = %s", raw)
	}
}

func TestAgentSyncWaitsForPodCIDR(t *testing.T) {
	kube := fake.NewSimpleClientset(node("a", "", "172.18.0.2"))
	dir := t.TempDir()
	a := &Agent{Kube: kube, NodeName: "a", ConfDir: dir, SetRoute: func(Route) error { return nil }, Logf: t.Logf}
	if err := a.Sync(context.Background()); err == nil {
		t.Fatal("Sync() = nil for a node without pod CIDR")
	}
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); !os.IsNotExist(err) {
		t.Errorf("config written without a pod CIDR: %v", err)
	}
}

func TestConfigRejectsBadCIDR(t *testing.T) {
	if _, err := Config("10.244.0.0", 1500); err == nil {
		t.Fatal("Config accepted a CIDR without prefix length")
	}
}
