package iptables

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Backend is how Apply installs the rules: nf_tables over netlink (Name "nft-native", no binary) or a set
// of iptables binaries of one kind (Name "nft" or "legacy").
type Backend struct {
	Name                 string // "nft-native", or the iptables kind: "nft" or "legacy"
	Restore, Save, Check string // iptables-restore, iptables-save and iptables (for -C); empty for nft-native
}

// Backend names accepted by DetectBackend.
const (
	BackendNFT            = "nft-native" // the default: nf_tables over netlink (dataplane/nft)
	BackendIPTables       = "iptables"   // iptables-restore of the installed kind
	BackendIPTablesNFT    = "iptables-nft"
	BackendIPTablesLegacy = "iptables-legacy"
)

// Backends lists the names DetectBackend accepts ("nft" and "legacy" are the iptables kinds' old names).
var Backends = []string{BackendNFT, BackendIPTables, BackendIPTablesNFT, BackendIPTablesLegacy, "nft", "legacy"}

// Native reports whether b programs nf_tables directly.
func (b Backend) Native() bool { return b.Name == BackendNFT }

// DetectBackend picks the backend: want is "" or "nft-native" (nf_tables over netlink; always available
// on kernels with nf_tables, and what meshlab's image, which has no iptables, uses), "iptables" to detect
// the iptables binaries, or "iptables-nft"/"nft" or "iptables-legacy"/"legacy" for one kind. Detection
// prefers the kind that already has rules in this network namespace (so that we join whoever was there),
// else nft, which distributions are moving to; a system with only the generic names is asked which it is.
func DetectBackend(want string) (Backend, error) {
	switch want {
	case "", BackendNFT:
		return Backend{Name: BackendNFT}, nil
	case BackendIPTables:
		want = ""
	case BackendIPTablesNFT:
		want = "nft"
	case BackendIPTablesLegacy:
		want = "legacy"
	}
	known := map[string]Backend{
		"nft":    {"nft", "iptables-nft-restore", "iptables-nft-save", "iptables-nft"},
		"legacy": {"legacy", "iptables-legacy-restore", "iptables-legacy-save", "iptables-legacy"},
	}
	if want != "" {
		if _, ok := known[want]; !ok {
			return Backend{}, fmt.Errorf("unknown capture backend %q (want one of %s)", want, strings.Join(Backends, ", "))
		}
	}
	var avail []Backend
	for _, name := range []string{"nft", "legacy"} {
		b := known[name]
		if want != "" && want != name {
			continue
		}
		if havePrograms(b) {
			avail = append(avail, b)
		}
	}
	switch {
	case len(avail) == 1:
		return avail[0], nil
	case len(avail) == 2:
		for _, b := range avail {
			if out, err := exec.Command(b.Save).Output(); err == nil && bytes.Contains(out, []byte("\n-A ")) {
				return b, nil
			}
		}
		return avail[0], nil
	}
	generic := Backend{Restore: "iptables-restore", Save: "iptables-save", Check: "iptables"}
	out, err := exec.Command("iptables", "--version").Output()
	if err != nil {
		return Backend{}, fmt.Errorf("no iptables found (the image or host needs iptables-nft or iptables-legacy, or use the nft-native backend): %w", err)
	}
	generic.Name = "legacy"
	if bytes.Contains(out, []byte("nf_tables")) {
		generic.Name = "nft"
	}
	if want != "" && want != generic.Name {
		return Backend{}, fmt.Errorf("iptables backend %s requested, only %s is available", want, generic.Name)
	}
	return generic, nil
}

func havePrograms(b Backend) bool {
	for _, p := range []string{b.Restore, b.Save, b.Check} {
		if _, err := exec.LookPath(p); err != nil {
			return false
		}
	}
	return true
}

// RestoreInput is what Apply feeds to iptables-restore --noflush: our chains declared (which creates them,
// or empties them if they exist) with their rules. Rules for the kernel's chains are not in it; Apply adds
// those one by one, each only if missing.
func (rs *Ruleset) RestoreInput() string {
	var b strings.Builder
	for _, t := range rs.Tables() {
		fmt.Fprintf(&b, "*%s\n", t)
		for _, c := range rs.Chains {
			if c.Table == t {
				fmt.Fprintf(&b, ":%s - [0:0]\n", c.Name)
			}
		}
		for _, r := range rs.Rules {
			if r.Table == t && !r.Builtin() {
				fmt.Fprintf(&b, "-A %s %s\n", r.Chain, r.Spec)
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// Apply installs rs in the current network namespace (an init container's: the pod's) with b. Running it
// again converges: with nft-native, meshlab's tables are replaced whole in one batch; with iptables, our
// chains are rewritten whole and rules in the kernel's chains are added only if `iptables -C` does not
// find them. The policy route (TPROXY) is added or replaced.
func Apply(rs *Ruleset, b Backend) error {
	if b.Native() {
		return applyNative(rs)
	}
	if err := Restore(b, rs.RestoreInput()); err != nil {
		return err
	}
	var missing strings.Builder
	for _, t := range rs.Tables() {
		var lines []string
		for _, r := range rs.Rules {
			if r.Table != t || !r.Builtin() {
				continue
			}
			args := append([]string{"--wait", "-t", r.Table, "-C", r.Chain}, strings.Fields(r.Spec)...)
			if err := exec.Command(b.Check, args...).Run(); err != nil {
				var exit *exec.ExitError
				if !errors.As(err, &exit) {
					return fmt.Errorf("running %s: %w", b.Check, err)
				}
				lines = append(lines, fmt.Sprintf("-A %s %s", r.Chain, r.Spec))
			}
		}
		if len(lines) > 0 {
			fmt.Fprintf(&missing, "*%s\n%s\nCOMMIT\n", t, strings.Join(lines, "\n"))
		}
	}
	if missing.Len() > 0 {
		if err := Restore(b, missing.String()); err != nil {
			return err
		}
	}
	if pr := rs.PolicyRoute; pr != nil {
		return addPolicyRoute(*pr)
	}
	return nil
}

// Restore feeds input to b's iptables-restore with --noflush: chains it declares are emptied and rewritten,
// everything else stays. (Not for nft-native, which has no iptables-restore.)
func Restore(b Backend, input string) error {
	_, err := run([]byte(input), b.Restore, "--noflush", "--wait")
	return err
}

// Save returns the capture rules of the current network namespace: meshlab's nftables tables as the
// kernel holds them (nft-native) or iptables-save output.
func Save(b Backend) (string, error) {
	if b.Native() {
		return saveNative()
	}
	return run(nil, b.Save)
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

func addPolicyRoute(pr PolicyRoute) error {
	rules, err := netlink.RuleList(unix.AF_INET)
	if err != nil {
		return fmt.Errorf("listing routing rules: %w", err)
	}
	// The kernel accepts duplicate rules, so look before adding.
	if !slices.ContainsFunc(rules, func(r netlink.Rule) bool { return r.Mark == uint32(pr.Mark) && r.Table == pr.Table }) {
		rule := netlink.NewRule()
		rule.Family = unix.AF_INET
		rule.Mark = uint32(pr.Mark)
		rule.Table = pr.Table
		if err := netlink.RuleAdd(rule); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("adding rule fwmark %d lookup %d: %w", pr.Mark, pr.Table, err)
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("finding lo: %w", err)
	}
	route := &netlink.Route{
		Table: pr.Table, Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST, LinkIndex: lo.Attrs().Index,
		Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)},
	}
	if err := netlink.RouteReplace(route); err != nil {
		return fmt.Errorf("adding local route to lo in table %d: %w", pr.Table, err)
	}
	return nil
}
