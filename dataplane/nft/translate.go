package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// IPTablesRule is one iptables rule: `-A Chain Spec` in Table (nat, mangle, filter or raw).
type IPTablesRule struct{ Table, Chain, Spec string }

// tableSpec is how an iptables table maps onto nf_tables: chain type per hook and priority.
type tableSpec struct {
	priority func(Hook) int
	chain    func(Hook) ChainType
}

var iptablesTables = map[string]tableSpec{
	"raw": {func(Hook) int { return PriorityRaw }, func(Hook) ChainType { return TypeFilter }},
	// mangle OUTPUT is a route chain: a mark set there re-routes the packet (policy routing by fwmark).
	"mangle": {func(Hook) int { return PriorityMangle }, func(h Hook) ChainType {
		if h == Output {
			return TypeRoute
		}
		return TypeFilter
	}},
	"nat": {func(h Hook) int {
		if h == Prerouting || h == Output {
			return PriorityDstNAT
		}
		return PrioritySrcNAT
	}, func(Hook) ChainType { return TypeNAT }},
	"filter": {func(Hook) int { return PriorityFilter }, func(Hook) ChainType { return TypeFilter }},
}

var builtinChains = map[string]Hook{
	"PREROUTING": Prerouting, "INPUT": Input, "FORWARD": Forward, "OUTPUT": Output, "POSTROUTING": Postrouting,
}

// FromIPTables translates iptables rules into one IPv4 table per iptables table, named prefix-<table>
// (meshlab-proxy-nat, meshlab-proxy-mangle), in the order the tables first appear. A built-in chain
// (PREROUTING, OUTPUT, ...) becomes a base chain named in lower case, hooked where iptables' is, with
// that table's priority (mangle -150 before nat -100); other chains keep their names, so a rule's
// `-j ISTIO_OUTPUT` becomes `jump ISTIO_OUTPUT`. Rules keep their order. A rule that cannot be
// translated is an error, never dropped.
func FromIPTables(prefix string, rules []IPTablesRule) ([]*Table, error) {
	var tables []*Table
	byTable := map[string]*Table{}
	chains := map[[2]string]*Chain{} // by iptables table and chain
	for _, r := range rules {
		spec, ok := iptablesTables[r.Table]
		if !ok {
			return nil, fmt.Errorf("-t %s: unsupported iptables table", r.Table)
		}
		if byTable[r.Table] == nil {
			byTable[r.Table] = &Table{Family: IPv4, Name: prefix + "-" + r.Table}
			tables = append(tables, byTable[r.Table])
		}
		if chains[[2]string{r.Table, r.Chain}] == nil {
			c := &Chain{Name: r.Chain}
			if h, ok := builtinChains[r.Chain]; ok {
				c = &Chain{Name: string(h), Type: spec.chain(h), Hook: h, Priority: spec.priority(h)}
			}
			chains[[2]string{r.Table, r.Chain}] = c
			byTable[r.Table].Chains = append(byTable[r.Table].Chains, c)
		}
	}
	for _, r := range rules {
		translated, err := TranslateSpec(r.Spec)
		if err != nil {
			return nil, fmt.Errorf("-t %s -A %s %s: %w", r.Table, r.Chain, r.Spec, err)
		}
		for _, tr := range translated {
			if len(tr) == 0 {
				continue
			}
			if v, ok := tr[len(tr)-1].(Verdict); ok && v.Chain != "" && chains[[2]string{r.Table, v.Chain}] == nil {
				return nil, fmt.Errorf("-t %s -A %s %s: unsupported target or unknown chain %s", r.Table, r.Chain, r.Spec, v.Chain)
			}
		}
		c := chains[[2]string{r.Table, r.Chain}]
		c.Rules = append(c.Rules, translated...)
	}
	// Base chains first, in hook order; then ours in order of first appearance.
	hookOrder := []Hook{Prerouting, Input, Forward, Output, Postrouting}
	for _, t := range tables {
		slices.SortStableFunc(t.Chains, func(a, b *Chain) int {
			ia, ib := slices.Index(hookOrder, a.Hook), slices.Index(hookOrder, b.Hook)
			if ia < 0 {
				ia = len(hookOrder)
			}
			if ib < 0 {
				ib = len(hookOrder)
			}
			return ia - ib
		})
	}
	return tables, nil
}

// ParseRestore reads the rules of iptables-restore input (`*table`, `-A CHAIN spec`, `COMMIT`; chain
// declarations and comments are skipped).
func ParseRestore(input string) ([]IPTablesRule, error) {
	var out []IPTablesRule
	table := ""
	for n, line := range strings.Split(input, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "*"):
			table = strings.TrimSpace(line[1:])
		case line == "COMMIT":
			table = ""
		case strings.HasPrefix(line, "-A "):
			if table == "" {
				return nil, fmt.Errorf("line %d: rule outside a table", n+1)
			}
			chain, spec, _ := strings.Cut(strings.TrimPrefix(line, "-A "), " ")
			out = append(out, IPTablesRule{Table: table, Chain: chain, Spec: strings.TrimSpace(spec)})
		default:
			return nil, fmt.Errorf("line %d: cannot translate %q", n+1, line)
		}
	}
	return out, nil
}

// TranslateSpec translates one rule's iptables spec (everything after `-A CHAIN`) into nft rules: one,
// except TPROXY, which is terminal in iptables (accept, or drop when no transparent socket listens) and
// so becomes a tproxy rule followed by a drop with the same matches.
//
// One difference remains, by design of the two: a negated owner match (`! --uid-owner 1337`) matches
// packets without a socket in iptables but not in nft (`meta skuid != 1337` needs a socket). meshlab's
// capture negates owners only in nat OUTPUT, which sees the first packet of locally created connections,
// and those always have a socket.
func TranslateSpec(spec string) ([]Rule, error) {
	toks := strings.Fields(spec)
	var match Rule
	proto, module, not := "", "", false
	hasPort := false
	i := 0
	arg := func(flag string) (string, error) {
		if i+1 >= len(toks) {
			return "", fmt.Errorf("%s needs a value", flag)
		}
		i++
		return toks[i], nil
	}
	for ; i < len(toks); i++ {
		tok := toks[i]
		if tok == "!" {
			not = true
			continue
		}
		if tok == "-j" || tok == "--jump" {
			break
		}
		v, err := arg(tok)
		if err != nil {
			return nil, err
		}
		negatable := true
		switch tok {
		case "-p", "--protocol":
			if _, ok := protoNumbers[v]; !ok || not {
				return nil, fmt.Errorf("protocol %s%s: only tcp and udp are supported", neq(not), v)
			}
			proto = v
			match = append(match, Proto{v})
		case "-m", "--match":
			if !slices.Contains([]string{"tcp", "udp", "multiport", "mark", "connmark", "owner", "conntrack", "state"}, v) {
				return nil, fmt.Errorf("-m %s: unsupported match", v)
			}
			module, negatable = v, false
		case "-s", "--source", "-d", "--destination":
			p, err := parsePrefix(v)
			if err != nil {
				return nil, err
			}
			match = append(match, Addr{Source: tok == "-s" || tok == "--source", Prefix: p, Not: not})
		case "-i", "--in-interface", "-o", "--out-interface":
			if strings.HasSuffix(v, "+") {
				v = strings.TrimSuffix(v, "+") + "*"
			}
			match = append(match, Iface{Output: tok == "-o" || tok == "--out-interface", Name: v, Not: not})
		case "--dport", "--destination-port", "--dports", "--destination-ports":
			if proto == "" {
				return nil, fmt.Errorf("%s needs -p tcp or -p udp", tok)
			}
			ports, err := parsePorts(v)
			if err != nil {
				return nil, err
			}
			match, hasPort = append(match, Port{Proto: proto, Ports: ports, Not: not}), true
		case "--mark":
			if module != "mark" && module != "connmark" {
				return nil, fmt.Errorf("--mark needs -m mark or -m connmark")
			}
			val, mask, err := parseMark(v)
			if err != nil {
				return nil, err
			}
			match = append(match, Mark{Conntrack: module == "connmark", Value: val, Mask: mask, Not: not})
		case "--uid-owner", "--gid-owner":
			id, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%s %s: only numeric ids are supported", tok, v)
			}
			match = append(match, Owner{Group: tok == "--gid-owner", ID: uint32(id), Not: not})
		case "--ctstate", "--state":
			if not {
				return nil, fmt.Errorf("negated %s is not supported", tok)
			}
			match = append(match, CtState{States: strings.Split(strings.ToLower(v), ",")})
		default:
			return nil, fmt.Errorf("%s: unsupported option", tok)
		}
		if not && !negatable {
			return nil, fmt.Errorf("! before %s is not supported", tok)
		}
		not = false
	}
	if not {
		return nil, fmt.Errorf("dangling !")
	}
	// A port match implies the protocol in nft (`tcp dport 80`); drop the separate protocol match then.
	if hasPort {
		match = slices.DeleteFunc(match, func(e Expr) bool { _, ok := e.(Proto); return ok })
	}
	if i >= len(toks) {
		return []Rule{match}, nil // no target: a rule that only counts
	}
	if i+1 >= len(toks) {
		return nil, fmt.Errorf("-j needs a target")
	}
	target, opts, err := targetOptions(toks[i+1:])
	if err != nil {
		return nil, err
	}
	with := func(e ...Expr) Rule { return append(slices.Clone(match), e...) }
	switch target {
	case "ACCEPT":
		return []Rule{with(Accept)}, nil
	case "DROP":
		return []Rule{with(Drop)}, nil
	case "RETURN":
		return []Rule{with(Return)}, nil
	case "REDIRECT":
		port, err := singlePort(opts, "--to-ports")
		if err != nil {
			return nil, err
		}
		return []Rule{with(Redirect{Port: port})}, nil
	case "TPROXY":
		port, err := singlePort(opts, "--on-port")
		if err != nil {
			return nil, err
		}
		val, mask, err := parseMark(opts["--tproxy-mark"])
		if err != nil {
			return nil, fmt.Errorf("--tproxy-mark: %w", err)
		}
		rule := with(TProxy{Port: port})
		if opts["--tproxy-mark"] != "" {
			rule = append(rule, SetMark{Value: val, Mask: mask})
		}
		return []Rule{append(rule, Accept), with(Drop)}, nil
	case "MARK":
		if v, ok := opts["--set-mark"]; ok {
			val, mask, err := parseMark(v)
			if err != nil || (mask != 0 && mask != 0xffffffff) {
				return nil, fmt.Errorf("MARK --set-mark %s: only a value without mask is supported", v)
			}
			return []Rule{with(SetMark{Value: val})}, nil
		}
		if v, ok := opts["--set-xmark"]; ok {
			val, mask, err := parseMark(v)
			if err != nil {
				return nil, err
			}
			return []Rule{with(SetMark{Value: val, Mask: mask})}, nil
		}
		return nil, fmt.Errorf("MARK needs --set-mark or --set-xmark")
	case "CONNMARK":
		for _, m := range []string{"--nfmask", "--ctmask", "--mask"} {
			if v, ok := opts[m]; ok {
				if n, err := strconv.ParseUint(v, 0, 32); err != nil || n != 0xffffffff {
					return nil, fmt.Errorf("CONNMARK %s %s: only full masks are supported", m, v)
				}
			}
		}
		switch {
		case has(opts, "--save-mark"):
			return []Rule{with(CopyMark{})}, nil
		case has(opts, "--restore-mark"):
			return []Rule{with(CopyMark{Restore: true})}, nil
		case has(opts, "--set-xmark"):
			val, mask, err := parseMark(opts["--set-xmark"])
			if err != nil {
				return nil, err
			}
			return []Rule{with(SetMark{Conntrack: true, Value: val, Mask: mask})}, nil
		}
		return nil, fmt.Errorf("CONNMARK needs --save-mark, --restore-mark or --set-xmark")
	}
	if len(opts) > 0 || slices.Contains(extensionTargets, target) {
		return nil, fmt.Errorf("-j %s: unsupported target", target)
	}
	// Anything else names a chain; FromIPTables checks that it exists.
	return []Rule{with(Jump(target))}, nil
}

// extensionTargets are iptables targets that are not translated (and must not be taken for chains).
var extensionTargets = []string{
	"AUDIT", "CHECKSUM", "CLASSIFY", "CT", "DNAT", "DSCP", "HL", "HMARK", "IDLETIMER", "LOG", "MASQUERADE",
	"NETMAP", "NFLOG", "NFQUEUE", "NOTRACK", "QUEUE", "REJECT", "SECMARK", "SET", "SNAT", "SYNPROXY",
	"TCPMSS", "TEE", "TOS", "TRACE", "TTL",
}

func has(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// targetOptions splits `TARGET --opt value --flag ...`.
func targetOptions(toks []string) (string, map[string]string, error) {
	opts := map[string]string{}
	flags := map[string]bool{"--save-mark": true, "--restore-mark": true}
	for i := 1; i < len(toks); i++ {
		if !strings.HasPrefix(toks[i], "--") {
			return "", nil, fmt.Errorf("-j %s: unexpected %q", toks[0], toks[i])
		}
		if flags[toks[i]] {
			opts[toks[i]] = ""
			continue
		}
		if i+1 >= len(toks) {
			return "", nil, fmt.Errorf("-j %s: %s needs a value", toks[0], toks[i])
		}
		opts[toks[i]] = toks[i+1]
		i++
	}
	return toks[0], opts, nil
}

func singlePort(opts map[string]string, flag string) (uint16, error) {
	v, ok := opts[flag]
	if !ok {
		return 0, fmt.Errorf("%s is required", flag)
	}
	p, err := strconv.ParseUint(v, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("%s %s: one port expected", flag, v)
	}
	return uint16(p), nil
}

// parseMark reads "value[/mask]" (decimal or 0x hex); no mask means the whole mark (returned as 0).
func parseMark(s string) (value, mask uint32, err error) {
	if s == "" {
		return 0, 0, nil
	}
	v, m, hasMask := strings.Cut(s, "/")
	n, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("mark %q: %w", s, err)
	}
	if !hasMask {
		return uint32(n), 0, nil
	}
	k, err := strconv.ParseUint(m, 0, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("mark mask %q: %w", s, err)
	}
	return uint32(n), uint32(k), nil
}

// parsePorts reads "80", "80,443" or "1000:2000" (iptables' range syntax).
func parsePorts(s string) ([]PortRange, error) {
	var out []PortRange
	for _, f := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(f, ":")
		a, err := strconv.ParseUint(from, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("port %q: %w", f, err)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(to, 10, 16); err != nil || b < a {
				return nil, fmt.Errorf("port range %q is invalid", f)
			}
		}
		out = append(out, PortRange{From: uint16(a), To: uint16(b)})
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if !p.Addr().Is4() {
			return netip.Prefix{}, fmt.Errorf("%s: only IPv4 is supported", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 address or prefix", s)
	}
	return netip.PrefixFrom(a, 32), nil
}
