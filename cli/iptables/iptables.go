// Package iptables implements `meshlab iptables`: istio-iptables for meshlab's sidecar init container. It
// takes Istio's flags, prints the rules and installs them in the current network namespace (the pod's).
package iptables

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/dataplane/iptables"
)

type flagpole struct {
	proxyPort, inboundPort    int
	uids, gids, mode          string
	include, exclude          string
	inboundPorts, inboundExcl string
	outboundExcl, backend     string
	dryRun                    bool
}

// NewCommand returns the iptables command.
func NewCommand(env cliutil.Env) *cobra.Command {
	d := iptables.DefaultConfig()
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "iptables [-p PORT] [-z PORT] [-u UID] [-g GID] [-m REDIRECT|TPROXY] [-i CIDRS] [-x CIDRS] [-b PORTS] [-d PORTS] [-o PORTS] [--backend NAME] [--dry-run]",
		Short: "Set up a sidecar pod's traffic capture, like istio-iptables (the istio-init container)",
		Long: `iptables installs Istio's sidecar capture rules in the current network namespace: outbound TCP to the
proxy's port (-p), inbound TCP to its inbound port (-z), except traffic of the proxy's own uid/gid (-u, -g),
the excluded ranges and ports. Lists are comma-separated; "*" means all. By default the rules are nftables
tables (meshlab-proxy-nat, and meshlab-proxy-mangle for TPROXY) programmed over netlink, with no iptables
binary; --backend iptables uses iptables-restore instead. The rules are printed (as nft or iptables rules,
after the backend); --dry-run prints them without installing. Running it again converges to the same rules.`,
		Example: `  meshlab iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*' -d 15090,15021,15020
  meshlab iptables -m TPROXY -i 10.96.0.0/12 -b 9080 --dry-run
  meshlab iptables --backend iptables -i '*' -b '*' --dry-run`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runE(env, flags) },
	}
	f := cmd.Flags()
	f.IntVarP(&flags.proxyPort, "envoy-port", "p", d.ProxyPort, "port outbound TCP is redirected to")
	f.IntVarP(&flags.inboundPort, "inbound-capture-port", "z", d.InboundCapturePort, "port inbound TCP is redirected to")
	f.StringVarP(&flags.uids, "proxy-uid", "u", strings.Join(d.ProxyUIDs, ","), "uids whose traffic is not captured")
	f.StringVarP(&flags.gids, "proxy-gid", "g", "", "gids whose traffic is not captured (default: the uids)")
	f.StringVarP(&flags.mode, "istio-inbound-interception-mode", "m", string(d.Mode), "inbound capture: REDIRECT or TPROXY")
	f.StringVarP(&flags.include, "istio-service-cidr", "i", "", `outbound destinations to capture: CIDRs or "*"`)
	f.StringVarP(&flags.exclude, "istio-service-exclude-cidr", "x", "", "outbound destinations never captured: CIDRs")
	f.StringVarP(&flags.inboundPorts, "istio-inbound-ports", "b", "", `inbound ports to capture: ports or "*"`)
	f.StringVarP(&flags.inboundExcl, "istio-local-exclude-ports", "d", "", `inbound ports not captured when -b is "*"`)
	f.StringVarP(&flags.outboundExcl, "istio-local-outbound-ports-exclude", "o", "", "outbound destination ports never captured")
	f.StringVar(&flags.backend, "backend", iptables.BackendNFT, "how to install the rules: nft-native (nf_tables over netlink, no binary), iptables (iptables-restore, nft or legacy kind detected), iptables-nft or iptables-legacy")
	f.BoolVar(&flags.dryRun, "dry-run", false, "print the rules without installing them")
	return cmd
}

func runE(env cliutil.Env, flags *flagpole) error {
	cfg := iptables.DefaultConfig()
	cfg.ProxyPort, cfg.InboundCapturePort = flags.proxyPort, flags.inboundPort
	cfg.ProxyUIDs, cfg.Mode = []string{flags.uids}, iptables.Mode(strings.ToUpper(flags.mode))
	if flags.gids != "" {
		cfg.ProxyGIDs = []string{flags.gids}
	}
	cfg.OutboundIPRangesInclude, cfg.OutboundIPRangesExclude = flags.include, flags.exclude
	cfg.InboundPortsInclude, cfg.InboundPortsExclude = flags.inboundPorts, flags.inboundExcl
	cfg.OutboundPortsExclude = flags.outboundExcl
	if !slices.Contains(iptables.Backends, flags.backend) {
		return cliutil.Usagef("--backend %s: want one of %s", flags.backend, strings.Join(iptables.Backends, ", "))
	}
	rs, err := iptables.Build(cfg)
	if err != nil {
		return cliutil.Usagef("%v", err)
	}
	native := flags.backend == iptables.BackendNFT
	rules := rs.String()
	if native {
		if rules, err = rs.NFTString(); err != nil {
			return err
		}
	}
	fmt.Fprint(env.Streams.Out, rules)
	if flags.dryRun {
		return nil
	}
	backend, err := iptables.DetectBackend(flags.backend)
	if err != nil {
		return err
	}
	if err := iptables.Apply(rs, backend); err != nil {
		return fmt.Errorf("installing capture rules (%s): %w", backendName(backend), err)
	}
	env.Logger.Infof("capture rules installed (%s)", backendName(backend))
	return nil
}

func backendName(b iptables.Backend) string {
	if b.Native() {
		return b.Name
	}
	return "iptables-" + b.Name
}
