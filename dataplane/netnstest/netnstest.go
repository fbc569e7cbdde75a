// Package netnstest builds throwaway networks of Linux network namespaces for tests, shaped like a small
// kind cluster: an underlay switch namespace, "node" namespaces attached to it, each with a bridge and a pod
// CIDR, and "pod" namespaces attached to their node by veth pairs with default routes through the node.
// Everything lives in namespaces the test creates (the host's network is never touched) and is removed with
// t.Cleanup, even when the test fails. It needs root and the `ip` command; without them tests skip.
package netnstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/meshlab/meshlab/dataplane/capture"
)

const (
	prefix       = "mlt" // every namespace this package creates starts with mlt<pid>-
	netnsDir     = "/var/run/netns"
	underlayCIDR = "172.18.0.0/16"
)

// Namespace is one named network namespace.
type Namespace struct {
	// Name is the namespace's name under /var/run/netns (usable with `ip netns exec`).
	Name string
	// Handle is an open handle, valid until cleanup.
	Handle netns.NsHandle
}

// Path is the namespace's bind-mount path.
func (n *Namespace) Path() string { return filepath.Join(netnsDir, n.Name) }

// Do runs fn inside the namespace on a locked OS thread.
func (n *Namespace) Do(fn func() error) error { return capture.Do(n.Handle, fn) }

// Listen opens a listener inside the namespace.
func (n *Namespace) Listen(network, addr string) (net.Listener, error) {
	return capture.Listen(n.Handle, network, addr, capture.SocketOptions{})
}

// DialContext connects from inside the namespace.
func (n *Namespace) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return capture.Dialer{NS: n.Handle}.DialContext(ctx, network, addr)
}

// Command prepares a process that runs inside the namespace (through `ip netns exec`, which execs the
// command in place, so the returned Cmd's process is the command itself).
func (n *Namespace) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Network is an underlay switch plus the nodes attached to it.
type Network struct {
	Namespace
	t     testing.TB
	id    string
	mu    sync.Mutex
	nodes []*Node
}

// Node is a node namespace: uplink eth0 on the underlay, bridge cni0 holding its pods.
type Node struct {
	Namespace
	// Index is the node's position, 0-based.
	Index int
	// IP is the node's underlay address (172.18.0.<index+2>).
	IP netip.Addr
	// PodCIDR is 10.244.<index>.0/24; Gateway (the bridge) is its .1.
	PodCIDR netip.Prefix
	Gateway netip.Addr

	network *Network
	mu      sync.Mutex
	pods    int
}

// Pod is a pod namespace with eth0 on its node's bridge.
type Pod struct {
	Namespace
	// PodName is the name given to AddPod.
	PodName string
	IP      netip.Addr
	Node    *Node
	// HostVeth is the node-side end of the pod's veth pair.
	HostVeth string
}

// Skip skips t unless the harness can run: root and the ip command.
func Skip(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netnstest: needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("netnstest: needs the ip command (iproute2)")
	}
}

// New creates an empty network (the underlay switch) for t. It skips t when the harness cannot run.
func New(t testing.TB) *Network {
	t.Helper()
	Skip(t)
	sweepStale()
	b := make([]byte, 3)
	rand.Read(b)
	n := &Network{t: t, id: fmt.Sprintf("%s%d-%s", prefix, os.Getpid(), hex.EncodeToString(b))}
	n.Namespace = n.newNamespace("sw")
	n.must(n.links(n.Handle, func(h *netlink.Handle) error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
		if err := h.LinkAdd(br); err != nil {
			return fmt.Errorf("adding bridge br0: %w", err)
		}
		if err := addAddr(h, br, "172.18.0.1/16"); err != nil {
			return err
		}
		return up(h, "lo", "br0")
	}))
	return n
}

// Nodes lists the nodes added so far.
func (n *Network) Nodes() []*Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Node(nil), n.nodes...)
}

// AddNode creates a node namespace, attaches it to the underlay and routes pod CIDRs between nodes.
func (n *Network) AddNode(name string) *Node {
	n.t.Helper()
	n.mu.Lock()
	idx := len(n.nodes)
	n.mu.Unlock()
	node := &Node{
		Index:   idx,
		IP:      netip.AddrFrom4([4]byte{172, 18, 0, byte(idx + 2)}),
		PodCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(idx), 0}), 24),
		Gateway: netip.AddrFrom4([4]byte{10, 244, byte(idx), 1}),
		network: n,
	}
	node.Namespace = n.newNamespace("n" + strconv.Itoa(idx) + "-" + name)
	uplink := "vn" + strconv.Itoa(idx)
	n.must(n.links(n.Handle, func(h *netlink.Handle) error {
		br, err := h.LinkByName("br0")
		if err != nil {
			return fmt.Errorf("finding br0: %w", err)
		}
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: uplink, MasterIndex: br.Attrs().Index},
			PeerName:      "eth0",
			PeerNamespace: netlink.NsFd(node.Handle),
		}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("adding uplink for node %s: %w", name, err)
		}
		return up(h, uplink)
	}))
	n.must(n.links(node.Handle, func(h *netlink.Handle) error {
		eth0, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := addAddr(h, eth0, node.IP.String()+"/16"); err != nil {
			return err
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cni0"}}
		if err := h.LinkAdd(br); err != nil {
			return fmt.Errorf("adding bridge cni0: %w", err)
		}
		if err := addAddr(h, br, node.Gateway.String()+"/24"); err != nil {
			return err
		}
		return up(h, "lo", "eth0", "cni0")
	}))
	n.must(node.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}))
	n.mu.Lock()
	others := append([]*Node(nil), n.nodes...)
	n.nodes = append(n.nodes, node)
	n.mu.Unlock()
	for _, o := range others {
		n.must(route(o, node.PodCIDR, node.IP))
		n.must(route(node, o.PodCIDR, o.IP))
	}
	return node
}

// AddPod creates a pod namespace on the node with the next free IP of its CIDR.
func (node *Node) AddPod(name string) *Pod {
	n := node.network
	n.t.Helper()
	node.mu.Lock()
	k := node.pods
	node.pods++
	node.mu.Unlock()
	if k > 250 {
		n.t.Fatalf("netnstest: node %s is full", node.Name)
	}
	gw := node.Gateway.As4()
	pod := &Pod{
		PodName:  name,
		IP:       netip.AddrFrom4([4]byte{gw[0], gw[1], gw[2], byte(k + 2)}),
		Node:     node,
		HostVeth: "vp" + strconv.Itoa(k),
	}
	pod.Namespace = n.newNamespace(fmt.Sprintf("n%d-p%d-%s", node.Index, k, name))
	n.must(n.links(node.Handle, func(h *netlink.Handle) error {
		br, err := h.LinkByName("cni0")
		if err != nil {
			return fmt.Errorf("finding cni0: %w", err)
		}
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: pod.HostVeth, MasterIndex: br.Attrs().Index},
			PeerName:      "eth0",
			PeerNamespace: netlink.NsFd(pod.Handle),
		}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("adding veth for pod %s: %w", name, err)
		}
		return up(h, pod.HostVeth)
	}))
	n.must(n.links(pod.Handle, func(h *netlink.Handle) error {
		eth0, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := addAddr(h, eth0, pod.IP.String()+"/24"); err != nil {
			return err
		}
		if err := up(h, "lo", "eth0"); err != nil {
			return err
		}
		gwIP := net.IP(gw[:])
		if err := h.RouteAdd(&netlink.Route{Gw: gwIP, LinkIndex: eth0.Attrs().Index}); err != nil {
			return fmt.Errorf("adding default route via %s: %w", gwIP, err)
		}
		return nil
	}))
	return pod
}

// Addr is "IP:port" of the pod.
func (p *Pod) Addr(port int) string { return netip.AddrPortFrom(p.IP, uint16(port)).String() }

func (n *Network) must(err error) {
	n.t.Helper()
	if err != nil {
		n.t.Fatalf("netnstest: %v", err)
	}
}

// newNamespace creates a named namespace and registers its removal.
func (n *Network) newNamespace(role string) Namespace {
	n.t.Helper()
	name := n.id + "-" + role
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		n.t.Fatalf("netnstest: ip netns add %s: %v: %s", name, err, out)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		exec.Command("ip", "netns", "del", name).Run()
		n.t.Fatalf("netnstest: opening namespace %s: %v", name, err)
	}
	n.t.Cleanup(func() {
		h.Close()
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			n.t.Errorf("netnstest: ip netns del %s: %v: %s", name, err, out)
		}
	})
	return Namespace{Name: name, Handle: h}
}

func (n *Network) links(ns netns.NsHandle, fn func(*netlink.Handle) error) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("opening netlink in %s: %w", ns, err)
	}
	defer h.Close()
	return fn(h)
}

func route(from *Node, to netip.Prefix, via netip.Addr) error {
	return from.network.links(from.Handle, func(h *netlink.Handle) error {
		dst := &net.IPNet{IP: to.Addr().AsSlice(), Mask: net.CIDRMask(to.Bits(), 32)}
		if err := h.RouteAdd(&netlink.Route{Dst: dst, Gw: via.AsSlice()}); err != nil {
			return fmt.Errorf("node %s: route %s via %s: %w", from.Name, to, via, err)
		}
		return nil
	})
}

func addAddr(h *netlink.Handle, l netlink.Link, cidr string) error {
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if err := h.AddrAdd(l, a); err != nil {
		return fmt.Errorf("adding %s to %s: %w", cidr, l.Attrs().Name, err)
	}
	return nil
}

func up(h *netlink.Handle, names ...string) error {
	for _, name := range names {
		l, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("finding %s: %w", name, err)
		}
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("setting %s up: %w", name, err)
		}
	}
	return nil
}

// sweepStale removes namespaces left by test processes that died before their cleanup ran.
func sweepStale() {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || err == syscall.EPERM {
			continue // still running
		}
		exec.Command("ip", "netns", "del", name).Run()
	}
}
