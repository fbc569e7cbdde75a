package nft

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Expr is one match or statement of a rule: it renders itself in nft syntax and compiles to the kernel's
// expressions. Every expression works in register 1, loading then comparing, so they compose in any order.
type Expr interface {
	String() string
	compile(c *compiler) ([]expr.Any, error)
}

// compiler carries what an expression needs beyond itself: the table (family, anonymous sets).
type compiler struct {
	table  *nftables.Table
	family Family
	// addSet adds an anonymous set to the batch being built.
	addSet func(*nftables.Set, []nftables.SetElement) error
}

const reg = 1 // NFT_REG_1

var (
	protoNumbers = map[string]byte{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP}
	// Conntrack state bits (NF_CT_STATE_*_BIT).
	ctStateBits = map[string]uint32{"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}
)

func op(not bool) expr.CmpOp {
	if not {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

func neq(not bool) string {
	if not {
		return "!= "
	}
	return ""
}

func u32(v uint32) []byte  { return binaryutil.NativeEndian.PutUint32(v) }
func be16(v uint16) []byte { return binaryutil.BigEndian.PutUint16(v) }

// ipv4Only returns the family check an IPv4 match needs in an inet table.
func (c *compiler) ipv4Only() []expr.Any {
	if c.family != Inet {
		return nil
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

// Proto matches the transport protocol: `meta l4proto tcp`.
type Proto struct{ Name string }

func (e Proto) String() string { return "meta l4proto " + e.Name }

func (e Proto) compile(*compiler) ([]expr.Any, error) {
	n, ok := protoNumbers[e.Name]
	if !ok {
		return nil, fmt.Errorf("unknown protocol %q", e.Name)
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{n}},
	}, nil
}

// Addr matches the IPv4 source or destination against a prefix: `ip daddr != 127.0.0.1`.
type Addr struct {
	Source bool
	Prefix netip.Prefix
	Not    bool
}

func (e Addr) String() string {
	field := "daddr"
	if e.Source {
		field = "saddr"
	}
	p := e.Prefix.String()
	if e.Prefix.IsSingleIP() {
		p = e.Prefix.Addr().String()
	}
	return fmt.Sprintf("ip %s %s%s", field, neq(e.Not), p)
}

func (e Addr) compile(c *compiler) ([]expr.Any, error) {
	if !e.Prefix.Addr().Is4() {
		return nil, fmt.Errorf("%s: only IPv4 prefixes are supported", e.Prefix)
	}
	offset := uint32(16) // daddr in the IPv4 header
	if e.Source {
		offset = 12
	}
	p := e.Prefix.Masked()
	addr := p.Addr().As4()
	out := append(c.ipv4Only(), &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4})
	if p.Bits() < 32 {
		mask := netipMask(p.Bits())
		out = append(out, &expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: mask, Xor: make([]byte, 4)})
	}
	return append(out, &expr.Cmp{Op: op(e.Not), Register: reg, Data: addr[:]}), nil
}

func netipMask(bits int) []byte {
	m := uint32(0xffffffff) << (32 - bits)
	return binaryutil.BigEndian.PutUint32(m)
}

// Iface matches the input or output interface by name: `oifname "lo"`. A trailing "*" matches a prefix.
type Iface struct {
	Output bool
	Name   string
	Not    bool
}

func (e Iface) String() string {
	key := "iifname"
	if e.Output {
		key = "oifname"
	}
	return fmt.Sprintf("%s %s%q", key, neq(e.Not), e.Name)
}

func (e Iface) compile(*compiler) ([]expr.Any, error) {
	key := expr.MetaKeyIIFNAME
	if e.Output {
		key = expr.MetaKeyOIFNAME
	}
	var data []byte
	if prefix, ok := strings.CutSuffix(e.Name, "*"); ok {
		data = []byte(prefix) // compare only the prefix's bytes
	} else {
		data = make([]byte, unix.IFNAMSIZ) // the name, NUL-padded: an exact match
		copy(data, e.Name)
	}
	if len(e.Name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("interface name %q too long", e.Name)
	}
	return []expr.Any{
		&expr.Meta{Key: key, Register: reg},
		&expr.Cmp{Op: op(e.Not), Register: reg, Data: data},
	}, nil
}

// PortRange is From..To inclusive; a single port has To == From.
type PortRange struct{ From, To uint16 }

func (r PortRange) String() string {
	if r.To == r.From {
		return strconv.Itoa(int(r.From))
	}
	return fmt.Sprintf("%d-%d", r.From, r.To)
}

// Port matches the destination port (TCP unless Proto says udp) against one port, one range or a set of
// single ports: `tcp dport != 15008`, `tcp dport 15000-15010`, `tcp dport { 5432, 6379 }`. It implies
// `meta l4proto tcp`, as in nft.
type Port struct {
	Proto string // "tcp" (default) or "udp"
	Ports []PortRange
	Not   bool
}

func (e Port) proto() string {
	if e.Proto == "" {
		return "tcp"
	}
	return e.Proto
}

func (e Port) String() string {
	v := "{ }"
	if len(e.Ports) == 1 {
		v = e.Ports[0].String()
	} else if len(e.Ports) > 1 {
		s := make([]string, len(e.Ports))
		for i, p := range e.Ports {
			s[i] = p.String()
		}
		v = "{ " + strings.Join(s, ", ") + " }"
	}
	return fmt.Sprintf("%s dport %s%s", e.proto(), neq(e.Not), v)
}

func (e Port) compile(c *compiler) ([]expr.Any, error) {
	if len(e.Ports) == 0 {
		return nil, fmt.Errorf("port match without ports")
	}
	out, err := Proto{e.proto()}.compile(c)
	if err != nil {
		return nil, err
	}
	out = append(out, &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
	if len(e.Ports) == 1 {
		p := e.Ports[0]
		if p.From > p.To {
			return nil, fmt.Errorf("port range %d-%d is empty", p.From, p.To)
		}
		if p.From == p.To {
			return append(out, &expr.Cmp{Op: op(e.Not), Register: reg, Data: be16(p.From)}), nil
		}
		return append(out, &expr.Range{Op: op(e.Not), Register: reg, FromData: be16(p.From), ToData: be16(p.To)}), nil
	}
	// Several ports: an anonymous constant set, looked up in one step.
	elems := make([]nftables.SetElement, 0, len(e.Ports))
	for _, p := range e.Ports {
		if p.From != p.To {
			return nil, fmt.Errorf("port set %s: ranges inside a set are not supported", e)
		}
		elems = append(elems, nftables.SetElement{Key: be16(p.From)})
	}
	set := &nftables.Set{Table: c.table, Anonymous: true, Constant: true, KeyType: nftables.TypeInetService}
	if err := c.addSet(set, elems); err != nil {
		return nil, fmt.Errorf("adding port set: %w", err)
	}
	return append(out, &expr.Lookup{SourceRegister: reg, SetName: set.Name, SetID: set.ID, Invert: e.Not}), nil
}

// Mark matches the packet mark (`meta mark & 0x00000fff == 0x00000539`) or, with Conntrack, the
// connection's mark (`ct mark ...`). A zero Mask compares the whole mark.
type Mark struct {
	Conntrack   bool
	Value, Mask uint32
	Not         bool
}

func (e Mark) key() string {
	if e.Conntrack {
		return "ct mark"
	}
	return "meta mark"
}

func (e Mark) String() string {
	if e.Mask == 0 || e.Mask == 0xffffffff {
		return fmt.Sprintf("%s %s0x%08x", e.key(), neq(e.Not), e.Value)
	}
	cmp := "=="
	if e.Not {
		cmp = "!="
	}
	return fmt.Sprintf("%s & 0x%08x %s 0x%08x", e.key(), e.Mask, cmp, e.Value)
}

func (e Mark) compile(*compiler) ([]expr.Any, error) {
	out := []expr.Any{loadMark(e.Conntrack)}
	if e.Mask != 0 && e.Mask != 0xffffffff {
		out = append(out, &expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: u32(e.Mask), Xor: u32(0)})
	}
	return append(out, &expr.Cmp{Op: op(e.Not), Register: reg, Data: u32(e.Value)}), nil
}

func loadMark(conntrack bool) expr.Any {
	if conntrack {
		return &expr.Ct{Key: expr.CtKeyMARK, Register: reg}
	}
	return &expr.Meta{Key: expr.MetaKeyMARK, Register: reg}
}

func storeMark(conntrack bool) expr.Any {
	if conntrack {
		return &expr.Ct{Key: expr.CtKeyMARK, Register: reg, SourceRegister: true}
	}
	return &expr.Meta{Key: expr.MetaKeyMARK, Register: reg, SourceRegister: true}
}

// Owner matches the uid (or, with Group, the gid) of the local socket that sent the packet:
// `meta skuid 1337`. Packets without a socket never match, not even when negated.
type Owner struct {
	Group bool
	ID    uint32
	Not   bool
}

func (e Owner) String() string {
	key := "skuid"
	if e.Group {
		key = "skgid"
	}
	return fmt.Sprintf("meta %s %s%d", key, neq(e.Not), e.ID)
}

func (e Owner) compile(*compiler) ([]expr.Any, error) {
	key := expr.MetaKeySKUID
	if e.Group {
		key = expr.MetaKeySKGID
	}
	return []expr.Any{
		&expr.Meta{Key: key, Register: reg},
		&expr.Cmp{Op: op(e.Not), Register: reg, Data: u32(e.ID)},
	}, nil
}

// CtState matches connections in any of the given conntrack states: `ct state established,related`.
type CtState struct{ States []string }

func (e CtState) String() string { return "ct state " + strings.Join(e.States, ",") }

func (e CtState) compile(*compiler) ([]expr.Any, error) {
	var bits uint32
	for _, s := range e.States {
		b, ok := ctStateBits[s]
		if !ok {
			return nil, fmt.Errorf("unknown conntrack state %q", s)
		}
		bits |= b
	}
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: u32(bits), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: u32(0)},
	}, nil
}

// LocalDst matches packets addressed to one of this namespace's own addresses: `fib daddr type local`.
type LocalDst struct{ Not bool }

func (e LocalDst) String() string { return "fib daddr type " + neq(e.Not) + "local" }

func (e LocalDst) compile(*compiler) ([]expr.Any, error) {
	return []expr.Any{
		&expr.Fib{Register: reg, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: op(e.Not), Register: reg, Data: u32(unix.RTN_LOCAL)},
	}, nil
}

// Verdict ends (accept, drop, return) or continues (jump, goto) evaluation.
type Verdict struct {
	Kind  string // "accept", "drop", "return", "jump" or "goto"
	Chain string // for jump and goto
}

var (
	Accept = Verdict{Kind: "accept"}
	Drop   = Verdict{Kind: "drop"}
	Return = Verdict{Kind: "return"}
)

// Jump continues in chain and comes back.
func Jump(chain string) Verdict { return Verdict{Kind: "jump", Chain: chain} }

func (e Verdict) String() string {
	if e.Chain != "" {
		return e.Kind + " " + e.Chain
	}
	return e.Kind
}

func (e Verdict) compile(*compiler) ([]expr.Any, error) {
	kinds := map[string]expr.VerdictKind{
		"accept": expr.VerdictAccept, "drop": expr.VerdictDrop, "return": expr.VerdictReturn,
		"jump": expr.VerdictJump, "goto": expr.VerdictGoto,
	}
	k, ok := kinds[e.Kind]
	if !ok {
		return nil, fmt.Errorf("unknown verdict %q", e.Kind)
	}
	if (e.Chain != "") != (k == expr.VerdictJump || k == expr.VerdictGoto) {
		return nil, fmt.Errorf("verdict %q: a chain goes with jump and goto only", e)
	}
	return []expr.Any{&expr.Verdict{Kind: k, Chain: e.Chain}}, nil
}

// Redirect rewrites the destination to a local address (the incoming interface's, or 127.0.0.1 for
// locally generated packets) and Port: `redirect to :15001`. Only in nat chains; conntrack keeps the
// original destination, which the receiving proxy reads with SO_ORIGINAL_DST.
type Redirect struct{ Port uint16 }

func (e Redirect) String() string { return fmt.Sprintf("redirect to :%d", e.Port) }

func (e Redirect) compile(*compiler) ([]expr.Any, error) {
	return []expr.Any{
		&expr.Immediate{Register: reg, Data: be16(e.Port)},
		&expr.Redir{RegisterProtoMin: reg, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED},
	}, nil
}

// TProxy hands the packet to a transparent socket listening on Port without rewriting it:
// `tproxy to :15006`. Only in prerouting; if no socket listens, evaluation goes on with the next rule.
type TProxy struct{ Port uint16 }

func (e TProxy) String() string { return fmt.Sprintf("tproxy to :%d", e.Port) }

func (e TProxy) compile(c *compiler) ([]expr.Any, error) {
	out := c.ipv4Only()
	return append(out,
		&expr.Immediate{Register: reg, Data: be16(e.Port)},
		&expr.TProxy{Family: byte(nftables.TableFamilyIPv4), TableFamily: byte(c.table.Family), RegPort: reg},
	), nil
}

// SetMark sets the packet mark (or, with Conntrack, the connection's mark). A zero or full Mask sets it
// to Value (`meta mark set 0x00000539`); otherwise the bits in Mask are cleared and Value is XORed in,
// like iptables' --set-xmark (`ct mark set ct mark & 0xfffff000 ^ 0x00000111`).
type SetMark struct {
	Conntrack   bool
	Value, Mask uint32
}

func (e SetMark) String() string {
	key := Mark{Conntrack: e.Conntrack}.key()
	if e.Mask == 0 || e.Mask == 0xffffffff {
		return fmt.Sprintf("%s set 0x%08x", key, e.Value)
	}
	return fmt.Sprintf("%s set %s & 0x%08x ^ 0x%08x", key, key, ^e.Mask, e.Value)
}

func (e SetMark) compile(*compiler) ([]expr.Any, error) {
	if e.Mask == 0 || e.Mask == 0xffffffff {
		return []expr.Any{&expr.Immediate{Register: reg, Data: u32(e.Value)}, storeMark(e.Conntrack)}, nil
	}
	return []expr.Any{
		loadMark(e.Conntrack),
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: u32(^e.Mask), Xor: u32(e.Value)},
		storeMark(e.Conntrack),
	}, nil
}

// CopyMark copies the packet mark to the connection (`ct mark set meta mark`, iptables' CONNMARK
// --save-mark) or, with Restore, back (`meta mark set ct mark`, --restore-mark).
type CopyMark struct{ Restore bool }

func (e CopyMark) String() string {
	if e.Restore {
		return "meta mark set ct mark"
	}
	return "ct mark set meta mark"
}

func (e CopyMark) compile(*compiler) ([]expr.Any, error) {
	return []expr.Any{loadMark(e.Restore), storeMark(!e.Restore)}, nil
}

// text is a rule read back from the kernel, shown by the text it was written with (see List).
type text string

func (e text) String() string { return string(e) }

func (e text) compile(*compiler) ([]expr.Any, error) {
	return nil, fmt.Errorf("rule %q was read back from the kernel and cannot be installed again", string(e))
}
