package capture

import (
	"fmt"
	"strings"

	"github.com/vishvananda/netns"

	"github.com/meshlab/meshlab/dataplane/iptables"
)

// installIPTables sets up capture with iptables-restore: our chains (replaced wholesale, so running it
// again converges), the jumps into them (added once), and the policy route for replies.
func installIPTables(ns netns.NsHandle, cfg Config) error {
	return withIPTables(ns, cfg, func(b iptables.Backend, saved string) error {
		input := Rules(cfg)
		// Declaring a chain in iptables-restore --noflush empties it, so our chains are rewritten each time;
		// the jumps are appended only if missing.
		var extra strings.Builder
		for _, j := range jumps {
			if !hasJump(saved, j.table, j.chain, j.target) {
				fmt.Fprintf(&extra, "*%s\n-A %s -j %s\nCOMMIT\n", j.table, j.chain, j.target)
			}
		}
		if err := iptables.Restore(b, input+extra.String()); err != nil {
			return err
		}
		return addPolicyRoute(cfg)
	})
}

// removeIPTables undoes installIPTables.
func removeIPTables(ns netns.NsHandle, cfg Config) error {
	return withIPTables(ns, cfg, func(b iptables.Backend, saved string) error {
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
			if err := iptables.Restore(b, in.String()); err != nil {
				return err
			}
		}
		return delPolicyRoute(cfg)
	})
}

// installedIPTables reports whether ns has our chains hooked in.
func installedIPTables(ns netns.NsHandle, cfg Config) (bool, error) {
	var ok bool
	err := withIPTables(ns, cfg, func(_ iptables.Backend, saved string) error {
		ok = hasJump(saved, "nat", "OUTPUT", chainOutput)
		return nil
	})
	return ok, err
}

// saveIPTables returns iptables-save output of ns.
func saveIPTables(ns netns.NsHandle, cfg Config) (string, error) {
	var out string
	err := withIPTables(ns, cfg, func(_ iptables.Backend, saved string) error {
		out = saved
		return nil
	})
	return out, err
}

// withIPTables runs fn inside ns with the iptables binaries of cfg.Backend (detected there, so a pod whose
// namespace already holds rules of one kind is joined in that kind; a fresh one gets nft) and what
// iptables-save prints.
func withIPTables(ns netns.NsHandle, cfg Config, fn func(b iptables.Backend, saved string) error) error {
	return Do(ns, func() error {
		b, err := iptables.DetectBackend(cfg.Backend)
		if err != nil {
			return err
		}
		saved, err := iptables.Save(b)
		if err != nil {
			return err
		}
		return fn(b, saved)
	})
}

// DetectBackend reports which iptables binaries the iptables backend would use: "nft" or "legacy".
func DetectBackend() (string, error) {
	b, err := iptables.DetectBackend(BackendIPTables)
	return b.Name, err
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
