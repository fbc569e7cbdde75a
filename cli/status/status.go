// Package status implements `meshlab status`.
package status

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/lifecycle"
)

// NewCommand returns the status command. It exits 0 when the lab is up and ready, 1 when it is not ready,
// and 2 when there is no lab.
func NewCommand(env cliutil.Env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster, its nodes and the lab's components with their readiness",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return cliutil.Usagef("unknown output format %q (want table or json)", output)
			}
			st, err := lifecycle.GetStatus(cmd.Context(), env.Globals.Target(), env.Logger)
			if err != nil {
				return err
			}
			if output == "json" {
				if err := cliutil.WriteJSON(env.Streams.Out, st); err != nil {
					return err
				}
			} else {
				printTable(env, st)
			}
			if !st.Exists {
				// No lab is the environment, as for every command that reads it: exit 2.
				return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("cluster %q does not exist: run `meshlab up`", st.Cluster)}
			}
			if !st.Ready {
				return &cliutil.ExitError{Code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	return cmd
}

func printTable(env cliutil.Env, st *lifecycle.Status) {
	w := tabwriter.NewWriter(env.Streams.Out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "CLUSTER\t%s\texists=%v\tready=%v\n\n", st.Cluster, st.Exists, st.Ready)
	if !st.Exists {
		return
	}
	fmt.Fprintln(w, "NODE\tREADY")
	for _, n := range st.Nodes {
		fmt.Fprintf(w, "%s\t%v\n", n.Name, n.Ready)
	}
	fmt.Fprintln(w, "\nKIND\tNAMESPACE\tNAME\tREADY")
	for _, c := range st.Components {
		ready := fmt.Sprintf("%d/%d", c.Ready, c.Desired)
		switch {
		case !c.Found:
			ready = "missing"
		case c.Updating:
			ready += " (rolling out)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.Kind, c.Namespace, c.Name, ready)
	}
}
