// Package capture redirects a pod's TCP traffic to ztunnel from inside the pod's own network namespace, as
// current Istio ambient does (in-pod redirection): netfilter rules in the pod netns send outbound TCP to
// ztunnel's 15001 and inbound plaintext TCP to 15006, leave 15008 (HBONE) alone, and let the proxy's own
// packets (mark 0x539, or uid 1337) through. The rules are written once, in iptables syntax (Rules), and
// installed either as nftables tables over netlink (the default; Tables shows them, no binary needed) or
// with iptables-restore (Config.Backend). ztunnel's listeners for the pod are opened inside the pod netns
// (see Do, Listen, OpenPodListeners) and served from the ztunnel process. docs/dataplane.md has the why.
package capture

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/meshlab/meshlab/dataplane/nft"
)

// Config names the ports, marks and routing table of the capture rules. The defaults are Istio's.
type Config struct {
	// OutboundPort receives the pod's outbound TCP (REDIRECT in nat OUTPUT): 15001.
	OutboundPort int
	// InboundPlaintextPort receives inbound TCP not addressed to HBONE (REDIRECT in nat PREROUTING): 15006.
	InboundPlaintextPort int
	// HBONEPort is left alone so that tunnels reach ztunnel's HBONE listener: 15008.
	HBONEPort int
	// ProxyMark is set by ztunnel on its own sockets (SO_MARK) and exempts them from capture: 0x539 (1337).
	ProxyMark int
	// ProxyUID is also exempt from outbound capture: 1337.
	ProxyUID int
	// ConnMark tags connections ztunnel delivers to the application with a spoofed source, so that the
	// application's replies are routed back to ztunnel through RouteTable: 0x111.
	ConnMark int
	// RouteTable holds `local 0.0.0.0/0 dev lo` for ConnMark-ed replies: 100.
	RouteTable int
	// Backend programs the rules: BackendNFT ("nft-native", or "": nf_tables over netlink, no binary),
	// BackendIPTables ("iptables": iptables-restore of the installed kind), BackendIPTablesNFT or
	// BackendIPTablesLegacy. "nft" and "legacy", the names of the iptables kinds, are still understood.
	Backend string
}

// DefaultConfig returns Istio's ports and marks.
func DefaultConfig() Config {
	return Config{
		OutboundPort: 15001, InboundPlaintextPort: 15006, HBONEPort: 15008,
		ProxyMark: 0x539, ProxyUID: 1337, ConnMark: 0x111, RouteTable: 100,
	}
}

const (
	chainPrerouting = "ISTIO_PRERT"
	chainOutput     = "ISTIO_OUTPUT"
	markMask        = 0xfff
	rulePriority    = 32764
)

// jumps are the rules hooking our chains into the built-in ones, per table.
var jumps = []struct{ table, chain, target string }{
	{"mangle", "PREROUTING", chainPrerouting},
	{"mangle", "OUTPUT", chainOutput},
	{"nat", "PREROUTING", chainPrerouting},
	{"nat", "OUTPUT", chainOutput},
}

// Rules renders the contents of our chains as iptables-restore input (without the jumps into them).
func Rules(cfg Config) string {
	mark := fmt.Sprintf("0x%x/0x%x", cfg.ProxyMark, markMask)
	conn := fmt.Sprintf("0x%x/0x%x", cfg.ConnMark, markMask)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("*mangle")
	w(":%s - [0:0]", chainPrerouting)
	w(":%s - [0:0]", chainOutput)
	// ztunnel's delivery to the app (marked socket, looped back through lo) tags the connection...
	w("-A %s -m mark --mark %s -j CONNMARK --set-xmark %s", chainPrerouting, mark, conn)
	// ...so that the app's replies carry the mark that routes them to ztunnel's transparent socket.
	w("-A %s -m connmark --mark %s -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff", chainOutput, conn)
	w("COMMIT")
	w("*nat")
	w(":%s - [0:0]", chainPrerouting)
	w(":%s - [0:0]", chainOutput)
	w("-A %s ! -d 127.0.0.1/32 -p tcp ! --dport %d -m mark ! --mark %s -j REDIRECT --to-ports %d",
		chainPrerouting, cfg.HBONEPort, mark, cfg.InboundPlaintextPort)
	w("-A %s -p tcp -m mark --mark %s -j ACCEPT", chainOutput, conn)
	if cfg.ProxyUID > 0 {
		w("-A %s -m owner --uid-owner %d -j RETURN", chainOutput, cfg.ProxyUID)
	}
	w("-A %s ! -d 127.0.0.1/32 -o lo -j ACCEPT", chainOutput)
	w("-A %s ! -d 127.0.0.1/32 -p tcp -m mark ! --mark %s -j REDIRECT --to-ports %d",
		chainOutput, mark, cfg.OutboundPort)
	w("COMMIT")
	return b.String()
}

// Install sets up capture in ns with cfg.Backend: the rules (replaced wholesale, so running it again
// converges) and the policy route for replies. Safe to repeat.
func Install(ns netns.NsHandle, cfg Config) error {
	cfg = withDefaults(cfg)
	if native(cfg) {
		tables, err := Tables(cfg)
		if err != nil {
			return err
		}
		if err := nft.Replace(ns, tables...); err != nil {
			return err
		}
		return Do(ns, func() error { return addPolicyRoute(cfg) })
	}
	return installIPTables(ns, cfg)
}

// Remove undoes Install in ns (with the same backend); removing what is not there is not an error.
func Remove(ns netns.NsHandle, cfg Config) error {
	cfg = withDefaults(cfg)
	if native(cfg) {
		if err := nft.Delete(ns, tableRefs()...); err != nil {
			return err
		}
		return Do(ns, func() error { return delPolicyRoute(cfg) })
	}
	return removeIPTables(ns, cfg)
}

// Installed reports whether ns has capture installed by cfg.Backend.
func Installed(ns netns.NsHandle, cfg Config) (bool, error) {
	cfg = withDefaults(cfg)
	if native(cfg) {
		t, err := nft.List(ns, nft.IPv4, TablePrefix+"-nat")
		return t != nil && t.Chain(string(nft.Output)) != nil, err
	}
	return installedIPTables(ns, cfg)
}

// Save returns the capture rules ns holds, for diagnostics and tests: meshlab's nftables tables as the
// kernel has them (nft backend) or iptables-save output (iptables backends).
func Save(ns netns.NsHandle, cfg Config) (string, error) {
	cfg = withDefaults(cfg)
	if !native(cfg) {
		return saveIPTables(ns, cfg)
	}
	var parts []string
	for _, ref := range tableRefs() {
		t, err := nft.List(ns, ref.Family, ref.Name)
		if err != nil {
			return "", err
		}
		if t != nil {
			parts = append(parts, t.String())
		}
	}
	return strings.Join(parts, "\n"), nil
}

func withDefaults(cfg Config) Config {
	d := DefaultConfig()
	if cfg.OutboundPort == 0 {
		cfg.OutboundPort = d.OutboundPort
	}
	if cfg.InboundPlaintextPort == 0 {
		cfg.InboundPlaintextPort = d.InboundPlaintextPort
	}
	if cfg.HBONEPort == 0 {
		cfg.HBONEPort = d.HBONEPort
	}
	if cfg.ProxyMark == 0 {
		cfg.ProxyMark = d.ProxyMark
	}
	if cfg.ConnMark == 0 {
		cfg.ConnMark = d.ConnMark
	}
	if cfg.RouteTable == 0 {
		cfg.RouteTable = d.RouteTable
	}
	return cfg
}

func policyRule(cfg Config) *netlink.Rule {
	r := netlink.NewRule()
	r.Family = unix.AF_INET
	r.Mark = uint32(cfg.ConnMark)
	mask := uint32(markMask)
	r.Mask = &mask
	r.Table = cfg.RouteTable
	r.Priority = rulePriority
	return r
}

func policyRoute(cfg Config) (*netlink.Route, error) {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("finding lo: %w", err)
	}
	return &netlink.Route{
		Table: cfg.RouteTable, Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST,
		Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, LinkIndex: lo.Attrs().Index,
	}, nil
}

// addPolicyRoute runs inside the pod netns (netlink's package-level functions use the thread's namespace).
func addPolicyRoute(cfg Config) error {
	if err := netlink.RuleAdd(policyRule(cfg)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("adding fwmark rule for table %d: %w", cfg.RouteTable, err)
	}
	rt, err := policyRoute(cfg)
	if err != nil {
		return err
	}
	if err := netlink.RouteReplace(rt); err != nil {
		return fmt.Errorf("adding local route in table %d: %w", cfg.RouteTable, err)
	}
	return nil
}

func delPolicyRoute(cfg Config) error {
	for {
		err := netlink.RuleDel(policyRule(cfg))
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
				break
			}
			return fmt.Errorf("deleting fwmark rule: %w", err)
		}
	}
	rt, err := policyRoute(cfg)
	if err != nil {
		return err
	}
	if err := netlink.RouteDel(rt); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("deleting local route in table %d: %w", cfg.RouteTable, err)
	}
	return nil
}
