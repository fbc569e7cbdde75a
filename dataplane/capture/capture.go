// Package capture redirects a pod's TCP traffic to ztunnel from inside the pod's own network namespace, as
// current Istio ambient does (in-pod redirection): iptables rules in the pod netns send outbound TCP to
// ztunnel's 15001 and inbound plaintext TCP to 15006, leave 15008 (HBONE) alone, and let the proxy's own
// packets (mark 0x539, or uid 1337) through. ztunnel's listeners for the pod are opened inside the pod netns
// (see Do, Listen, OpenPodListeners) and served from the ztunnel process. docs/dataplane.md has the why.
package capture

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
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
	// Backend is "nft", "legacy" or "" to detect (nft preferred).
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

// Install sets up capture in ns: our chains (replaced wholesale, so running it again converges), the jumps
// into them (added once), and the policy route for replies. Safe to repeat.
func Install(ns netns.NsHandle, cfg Config) error {
	cfg = withDefaults(cfg)
	bin, err := binaries(cfg.Backend)
	if err != nil {
		return err
	}
	return Do(ns, func() error {
		saved, err := run(nil, bin.save)
		if err != nil {
			return err
		}
		input := Rules(cfg)
		// Declaring a chain in iptables-restore --noflush empties it, so our chains are rewritten each time;
		// the jumps are appended only if missing.
		var extra strings.Builder
		for _, j := range jumps {
			if !hasJump(saved, j.table, j.chain, j.target) {
				fmt.Fprintf(&extra, "*%s\n-A %s -j %s\nCOMMIT\n", j.table, j.chain, j.target)
			}
		}
		if _, err := run([]byte(input+extra.String()), bin.restore, "--noflush", "--wait"); err != nil {
			return err
		}
		return addPolicyRoute(cfg)
	})
}

// Remove undoes Install in ns; removing what is not there is not an error.
func Remove(ns netns.NsHandle, cfg Config) error {
	cfg = withDefaults(cfg)
	bin, err := binaries(cfg.Backend)
	if err != nil {
		return err
	}
	return Do(ns, func() error {
		saved, err := run(nil, bin.save)
		if err != nil {
			return err
		}
		var in strings.Builder
		for _, table := range []string{"mangle", "nat"} {
			var lines []string
			for _, j := range jumps {
				if j.table == table && hasJump(saved, j.table, j.chain, j.target) {
					lines = append(lines, fmt.Sprintf("-D %s -j %s", j.chain, j.target))
				}
			}
			for _, c := range []string{chainPrerouting, chainOutput} {
				if hasChain(saved, table, c) {
					lines = append(lines, "-F "+c, "-X "+c)
				}
			}
			if len(lines) > 0 {
				fmt.Fprintf(&in, "*%s\n%s\nCOMMIT\n", table, strings.Join(lines, "\n"))
			}
		}
		if in.Len() > 0 {
			if _, err := run([]byte(in.String()), bin.restore, "--noflush", "--wait"); err != nil {
				return err
			}
		}
		return delPolicyRoute(cfg)
	})
}

// Installed reports whether ns has our chains hooked in.
func Installed(ns netns.NsHandle, cfg Config) (bool, error) {
	bin, err := binaries(withDefaults(cfg).Backend)
	if err != nil {
		return false, err
	}
	var ok bool
	err = Do(ns, func() error {
		saved, err := run(nil, bin.save)
		ok = hasJump(saved, "nat", "OUTPUT", chainOutput)
		return err
	})
	return ok, err
}

// Save returns iptables-save output of ns, for diagnostics and tests.
func Save(ns netns.NsHandle, cfg Config) (string, error) {
	bin, err := binaries(withDefaults(cfg).Backend)
	if err != nil {
		return "", err
	}
	var out string
	err = Do(ns, func() error {
		var err error
		out, err = run(nil, bin.save)
		return err
	})
	return out, err
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

type iptablesBinaries struct{ restore, save string }

// binaries picks iptables-nft-restore/-save (or the legacy pair). Each pod netns is fresh, so nothing else
// has chosen a backend there; nft is preferred because legacy iptables is being removed from distributions.
func binaries(backend string) (iptablesBinaries, error) {
	candidates := map[string]iptablesBinaries{
		"nft":    {"iptables-nft-restore", "iptables-nft-save"},
		"legacy": {"iptables-legacy-restore", "iptables-legacy-save"},
	}
	order := []string{"nft", "legacy"}
	if backend != "" {
		if _, ok := candidates[backend]; !ok {
			return iptablesBinaries{}, fmt.Errorf("unknown iptables backend %q (want nft or legacy)", backend)
		}
		order = []string{backend}
	}
	for _, b := range order {
		c := candidates[b]
		if _, err := exec.LookPath(c.restore); err == nil {
			return c, nil
		}
	}
	// A distribution may ship only the generic names; `iptables --version` says which backend they are.
	out, err := exec.Command("iptables", "--version").Output()
	if err != nil {
		return iptablesBinaries{}, fmt.Errorf("no iptables found: %w", err)
	}
	got := "legacy"
	if bytes.Contains(out, []byte("nf_tables")) {
		got = "nft"
	}
	if backend != "" && backend != got {
		return iptablesBinaries{}, fmt.Errorf("iptables backend %s requested, only %s available", backend, got)
	}
	return iptablesBinaries{"iptables-restore", "iptables-save"}, nil
}

// DetectBackend reports which backend Install will use: "nft" or "legacy".
func DetectBackend() (string, error) {
	b, err := binaries("")
	if err != nil {
		return "", err
	}
	if strings.Contains(b.restore, "legacy") {
		return "legacy", nil
	}
	if strings.Contains(b.restore, "nft") {
		return "nft", nil
	}
	out, _ := exec.Command("iptables", "--version").Output()
	if bytes.Contains(out, []byte("nf_tables")) {
		return "nft", nil
	}
	return "legacy", nil
}

func run(stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("running %s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// hasJump looks for "-A CHAIN -j TARGET" in the given table of iptables-save output.
func hasJump(saved, table, chain, target string) bool {
	want := fmt.Sprintf("-A %s -j %s", chain, target)
	for _, l := range tableLines(saved, table) {
		if l == want {
			return true
		}
	}
	return false
}

func hasChain(saved, table, chain string) bool {
	for _, l := range tableLines(saved, table) {
		if strings.HasPrefix(l, ":"+chain+" ") {
			return true
		}
	}
	return false
}

func tableLines(saved, table string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(saved, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "*"):
			in = l == "*"+table
		case l == "COMMIT":
			in = false
		case in:
			out = append(out, l)
		}
	}
	return out
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
