package agent

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Where containerd (1.6, with meshlab's CNI) keeps pod network namespaces on a kind node; ztunnel's
// DaemonSet mounts the directory with HostToContainer propagation so new ones appear.
const (
	DefaultNetnsDir     = "/var/run/netns"
	DefaultNetnsPattern = "cni-*"
)

// NetnsFinder finds a pod's network namespace by its IP: it opens each matching file in Dir and looks for
// the IP on the namespace's eth0. Hits are cached and re-checked on use, since IPs and files are reused.
type NetnsFinder struct {
	Dir     string // default /var/run/netns
	Pattern string // default cni-*
	// Interface carrying the pod IP (default eth0).
	Interface string

	mu    sync.Mutex
	cache map[netip.Addr]string // IP -> file
}

// Find returns an open handle to the namespace holding ip (the caller closes it) and its file.
func (f *NetnsFinder) Find(ip netip.Addr) (netns.NsHandle, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cache == nil {
		f.cache = map[netip.Addr]string{}
	}
	if path, ok := f.cache[ip]; ok {
		if h, ok := f.check(path, ip); ok {
			return h, path, nil
		}
		delete(f.cache, ip)
	}
	dir, pattern := f.Dir, f.Pattern
	if dir == "" {
		dir = DefaultNetnsDir
	}
	if pattern == "" {
		pattern = DefaultNetnsPattern
	}
	paths, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		return netns.None(), "", fmt.Errorf("listing %s: %w", dir, err)
	}
	for _, path := range paths {
		if h, ok := f.check(path, ip); ok {
			f.cache[ip] = path
			return h, path, nil
		}
	}
	return netns.None(), "", fmt.Errorf("no network namespace in %s/%s has %s on %s", dir, pattern, ip, f.iface())
}

// Forget drops the cached namespace of ip (its pod is gone).
func (f *NetnsFinder) Forget(ip netip.Addr) {
	f.mu.Lock()
	delete(f.cache, ip)
	f.mu.Unlock()
}

func (f *NetnsFinder) iface() string {
	if f.Interface == "" {
		return "eth0"
	}
	return f.Interface
}

// check opens path and reports whether ip is on its interface; the handle is returned open on a match.
func (f *NetnsFinder) check(path string, ip netip.Addr) (netns.NsHandle, bool) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), false // a namespace being torn down, or not a namespace at all
	}
	if hasAddr(h, f.iface(), ip) {
		return h, true
	}
	h.Close()
	return netns.None(), false
}

func hasAddr(h netns.NsHandle, iface string, ip netip.Addr) bool {
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return false
	}
	defer nl.Close()
	link, err := nl.LinkByName(iface)
	if err != nil {
		return false
	}
	addrs, err := nl.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
			return true
		}
	}
	return false
}
