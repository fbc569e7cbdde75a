// Package cni is meshlab's own pod network for kind (kind's kindnet cannot be had offline): an agent on
// every node writes a ptp + host-local CNI config for the node's pod CIDR and routes the other nodes'
// pod CIDRs through their node IPs. It runs as `meshlab cni-agent` in a host-network DaemonSet.
package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ConfigFile is where the agent writes the CNI config on the node.
const ConfigFile = "10-meshlab.conflist"

// Config renders the CNI network config for a node's pod CIDR.
func Config(podCIDR string, mtu int) ([]byte, error) {
	if _, _, err := net.ParseCIDR(podCIDR); err != nil {
		return nil, fmt.Errorf("node pod CIDR %q: %w", podCIDR, err)
	}
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "meshlab",
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"ipMasq": false, // keep pod source IPs: the mesh reports and authorizes by them
				"mtu":    mtu,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": [][]map[string]string{{{"subnet": podCIDR}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// Route is a pod CIDR reached through another node's IP.
type Route struct {
	CIDR string
	Via  string
}

// Routes computes the routes from self to every other node's pod CIDR.
func Routes(self string, nodes []corev1.Node) []Route {
	var rs []Route
	for _, n := range nodes {
		if n.Name == self || n.Spec.PodCIDR == "" {
			continue
		}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP && net.ParseIP(a.Address).To4() != nil {
				rs = append(rs, Route{CIDR: n.Spec.PodCIDR, Via: a.Address})
				break
			}
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].CIDR < rs[j].CIDR })
	return rs
}

// RouteSetter installs a route; the agent uses netlink, tests record calls.
type RouteSetter func(Route) error

// Agent keeps one node's CNI config and routes in step with the cluster.
type Agent struct {
	Kube     kubernetes.Interface
	NodeName string
	ConfDir  string
	SetRoute RouteSetter
	Logf     func(string, ...any)
}

// Sync does one pass: it writes the config once the node has a pod CIDR, and adds missing routes.
func (a *Agent) Sync(ctx context.Context) error {
	self, err := a.Kube.CoreV1().Nodes().Get(ctx, a.NodeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading node %s: %w", a.NodeName, err)
	}
	if self.Spec.PodCIDR == "" {
		return fmt.Errorf("node %s has no pod CIDR yet", a.NodeName)
	}
	conf, err := Config(self.Spec.PodCIDR, 1500)
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(a.ConfDir, ConfigFile), conf); err != nil {
		return err
	}
	all, err := a.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	for _, r := range Routes(a.NodeName, all.Items) {
		if err := a.SetRoute(r); err != nil {
			return fmt.Errorf("route %s via %s: %w", r.CIDR, r.Via, err)
		}
	}
	return nil
}

// Run syncs until the context ends.
func (a *Agent) Run(ctx context.Context, every time.Duration) error {
	for {
		if err := a.Sync(ctx); err != nil {
			a.Logf("cni-agent: %v", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// writeAtomic replaces path only when its content changes; containerd watches the directory and must
// never read half a file.
func writeAtomic(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
