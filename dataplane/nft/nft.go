// Package nft programs netfilter through nf_tables over netlink (github.com/google/nftables), with no
// iptables or nft binary: meshlab's image has neither, and the kernels of kind nodes have nf_tables built in.
//
// A Table is meshlab's own model of one nf_tables table: base chains hooked into netfilter, regular chains
// reached by jump, and rules made of the few expressions traffic capture needs (Exprs in expr.go). String
// renders it like `nft list table`; Replace installs it in a network namespace atomically, replacing the
// previous version of the same table and nothing else; Delete removes it; List reads it back.
// FromIPTables (translate.go) turns iptables rules into tables, so that the sidecar's and ztunnel's capture
// keep one definition of their rules whichever backend applies them.
package nft

import (
	"fmt"
	"strings"
)

// Family is a table's address family. meshlab's capture is IPv4 (its clusters are single-stack).
type Family string

const (
	IPv4 Family = "ip"
	Inet Family = "inet" // IPv4 and IPv6; IPv4 matches then check the packet's family first
)

// ChainType is what a base chain may do: filter, nat (consulted for a connection's first packet only, may
// redirect) or route (like filter, but a changed mark or address re-routes a locally generated packet).
type ChainType string

const (
	TypeFilter ChainType = "filter"
	TypeNAT    ChainType = "nat"
	TypeRoute  ChainType = "route"
)

// Hook is where a base chain is attached.
type Hook string

const (
	Prerouting  Hook = "prerouting"
	Input       Hook = "input"
	Forward     Hook = "forward"
	Output      Hook = "output"
	Postrouting Hook = "postrouting"
)

// Standard priorities (iptables' table order): lower runs first at the same hook.
const (
	PriorityRaw    = -300
	PriorityMangle = -150
	PriorityDstNAT = -100
	PriorityFilter = 0
	PrioritySrcNAT = 100
)

// Table is one nf_tables table. Chains are created in order; a chain must exist before a rule jumps to it,
// which Replace ensures by creating every chain before any rule.
type Table struct {
	Family Family
	Name   string
	Chains []*Chain
}

// Chain is a base chain (Hook set: attached to netfilter with Type and Priority, policy accept) or a
// regular chain (Hook empty: reached only by jump).
type Chain struct {
	Name     string
	Type     ChainType
	Hook     Hook
	Priority int
	Rules    []Rule
}

// Base reports whether c is attached to a hook.
func (c *Chain) Base() bool { return c.Hook != "" }

// Rule is a list of expressions evaluated in order, as in nft: matches, then statements.
type Rule []Expr

// Chain returns the chain called name, or nil.
func (t *Table) Chain(name string) *Chain {
	for _, c := range t.Chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// String renders t like `nft list table`.
func (t *Table) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", t.Family, t.Name)
	for i, c := range t.Chains {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if c.Base() {
			fmt.Fprintf(&b, "\t\ttype %s hook %s priority %s; policy accept;\n", c.Type, c.Hook, priorityName(c.Priority))
		}
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", r)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// String renders r as one nft rule.
func (r Rule) String() string {
	parts := make([]string, len(r))
	for i, e := range r {
		parts[i] = e.String()
	}
	return strings.Join(parts, " ")
}

// Render renders several tables, as `nft list ruleset` would.
func Render(tables []*Table) string {
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = t.String()
	}
	return strings.Join(parts, "\n")
}

func priorityName(p int) string {
	switch p {
	case PriorityRaw:
		return "raw"
	case PriorityMangle:
		return "mangle"
	case PriorityDstNAT:
		return "dstnat"
	case PriorityFilter:
		return "filter"
	case PrioritySrcNAT:
		return "srcnat"
	}
	return fmt.Sprint(p)
}
