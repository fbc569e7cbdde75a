// Package check is `meshlab check`: it runs package diagnose's checks against the lab and prints one line
// per check, with what to do under each problem. Exit 0 when all is well, 1 when something is not.
package check

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/diagnose"
	"github.com/meshlab/meshlab/scenarios"
)

// NewCommand returns the check command.
func NewCommand(env cliutil.Env) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Check that sidecar injection and validation will work: control plane, CA root, template, webhooks and their certificate",
		Long: `Checks, before a pod creation fails on it, that the control plane is ready, the CA root is
published, the injection template parses, the MutatingWebhookConfiguration points at the control plane with
the CA root as caBundle, and the webhook answers over TLS for istiod.istio-system.svc (through
a port-forward, verified the way the API server verifies it), and that the validating webhook is registered
with the CA root and denies an invalid VirtualService. Exit 0: all good; 1: problems, each with what to do.`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := scenarios.Connect(cmd.Context(), env.Globals.Target(), env.Logger)
			if err != nil {
				return err
			}
			c := &diagnose.Checker{Kube: e.Kube, Forward: diagnose.PortForward(e.Config, e.Kube)}
			results := c.Run(cmd.Context())
			if Print(env.Streams.Out, results) > 0 {
				return &cliutil.ExitError{Code: 1}
			}
			return nil
		},
	}
}

// Print writes one line per check (and the fix under each problem) and returns the number of problems.
func Print(w io.Writer, results []diagnose.Result) int {
	problems := 0
	for _, r := range results {
		mark := "✓"
		if !r.OK {
			mark = "✗"
			problems++
		}
		fmt.Fprintf(w, " %s %s: %s\n", mark, r.Name, r.Detail)
		if !r.OK && r.Fix != "" {
			fmt.Fprintf(w, "     → %s\n", r.Fix)
		}
	}
	if problems == 0 {
		fmt.Fprintln(w, "no problems found")
	} else {
		fmt.Fprintf(w, "%d problem(s) found\n", problems)
	}
	return problems
}
