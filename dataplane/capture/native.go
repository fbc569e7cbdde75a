package capture

import (
	"fmt"

	"github.com/meshlab/meshlab/dataplane/iptables"
	"github.com/meshlab/meshlab/dataplane/nft"
)

// Backends: how Install programs the rules. They are dataplane/iptables' backends, which the iptables
// ones run through.
const (
	// BackendNFT programs nf_tables directly over netlink (dataplane/nft): no binary needed. The default.
	BackendNFT = iptables.BackendNFT
	// BackendIPTables runs iptables-restore, of whichever kind is installed (nft preferred).
	BackendIPTables = iptables.BackendIPTables
	// BackendIPTablesNFT and BackendIPTablesLegacy run iptables-nft-restore or iptables-legacy-restore.
	BackendIPTablesNFT    = iptables.BackendIPTablesNFT
	BackendIPTablesLegacy = iptables.BackendIPTablesLegacy
)

// TablePrefix names capture's nftables tables: meshlab-ambient-mangle and meshlab-ambient-nat, after
// Istio's istio-ambient-* tables. Nothing else in a pod's namespace is touched.
const TablePrefix = "meshlab-ambient"

func native(cfg Config) bool { return cfg.Backend == "" || cfg.Backend == BackendNFT }

// Tables returns the nftables equivalent of Rules plus the hooks into our chains: one table per iptables
// table, translated rule by rule so that both backends install the same capture.
func Tables(cfg Config) ([]*nft.Table, error) {
	cfg = withDefaults(cfg)
	rules, err := nft.ParseRestore(Rules(cfg))
	if err != nil {
		return nil, fmt.Errorf("reading capture rules: %w", err)
	}
	for _, j := range jumps {
		rules = append(rules, nft.IPTablesRule{Table: j.table, Chain: j.chain, Spec: "-j " + j.target})
	}
	tables, err := nft.FromIPTables(TablePrefix, rules)
	if err != nil {
		return nil, fmt.Errorf("translating capture rules: %w", err)
	}
	return tables, nil
}

// NFTRules renders Tables like `nft list table` (what the nft-native backend installs).
func NFTRules(cfg Config) (string, error) {
	tables, err := Tables(cfg)
	if err != nil {
		return "", err
	}
	return nft.Render(tables), nil
}

// tableRefs names the tables Install may create, for Remove and Save.
func tableRefs() []*nft.Table {
	return []*nft.Table{{Family: nft.IPv4, Name: TablePrefix + "-mangle"}, {Family: nft.IPv4, Name: TablePrefix + "-nat"}}
}
