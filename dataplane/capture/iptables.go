package capture

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"

	"github.com/vishvananda/netns"
)

// installIPTables sets up capture with iptables-restore: our chains (replaced wholesale, so running it
// again converges), the jumps into them (added once), and the policy route for replies.
func installIPTables(ns netns.NsHandle, cfg Config) error {
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

// removeIPTables undoes installIPTables.
func removeIPTables(ns netns.NsHandle, cfg Config) error {
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

// installedIPTables reports whether ns has our chains hooked in.
func installedIPTables(ns netns.NsHandle, cfg Config) (bool, error) {
	bin, err := binaries(cfg.Backend)
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

// saveIPTables returns iptables-save output of ns.
func saveIPTables(ns netns.NsHandle, cfg Config) (string, error) {
	bin, err := binaries(cfg.Backend)
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

type iptablesBinaries struct{ restore, save string }

// binaries picks iptables-nft-restore/-save (or the legacy pair). Each pod netns is fresh, so nothing else
// has chosen a backend there; nft is preferred because legacy iptables is being removed from distributions.
func binaries(backend string) (iptablesBinaries, error) {
	switch backend {
	case BackendIPTables:
		backend = ""
	case BackendIPTablesNFT:
		backend = "nft"
	case BackendIPTablesLegacy:
		backend = "legacy"
	}
	candidates := map[string]iptablesBinaries{
		"nft":    {"iptables-nft-restore", "iptables-nft-save"},
		"legacy": {"iptables-legacy-restore", "iptables-legacy-save"},
	}
	order := []string{"nft", "legacy"}
	if backend != "" {
		if _, ok := candidates[backend]; !ok {
			return iptablesBinaries{}, fmt.Errorf("unknown capture backend %q (want nft-native, iptables, iptables-nft or iptables-legacy)", backend)
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

// DetectBackend reports which iptables binaries the iptables backend would use: "nft" or "legacy".
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
