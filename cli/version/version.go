// Package version implements `meshlab version`: meshlab's own version and, as `istioctl version` does, the
// versions of the lab's control plane and data plane.
package version

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/scenarios"
	mlversion "github.com/meshlab/meshlab/version"
)

// NewCommand returns the version command.
func NewCommand(env cliutil.Env) *cobra.Command {
	var remote bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the meshlab version, and the lab's control plane and data plane versions",
		Long: `version prints meshlab's own version and, with a running lab, the version its control plane reports
(meshlab-VERSION: istioctl version shows the same) and the versions of the proxies connected to it.`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := env.Streams.Out
			fmt.Fprintln(out, mlversion.Long())
			if !remote {
				return nil
			}
			cp, dp, err := remoteVersions(cmd.Context(), env)
			if err != nil {
				// The client's version stands on its own; say why the lab's is missing, as istioctl does.
				env.Logger.Warnf("no control plane version: %v", err)
				return nil
			}
			fmt.Fprintf(out, "control plane version: %s\ndata plane version: %s\n", cp, dp)
			return nil
		},
	}
	cmd.Flags().BoolVar(&remote, "remote", true, "also ask the lab's control plane (--remote=false: only meshlab's own version)")
	return cmd
}

// remoteVersions reads the control plane's sync status: its version, and the proxies' versions counted as
// istioctl counts them ("V (N proxies)", sorted by version).
func remoteVersions(ctx context.Context, env cliutil.Env) (controlPlane, dataPlane string, err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	lab, err := scenarios.Connect(ctx, env.Globals.Target(), env.Logger)
	if err != nil {
		return "", "", err
	}
	st, err := lab.Syncz(ctx)
	if err != nil {
		return "", "", err
	}
	count := map[string]int{}
	for _, p := range st.Proxies {
		count[p.Version]++
	}
	var parts []string
	for _, v := range slices.Sorted(maps.Keys(count)) {
		parts = append(parts, fmt.Sprintf("%s (%d proxies)", v, count[v]))
	}
	dataPlane = strings.Join(parts, ", ")
	if dataPlane == "" {
		dataPlane = "none"
	}
	return st.Version, dataPlane, nil
}
