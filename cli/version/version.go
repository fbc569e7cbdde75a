// Package version implements `meshlab version`.
package version

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	mlversion "github.com/meshlab/meshlab/version"
)

// NewCommand returns the version command.
func NewCommand(env cliutil.Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the meshlab version",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(env.Streams.Out, mlversion.Long())
			return err
		},
	}
}
