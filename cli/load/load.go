// Package load implements `meshlab load docker-image` and `meshlab load image-archive`, kind's verbs for
// putting a user's own images into every node of the lab (cluster.LoadDockerImages, LoadImageArchives).
package load

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cluster"
)

type flagpole struct {
	Nodes []string
}

// NewCommand returns the load command with its docker-image and image-archive subcommands.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Load your own images into the lab's nodes (kind's docker-image and image-archive)",
		Args:  cliutil.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newDockerImageCommand(env), newImageArchiveCommand(env))
	return cmd
}

func newDockerImageCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "docker-image IMAGE [IMAGE...]",
		Short: "Load images from the host's Docker into the nodes",
		Long: `docker-image copies images from the host's Docker into the containerd of every node of the lab (or
of the --nodes named), as kind load docker-image does. Every image must be in Docker before any is loaded;
nodes that already hold an image are skipped. Pods use them with imagePullPolicy: Never or IfNotPresent.`,
		Args: cliutil.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cluster.New(env.Globals.Name, env.Globals.Kubeconfig, env.Logger)
			return classify(c.LoadDockerImages(cmd.Context(), args, flags.Nodes))
		},
	}
	addFlags(cmd, flags)
	return cmd
}

func newImageArchiveCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "image-archive FILE [FILE...]",
		Short: "Load image archives (docker save, OCI layout tarballs) into the nodes",
		Long: `image-archive imports image archives into the containerd of every node of the lab (or of the
--nodes named), as kind load image-archive does. Every archive is read through and checked to be an image
archive before any is loaded.`,
		Args: cliutil.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cluster.New(env.Globals.Name, env.Globals.Kubeconfig, env.Logger)
			return classify(c.LoadImageArchives(cmd.Context(), args, flags.Nodes))
		},
	}
	addFlags(cmd, flags)
	return cmd
}

func addFlags(cmd *cobra.Command, flags *flagpole) {
	cmd.Flags().StringSliceVar(&flags.Nodes, "nodes", nil, "comma separated list of nodes to load images into (default: all)")
}

// classify makes a bad image (not in Docker, a broken archive) a usage error, exit 2; a missing lab is
// already ErrEnvironment, exit 2.
func classify(err error) error {
	if err != nil && errors.Is(err, cluster.ErrBadImage) {
		return &cliutil.UsageError{Err: err}
	}
	return err
}
