// Package nodeimage implements `meshlab node-image build`.
package nodeimage

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/cluster/nodeimage"
)

// NewCommand returns the node-image command.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node-image",
		Short: "Build kind node images with no registry",
		Args:  cliutil.NoArgs,
	}
	var opts nodeimage.Options
	build := &cobra.Command{
		Use:   "build",
		Short: "Build (or reuse the cached) kind node image from Debian packages and Go modules",
		Long: `build makes a kind node image without pulling anything: a Debian tree from debootstrap, Kubernetes,
etcd and CoreDNS compiled from the Go module proxy, kind's base-image files, and the control-plane images
preloaded. The result is a local Docker image tagged by version and recipe; a second run reuses it.`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			img, err := nodeimage.Build(cmd.Context(), opts, ui.NewStatus(env.Logger), env.Logger.V(1))
			if err != nil {
				return err
			}
			fmt.Fprintln(env.Streams.Out, img)
			return nil
		},
	}
	f := build.Flags()
	f.StringVar(&opts.KubeVersion, "kube-version", nodeimage.DefaultKubeVersion, "Kubernetes version (its staging modules must be on the module proxy)")
	f.StringVar(&opts.EtcdVersion, "etcd-version", nodeimage.DefaultEtcdVersion, "etcd version")
	f.StringVar(&opts.CoreDNSVersion, "coredns-version", nodeimage.DefaultCoreDNSVersion, "CoreDNS version")
	f.StringVar(&opts.Mirror, "mirror", nodeimage.DefaultMirror, "Debian mirror for debootstrap")
	f.BoolVar(&opts.Force, "force", false, "rebuild even when the image is cached")
	cmd.AddCommand(build)
	return cmd
}
