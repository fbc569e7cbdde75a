// Package down implements `meshlab down`.
package down

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/lifecycle"
)

// NewCommand returns the down command.
func NewCommand(env cliutil.Env) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Delete the lab's kind cluster and its kubeconfig entries (cached images are kept)",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			existed, err := lifecycle.Down(env.Globals.Name, env.Globals.Kubeconfig, env.Logger)
			if err != nil {
				return fmt.Errorf("deleting cluster %q: %w", env.Globals.Name, err)
			}
			if existed {
				fmt.Fprintf(env.Streams.Out, "deleted cluster %q\n", env.Globals.Name)
			} else {
				fmt.Fprintf(env.Streams.Out, "no cluster %q (nothing to delete)\n", env.Globals.Name)
			}
			return nil
		},
	}
}
