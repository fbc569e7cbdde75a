package iptables

import (
	"fmt"
	"strings"

	"github.com/vishvananda/netns"

	"github.com/meshlab/meshlab/dataplane/nft"
)

// TablePrefix names the sidecar's nftables tables: meshlab-proxy-nat and, for TPROXY, meshlab-proxy-mangle
// (after Istio's istio-proxy-* tables). Nothing else in the pod's namespace is touched.
const TablePrefix = "meshlab-proxy"

// ownedTables are all the tables the native backend may create, so that applying a ruleset that needs
// fewer (REDIRECT after TPROXY) deletes the rest.
func ownedTables() []*nft.Table {
	return []*nft.Table{{Family: nft.IPv4, Name: TablePrefix + "-mangle"}, {Family: nft.IPv4, Name: TablePrefix + "-nat"}}
}

// NFT returns the ruleset as nftables tables, translated rule by rule from the iptables rules (so that
// both backends install the same capture): Istio's chains keep their names, PREROUTING and OUTPUT become
// base chains hooked at mangle (-150) and dstnat (-100) priority.
func (rs *Ruleset) NFT() ([]*nft.Table, error) {
	rules := make([]nft.IPTablesRule, len(rs.Rules))
	for i, r := range rs.Rules {
		rules[i] = nft.IPTablesRule{Table: r.Table, Chain: r.Chain, Spec: r.Spec}
	}
	tables, err := nft.FromIPTables(TablePrefix, rules)
	if err != nil {
		return nil, fmt.Errorf("translating the capture rules to nftables: %w", err)
	}
	return tables, nil
}

// NFTString renders what the nft-native backend installs, like `nft list ruleset`, then the policy route.
func (rs *Ruleset) NFTString() (string, error) {
	tables, err := rs.NFT()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(nft.Render(tables))
	if pr := rs.PolicyRoute; pr != nil {
		fmt.Fprintf(&b, "ip -4 rule add fwmark %d lookup %d\n", pr.Mark, pr.Table)
		fmt.Fprintf(&b, "ip -4 route add local 0.0.0.0/0 dev lo table %d\n", pr.Table)
	}
	return b.String(), nil
}

// applyNative installs rs in the calling thread's network namespace over netlink: meshlab's tables are
// replaced in one atomic batch (tables rs no longer needs are deleted in it), then the policy route.
func applyNative(rs *Ruleset) error {
	tables, err := rs.NFT()
	if err != nil {
		return err
	}
	if err := nft.Sync(netns.None(), ownedTables(), tables); err != nil {
		return err
	}
	if pr := rs.PolicyRoute; pr != nil {
		return addPolicyRoute(*pr)
	}
	return nil
}

// saveNative lists meshlab's tables as the kernel holds them.
func saveNative() (string, error) {
	var parts []string
	for _, ref := range ownedTables() {
		t, err := nft.List(netns.None(), ref.Family, ref.Name)
		if err != nil {
			return "", err
		}
		if t != nil {
			parts = append(parts, t.String())
		}
	}
	return strings.Join(parts, "\n"), nil
}
