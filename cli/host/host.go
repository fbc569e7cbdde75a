// Package host implements `meshlab host check` and `meshlab host prepare`.
package host

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cluster/host"
)

// NewCommand returns the host command.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Check or prepare this machine for kind (Docker engine, capability and cgroup quirks)",
		Args:  cliutil.NoArgs,
	}
	var output string
	check := &cobra.Command{
		Use:   "check",
		Short: "Report whether kind can run here, and what to do if not",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := host.Check(cmd.Context())
			if err := print(env, r, output); err != nil {
				return err
			}
			if p := r.Problems(); len(p) > 0 {
				return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("%d problem(s): %v", len(p), p)}
			}
			return nil
		},
	}
	check.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	prepare := &cobra.Command{
		Use:   "prepare",
		Short: "Install and start what kind needs here (root; Docker from Debian, the runc capability shim)",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := host.Prepare(cmd.Context(), env.Logger.V(0))
			if err != nil {
				return &cliutil.ExitError{Code: 2, Err: err}
			}
			return print(env, r, "table")
		},
	}
	cmd.AddCommand(check, prepare)
	return cmd
}

func print(env cliutil.Env, r host.Report, output string) error {
	switch output {
	case "json":
		return cliutil.WriteJSON(env.Streams.Out, r)
	case "table", "":
	default:
		return cliutil.Usagef("unknown output format %q (want table or json)", output)
	}
	w := tabwriter.NewWriter(env.Streams.Out, 0, 4, 2, ' ', 0)
	engine := r.DockerEngine
	if engine == "" {
		engine = "not reachable"
	}
	fmt.Fprintf(w, "docker engine\t%s\n", engine)
	fmt.Fprintf(w, "default runtime\t%s\n", r.DefaultRuntime)
	fmt.Fprintf(w, "CAP_SYS_RESOURCE in bounding set\t%v\n", !r.MissingSysResource)
	cg := "v1"
	if r.CgroupV2 {
		cg = "v2"
	}
	fmt.Fprintf(w, "cgroup\t%s\n", cg)
	for _, p := range r.Problems() {
		fmt.Fprintf(w, "problem\t%s\n", p)
	}
	return w.Flush()
}
