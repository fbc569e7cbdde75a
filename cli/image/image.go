// Package image implements `meshlab image`: packing meshlab itself into the OCI image the cluster runs.
package image

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	mlimage "github.com/meshlab/meshlab/image"
)

// NewCommand returns the image command.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build meshlab's own container image",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newBuildCommand(env))
	return cmd
}

type flagpole struct {
	output string
	binary string
	echoAs string
}

func newBuildCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "build -o FILE [--binary PATH] [--echo-as REF]",
		Short: "Pack a static meshlab binary into an image tarball and print its reference",
		Long: `Packs the running meshlab binary (or --binary) into a one-layer image with an empty base and
writes it as a tarball that 'docker load' and 'ctr images import' accept. The tag is derived from the
image digest, so the same binary always gives the same reference, which is printed on stdout.

With --echo-as REF it builds the stand-in for Istio's echo image instead (what the Gateway API
conformance suite deploys), tagged REF: the binary is also /usr/local/bin/server (the entrypoint, which
runs 'meshlab echo server') and /usr/local/bin/client ('meshlab echo client').`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runE(env, flags)
		},
	}
	cmd.Flags().StringVarP(&flags.output, "output", "o", "", "tarball to write (required)")
	cmd.Flags().StringVar(&flags.binary, "binary", "", "static linux meshlab binary to pack (default: the running one)")
	cmd.Flags().StringVar(&flags.echoAs, "echo-as", "", "build the echo stand-in image under this reference (e.g. registry.k8s.io/gateway-api/echo-advanced:v1.5.1)")
	return cmd
}

func runE(env cliutil.Env, flags *flagpole) error {
	if flags.output == "" {
		return cliutil.Usagef("image build needs -o FILE")
	}
	start := time.Now()
	bin := flags.binary
	if bin == "" {
		var err error
		if bin, err = mlimage.SelfBinary(); err != nil {
			return err
		}
	}
	img, tag, err := mlimage.Build(bin)
	if flags.echoAs != "" {
		img, tag, err = mlimage.BuildEcho(bin, flags.echoAs)
	}
	if err != nil {
		return err
	}
	if cf, err := img.ConfigFile(); err == nil && cf.Architecture != runtime.GOARCH {
		env.Logger.Warnf("%s is built for %s but this machine is %s; kind nodes will not run it", bin, cf.Architecture, runtime.GOARCH)
	}
	if err := mlimage.WriteTarball(flags.output, img, tag); err != nil {
		return err
	}
	if fi, err := os.Stat(flags.output); err == nil {
		env.Logger.V(1)("wrote %s (%.1f MiB) in %s", flags.output, float64(fi.Size())/(1<<20), time.Since(start).Round(time.Millisecond))
	}
	_, err = fmt.Fprintln(env.Streams.Out, tag.String())
	return err
}
