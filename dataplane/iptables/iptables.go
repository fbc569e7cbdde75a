// Package iptables is the sidecar's traffic capture, in the shape of Istio's istio-iptables (the init
// container of an injected pod): from its flags (-p -z -u -g -m -i -x -b -d -o) it renders Istio's chains
// (ISTIO_INBOUND, ISTIO_REDIRECT, ISTIO_IN_REDIRECT, ISTIO_OUTPUT, and for TPROXY ISTIO_DIVERT and
// ISTIO_TPROXY) and applies them to the current network namespace: by default as nftables tables over
// netlink (meshlab-proxy-nat, meshlab-proxy-mangle; see Ruleset.NFT), translated rule by rule from the
// iptables rules, or with iptables-restore when the iptables backend is asked for.
//
// It differs from dataplane/capture, which captures for ztunnel (ambient, in-pod): there the proxy is exempt
// by a socket mark and runs outside the pod; here the proxy is a container of the pod, exempt by its uid and
// gid (1337), and inbound traffic to the proxy's own ports is excluded by port.
//
// IPv4 only (meshlab's kind cluster is single-stack). Outbound capture in TPROXY mode is a REDIRECT in nat,
// as in Istio; only inbound uses TPROXY (mangle) plus a policy route for the mark.
package iptables

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Mode is how inbound traffic is captured.
type Mode string

const (
	Redirect Mode = "REDIRECT" // nat REDIRECT: the proxy reads the original destination with SO_ORIGINAL_DST
	TProxy   Mode = "TPROXY"   // mangle TPROXY: the proxy's inbound socket is transparent and sees it directly
)

// Config mirrors istio-iptables' flags. Lists are comma-separated; "*" means all.
type Config struct {
	ProxyPort          int      // -p: outbound capture port (15001)
	InboundCapturePort int      // -z: inbound capture port (15006)
	ProxyUIDs          []string // -u: uids whose traffic is never captured (1337)
	ProxyGIDs          []string // -g: gids likewise (default: the uids)
	Mode               Mode     // -m
	// OutboundIPRangesInclude (-i) and OutboundIPRangesExclude (-x): CIDRs, "*" or "".
	OutboundIPRangesInclude string
	OutboundIPRangesExclude string
	// InboundPortsInclude (-b): ports, "*" or "" (no inbound capture); InboundPortsExclude (-d) applies to "*".
	InboundPortsInclude string
	InboundPortsExclude string
	// OutboundPortsExclude (-o): destination ports never captured outbound.
	OutboundPortsExclude string

	// InboundTunnelPort (15008, HBONE) is never captured inbound.
	InboundTunnelPort int
	// TProxyMark (1337) marks TPROXYed packets; TProxyRouteTable (133) routes them to lo.
	TProxyMark       int
	TProxyRouteTable int
}

// DefaultConfig returns istio-iptables' defaults: the ports and uid, REDIRECT, and nothing captured until
// -i and -b say what.
func DefaultConfig() Config {
	return Config{
		ProxyPort: 15001, InboundCapturePort: 15006, ProxyUIDs: []string{"1337"}, Mode: Redirect,
		InboundTunnelPort: 15008, TProxyMark: 1337, TProxyRouteTable: 133,
	}
}

// Chain names (Istio's).
const (
	ChainInbound    = "ISTIO_INBOUND"
	ChainRedirect   = "ISTIO_REDIRECT"
	ChainInRedirect = "ISTIO_IN_REDIRECT"
	ChainOutput     = "ISTIO_OUTPUT"
	ChainDivert     = "ISTIO_DIVERT"
	ChainTProxy     = "ISTIO_TPROXY"

	// InboundPassthroughSource is the address a sidecar uses towards its own app; that traffic is left alone.
	InboundPassthroughSource = "127.0.0.6/32"
	localhost                = "127.0.0.1/32"
)

var builtinChains = []string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}

// Rule is one rule: "-A Chain Spec" in Table.
type Rule struct {
	Table, Chain, Spec string
}

// Builtin reports whether the rule goes into one of the kernel's chains (and so must be added only once)
// rather than into one of ours (which are rewritten whole).
func (r Rule) Builtin() bool { return slices.Contains(builtinChains, r.Chain) }

// Chain is one of our chains.
type Chain struct{ Table, Name string }

// Ruleset is everything Apply installs.
type Ruleset struct {
	Chains []Chain
	Rules  []Rule
	// PolicyRoute, for TPROXY: packets marked Mark are looked up in Table, which routes everything to lo.
	PolicyRoute *PolicyRoute
}

// PolicyRoute is `ip rule add fwmark Mark lookup Table` plus `ip route add local 0.0.0.0/0 dev lo table Table`.
type PolicyRoute struct{ Mark, Table int }

// Tables lists the tables the ruleset touches, mangle before nat (Istio's order).
func (rs *Ruleset) Tables() []string {
	var out []string
	for _, t := range []string{"mangle", "nat"} {
		if slices.ContainsFunc(rs.Chains, func(c Chain) bool { return c.Table == t }) ||
			slices.ContainsFunc(rs.Rules, func(r Rule) bool { return r.Table == t }) {
			out = append(out, t)
		}
	}
	return out
}

// String renders the ruleset like istio-iptables' dry run: per table, the chains it creates (-N) and the
// rules in the order they are added (-A), then the policy route.
func (rs *Ruleset) String() string {
	var b strings.Builder
	for _, t := range rs.Tables() {
		fmt.Fprintf(&b, "* %s\n", t)
		for _, c := range rs.Chains {
			if c.Table == t {
				fmt.Fprintf(&b, "-N %s\n", c.Name)
			}
		}
		for _, r := range rs.Rules {
			if r.Table == t {
				fmt.Fprintf(&b, "-A %s %s\n", r.Chain, r.Spec)
			}
		}
		b.WriteString("COMMIT\n")
	}
	if pr := rs.PolicyRoute; pr != nil {
		fmt.Fprintf(&b, "ip -4 rule add fwmark %d lookup %d\n", pr.Mark, pr.Table)
		fmt.Fprintf(&b, "ip -4 route add local 0.0.0.0/0 dev lo table %d\n", pr.Table)
	}
	return b.String()
}

// Build validates cfg and renders its rules.
func Build(cfg Config) (*Ruleset, error) {
	if cfg.Mode != Redirect && cfg.Mode != TProxy {
		return nil, fmt.Errorf("unknown interception mode %q (want REDIRECT or TPROXY)", cfg.Mode)
	}
	for _, p := range []struct {
		flag string
		port int
	}{{"-p", cfg.ProxyPort}, {"-z", cfg.InboundCapturePort}, {"tunnel port", cfg.InboundTunnelPort}} {
		if p.port < 1 || p.port > 65535 {
			return nil, fmt.Errorf("%s: port %d out of range", p.flag, p.port)
		}
	}
	uids, err := ids("-u", cfg.ProxyUIDs)
	if err != nil {
		return nil, err
	}
	gids, err := ids("-g", cfg.ProxyGIDs)
	if err != nil {
		return nil, err
	}
	if len(cfg.ProxyGIDs) == 0 {
		gids = uids
	}
	inAll, inPorts, err := ports("-b", cfg.InboundPortsInclude, true)
	if err != nil {
		return nil, err
	}
	_, inExclude, err := ports("-d", cfg.InboundPortsExclude, false)
	if err != nil {
		return nil, err
	}
	_, outExclude, err := ports("-o", cfg.OutboundPortsExclude, false)
	if err != nil {
		return nil, err
	}
	outAll, outInclude, err := cidrs("-i", cfg.OutboundIPRangesInclude, true)
	if err != nil {
		return nil, err
	}
	_, outExcludeRanges, err := cidrs("-x", cfg.OutboundIPRangesExclude, false)
	if err != nil {
		return nil, err
	}

	rs := &Ruleset{}
	add := func(table, chain, format string, args ...any) {
		rs.Rules = append(rs.Rules, Rule{table, chain, fmt.Sprintf(format, args...)})
	}
	if cfg.Mode == TProxy {
		rs.Chains = append(rs.Chains, Chain{"mangle", ChainDivert}, Chain{"mangle", ChainTProxy}, Chain{"mangle", ChainInbound})
	}
	rs.Chains = append(rs.Chains, Chain{"nat", ChainInbound}, Chain{"nat", ChainRedirect}, Chain{"nat", ChainInRedirect}, Chain{"nat", ChainOutput})

	// Building blocks.
	add("nat", ChainInbound, "-p tcp --dport %d -j RETURN", cfg.InboundTunnelPort)
	add("nat", ChainRedirect, "-p tcp -j REDIRECT --to-ports %d", cfg.ProxyPort)
	add("nat", ChainInRedirect, "-p tcp -j REDIRECT --to-ports %d", cfg.InboundCapturePort)

	// Inbound.
	inbound := inAll || len(inPorts) > 0
	switch {
	case !inbound:
	case cfg.Mode == Redirect:
		add("nat", "PREROUTING", "-p tcp -j %s", ChainInbound)
		if inAll {
			for _, p := range inExclude {
				add("nat", ChainInbound, "-p tcp --dport %d -j RETURN", p)
			}
			add("nat", ChainInbound, "-p tcp -j %s", ChainInRedirect)
		} else {
			for _, p := range inPorts {
				add("nat", ChainInbound, "-p tcp --dport %d -j %s", p, ChainInRedirect)
			}
		}
	default: // TPROXY
		mark := cfg.TProxyMark
		add("mangle", ChainDivert, "-j MARK --set-mark %d", mark)
		add("mangle", ChainDivert, "-j ACCEPT")
		add("mangle", ChainTProxy, "! -d %s -p tcp -j TPROXY --tproxy-mark %d/0xffffffff --on-port %d", localhost, mark, cfg.InboundCapturePort)
		add("mangle", "PREROUTING", "-p tcp -j %s", ChainInbound)
		// Already diverted, the sidecar's own passthrough to the app, and local traffic the proxy did not
		// mark (below) are not inbound captures.
		add("mangle", ChainInbound, "-p tcp -m mark --mark %d -j RETURN", mark)
		add("mangle", ChainInbound, "-p tcp -s %s -i lo -j RETURN", InboundPassthroughSource)
		add("mangle", ChainInbound, "-p tcp -i lo -m mark ! --mark %d -j RETURN", mark+1)
		add("mangle", ChainInbound, "-p tcp --dport %d -j RETURN", cfg.InboundTunnelPort)
		if inAll {
			for _, p := range inExclude {
				add("mangle", ChainInbound, "-p tcp --dport %d -j RETURN", p)
			}
			add("mangle", ChainInbound, "-p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j %s", ChainDivert)
			add("mangle", ChainInbound, "-p tcp -j %s", ChainTProxy)
		} else {
			for _, p := range inPorts {
				add("mangle", ChainInbound, "-p tcp --dport %d -m conntrack --ctstate RELATED,ESTABLISHED -j %s", p, ChainDivert)
				add("mangle", ChainInbound, "-p tcp --dport %d -j %s", p, ChainTProxy)
			}
		}
		add("mangle", "PREROUTING", "-p tcp -m mark --mark %d -j CONNMARK --save-mark", mark)
		add("mangle", "OUTPUT", "-p tcp -o lo -m mark --mark %d -j RETURN", mark)
		for _, u := range uids {
			add("mangle", "OUTPUT", "! -d %s -p tcp -o lo -m owner --uid-owner %s -j MARK --set-mark %d", localhost, u, mark+1)
		}
		for _, g := range gids {
			add("mangle", "OUTPUT", "! -d %s -p tcp -o lo -m owner --gid-owner %s -j MARK --set-mark %d", localhost, g, mark+1)
		}
		add("mangle", "OUTPUT", "-p tcp -m connmark --mark %d -j CONNMARK --restore-mark", mark)
		rs.PolicyRoute = &PolicyRoute{Mark: mark, Table: cfg.TProxyRouteTable}
	}

	// Outbound.
	add("nat", "OUTPUT", "-p tcp -j %s", ChainOutput)
	switch len(outExclude) {
	case 0:
	case 1:
		add("nat", ChainOutput, "-p tcp --dport %d -j RETURN", outExclude[0])
	default:
		add("nat", ChainOutput, "-p tcp -m multiport --dports %s -j RETURN", joinInts(outExclude))
	}
	add("nat", ChainOutput, "-o lo -s %s -j RETURN", InboundPassthroughSource)
	// The proxy's own traffic is not captured, except that the proxy calling its pod's own IP (not
	// localhost) is inbound traffic and goes to the inbound port, as if it came from outside.
	for _, owner := range []struct {
		match string
		ids   []string
	}{{"--uid-owner", uids}, {"--gid-owner", gids}} {
		for _, id := range owner.ids {
			add("nat", ChainOutput, "-o lo ! -d %s -p tcp ! --dport %d -m owner %s %s -j %s", localhost, cfg.InboundTunnelPort, owner.match, id, ChainInRedirect)
			add("nat", ChainOutput, "-o lo -m owner ! %s %s -j RETURN", owner.match, id)
			add("nat", ChainOutput, "-m owner %s %s -j RETURN", owner.match, id)
		}
	}
	add("nat", ChainOutput, "-d %s -j RETURN", localhost)
	for _, p := range outExcludeRanges {
		add("nat", ChainOutput, "-d %s -j RETURN", p)
	}
	if outAll {
		add("nat", ChainOutput, "-j %s", ChainRedirect)
	} else {
		for _, p := range outInclude {
			add("nat", ChainOutput, "-d %s -j %s", p, ChainRedirect)
		}
	}
	return rs, nil
}

func ids(flag string, in []string) ([]string, error) {
	var out []string
	for _, s := range in {
		for _, f := range strings.Split(s, ",") {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			if _, err := strconv.ParseUint(f, 10, 32); err != nil {
				return nil, fmt.Errorf("%s: %q is not a numeric id", flag, f)
			}
			out = append(out, f)
		}
	}
	return out, nil
}

// listItems splits the value of a list flag: "*" (where wildcard allows it) means all, else
// comma-separated items, trimmed, blanks skipped.
func listItems(flag, s string, wildcard bool) (all bool, items []string, err error) {
	s = strings.TrimSpace(s)
	if s == "*" {
		if !wildcard {
			return false, nil, fmt.Errorf("%s: \"*\" is not allowed here", flag)
		}
		return true, nil, nil
	}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			items = append(items, f)
		}
	}
	return false, items, nil
}

// ports parses a comma-separated port list; "*" (where allowed) means all.
func ports(flag, s string, wildcard bool) (all bool, out []int, err error) {
	all, items, err := listItems(flag, s, wildcard)
	if all || err != nil {
		return all, nil, err
	}
	for _, f := range items {
		p, err := strconv.Atoi(f)
		if err != nil || p < 1 || p > 65535 {
			return false, nil, fmt.Errorf("%s: %q is not a port", flag, f)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return false, out, nil
}

// cidrs parses a comma-separated list of IPv4 CIDRs; "*" (where allowed) means all.
func cidrs(flag, s string, wildcard bool) (all bool, out []netip.Prefix, err error) {
	all, items, err := listItems(flag, s, wildcard)
	if all || err != nil {
		return all, nil, err
	}
	for _, f := range items {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return false, nil, fmt.Errorf("%s: %q is not a CIDR", flag, f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if !p.Addr().Is4() {
			return false, nil, fmt.Errorf("%s: %s: only IPv4 ranges are supported", flag, f)
		}
		out = append(out, p.Masked())
	}
	return false, out, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
