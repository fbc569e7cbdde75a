package agent_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/meshlab/meshlab/dataplane/capture"
	"github.com/meshlab/meshlab/dataplane/netnstest"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/dataplane/ztunnel/agent"
	"github.com/meshlab/meshlab/identity/ca"
)

// fakeNetnsDir is a stand-in for a kind node's /var/run/netns: each pod namespace is bind-mounted onto a
// cni-<name> file, as containerd does, next to files that must be ignored.
func fakeNetnsDir(t *testing.T, pods ...*netnstest.Pod) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"cni-not-a-netns", "other-file"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pods {
		bindNetns(t, p.Path(), filepath.Join(dir, "cni-"+p.PodName))
	}
	return dir
}

func bindNetns(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.WriteFile(dst, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting %s on %s: %v", src, dst, err)
	}
	t.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })
}

func TestNetnsFinder(t *testing.T) {
	network := netnstest.New(t)
	node := network.AddNode("worker")
	sleep, productpage := node.AddPod("sleep"), node.AddPod("productpage")
	dir := fakeNetnsDir(t, sleep, productpage)
	f := &agent.NetnsFinder{Dir: dir}
	for _, p := range []*netnstest.Pod{sleep, productpage} {
		h, path, err := f.Find(p.IP)
		if err != nil {
			t.Fatalf("Find(%s) = %v", p.IP, err)
		}
		if want := filepath.Join(dir, "cni-"+p.PodName); path != want {
			t.Errorf("Find(%s) = %s, want %s", p.IP, path, want)
		}
		if h.UniqueId() != p.Handle.UniqueId() {
			t.Errorf("Find(%s) returned namespace %s, want %s", p.IP, h.UniqueId(), p.Handle.UniqueId())
		}
		h.Close()
	}
	if _, _, err := f.Find(netip.MustParseAddr("10.244.9.9")); err == nil || !strings.Contains(err.Error(), "no network namespace") {
		t.Errorf("Find(unknown IP) = %v, want not found", err)
	}
	// The cached file now holds another pod (a reused name): the cache is checked, not trusted.
	sleepFile := filepath.Join(dir, "cni-sleep")
	if err := unix.Unmount(sleepFile, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(productpage.Path(), sleepFile, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Find(sleep.IP); err == nil {
		t.Error("Find(sleep) after its namespace went away succeeded from the cache")
	}
}

// TestAgentFollowsLabels runs the agent against a fake API server and a real ztunnel in the netns
// harness: capture is installed and removed in the pods' own namespaces as labels change.
func TestAgentFollowsLabels(t *testing.T) {
	network := netnstest.New(t)
	node := network.AddNode("worker")
	sleepNS, productNS, hostNetNS := node.AddPod("sleep"), node.AddPod("productpage"), node.AddPod("hostnet")
	dir := fakeNetnsDir(t, sleepNS, productNS, hostNetNS)

	root, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	certs := ztunnel.NewCerts(root)
	defer certs.Close()
	zt, err := ztunnel.New(ztunnel.Options{Node: "worker", Certs: certs, Bundle: root.Bundle(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer zt.Close()

	pod := func(name, node string, p *netnstest.Pod) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
			Spec:       corev1.PodSpec{NodeName: node, ServiceAccountName: name},
			Status:     corev1.PodStatus{PodIP: p.IP.String(), Phase: corev1.PodRunning},
		}
	}
	hostNet := pod("hostnet", "worker", hostNetNS)
	hostNet.Spec.HostNetwork = true
	elsewhere := pod("elsewhere", "worker2", productNS) // the fake API server ignores the node field selector
	client := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		pod("sleep", "worker", sleepNS), pod("productpage", "worker", productNS), hostNet, elsewhere,
	)
	var cfg ztunnel.Config
	for _, p := range []*netnstest.Pod{sleepNS, productNS, hostNetNS} {
		cfg.Workloads = append(cfg.Workloads, ztunnel.Workload{UID: "Kubernetes//Pod/default/" + p.PodName, Name: p.PodName,
			Namespace: "default", ServiceAccount: p.PodName, Node: "worker", IP: p.IP, Protocol: ztunnel.ProtocolHBONE})
	}
	known := func(uid string, ip netip.Addr) bool {
		return slices.ContainsFunc(cfg.Workloads, func(w ztunnel.Workload) bool { return w.UID == uid && w.IP == ip })
	}
	// The config arrives after the agent starts: pods wait for it.
	var configured atomic.Bool
	ready := func(uid string, ip netip.Addr) bool { return configured.Load() && known(uid, ip) }
	a, err := agent.New(agent.Options{
		Client: client, Node: "worker", Proxy: zt, Netns: &agent.NetnsFinder{Dir: dir}, Logf: t.Logf,
		Ready:       func(uid string, ip netip.Addr) bool { return ready(uid, ip) },
		RemoveRules: func(ns netns.NsHandle) error { return capture.Remove(ns, capture.Config{}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	waitFor(t, "the agent to sync", a.Synced)

	captured := func(p *netnstest.Pod) bool {
		ok, err := capture.Installed(p.Handle, capture.Config{})
		if err != nil {
			t.Fatalf("capture.Installed(%s) = %v", p.PodName, err)
		}
		return ok
	}
	annotated := func(name string) bool {
		p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		return err == nil && p.Annotations[agent.RedirectionAnnotation] == agent.RedirectionEnabled
	}
	enrolled := func() []string {
		var out []string
		for _, e := range a.Enrolled() {
			out = append(out, e.Name)
		}
		return out
	}
	setNamespaceMode := func(mode string) {
		ns, err := client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ns.Labels = map[string]string{}
		if mode != "" {
			ns.Labels[agent.DataplaneModeLabel] = mode
		}
		if _, err := client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setPodMode := func(name, mode string) {
		p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Labels = map[string]string{}
		if mode != "" {
			p.Labels[agent.DataplaneModeLabel] = mode
		}
		if _, err := client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// 1. Nothing labelled: nothing captured.
	time.Sleep(200 * time.Millisecond)
	if got := enrolled(); len(got) != 0 || captured(sleepNS) {
		t.Fatalf("enrolled %v before any label", got)
	}

	// 2. The namespace goes ambient before ztunnel has the workloads: pods wait, then enrol on Resync.
	setNamespaceMode("ambient")
	time.Sleep(300 * time.Millisecond)
	if got := enrolled(); len(got) != 0 {
		t.Fatalf("enrolled %v before ztunnel knew the workloads", got)
	}
	if err := zt.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	configured.Store(true)
	a.Resync()
	waitFor(t, "sleep and productpage enrolled", func() bool {
		return slices.Equal(enrolled(), []string{"productpage", "sleep"}) && annotated("sleep") && annotated("productpage")
	})
	if !captured(sleepNS) || !captured(productNS) {
		t.Error("enrolled pods have no capture rules")
	}
	if captured(hostNetNS) || annotated("hostnet") || annotated("elsewhere") {
		t.Error("a host-network pod or a pod on another node was touched")
	}
	if got := zt.Pods(); len(got) != 2 {
		t.Errorf("ztunnel serves %v, want two pods", got)
	}

	// 3. A pod opts out: its capture and annotation go, the other pod stays.
	setPodMode("sleep", "none")
	waitFor(t, "sleep un-enrolled", func() bool { return slices.Equal(enrolled(), []string{"productpage"}) && !annotated("sleep") })
	if captured(sleepNS) {
		t.Error("sleep still captured after opting out")
	}
	if !captured(productNS) {
		t.Error("productpage lost its capture")
	}

	// 4. The opt-out is removed: captured again.
	setPodMode("sleep", "")
	waitFor(t, "sleep enrolled again", func() bool { return slices.Equal(enrolled(), []string{"productpage", "sleep"}) && captured(sleepNS) })

	// 5. The namespace label goes: every pod is released.
	setNamespaceMode("")
	waitFor(t, "all un-enrolled", func() bool { return len(enrolled()) == 0 && !annotated("sleep") && !annotated("productpage") })
	if captured(sleepNS) || captured(productNS) {
		t.Error("capture left after the namespace left ambient mode")
	}

	// 6. A pod labelled ambient itself, then deleted.
	setPodMode("productpage", "ambient")
	waitFor(t, "productpage enrolled by its own label", func() bool { return slices.Equal(enrolled(), []string{"productpage"}) && captured(productNS) })
	if err := client.CoreV1().Pods("default").Delete(ctx, "productpage", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "productpage removed", func() bool { return len(enrolled()) == 0 && !captured(productNS) })

	// 7. A pod an earlier ztunnel captured (annotated, rules in place) that is no longer ambient: cleaned.
	if err := capture.Install(sleepNS.Handle, capture.Config{}); err != nil {
		t.Fatal(err)
	}
	p, _ := client.CoreV1().Pods("default").Get(ctx, "sleep", metav1.GetOptions{})
	p.Annotations = map[string]string{agent.RedirectionAnnotation: agent.RedirectionEnabled}
	if _, err := client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "stale capture removed", func() bool { return !captured(sleepNS) && !annotated("sleep") })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
