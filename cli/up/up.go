// Package up implements `meshlab up`.
package up

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/apps"
	"github.com/meshlab/meshlab/bookinfo"
	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/lifecycle"
	"github.com/meshlab/meshlab/manifests"
)

type flagpole struct {
	NodeImage string
	Offline   bool
	Workers   int
	Wait      time.Duration
	Ambient   bool
	With      []string
	Recreate  bool
}

// NewCommand returns the up command.
func NewCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create (or converge) the kind cluster and deploy the lab: pod network, bookinfo and sleep",
		Long: `up creates a kind cluster through the kind library (or reuses the one with this --name), loads
meshlab's own image into its nodes and deploys everything the lab needs, then waits until it is ready.
Nothing is pulled unless kind's published node image is wanted and reachable; otherwise a node image is
built offline once (meshlab node-image build) and cached.

--with DIR|FILE (repeatable) applies your own manifests after the mesh and bookinfo (a directory's .yaml,
.yml and .json files in name order; kind: List read as its items; namespaces and CRDs first) with
server-side apply, and waits for their Deployments, StatefulSets, DaemonSets and Pods like bookinfo's. All
of them are checked first (malformed YAML, kinds the API server lacks, objects it rejects): any problem
stops up with exit 2 before one of them is applied. Load their images first with meshlab load; meshlab's
own image is in every node as meshlab.local/meshlab:lab (see meshlab echo manifest).

A cluster up reuses must have its nodes running and its API server ready within 90s; a kind cluster often
does not survive a Docker restart, and a broken one stops up with exit 2 and says so. --recreate-broken
deletes such a cluster and creates it again (what you deployed in it is lost; a healthy one is kept).`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runE(cmd, env, flags) },
	}
	cmd.Flags().StringVar(&flags.NodeImage, "image", "", "node image to use (default: meshlab's cached one, else kind's, else built offline)")
	cmd.Flags().BoolVar(&flags.Offline, "offline", false, "never try to pull kind's published node image")
	cmd.Flags().IntVar(&flags.Workers, "workers", 0, "number of worker nodes besides the control plane")
	cmd.Flags().DurationVar(&flags.Wait, "wait", 5*time.Minute, "how long to wait for the lab to become ready")
	cmd.Flags().StringArrayVar(&flags.With, "with", nil, "your own manifests (a file or a directory of them; repeatable) to apply after the mesh and wait for")
	cmd.Flags().BoolVar(&flags.Recreate, "recreate-broken", false, "delete and create again a cluster of this --name whose nodes are stopped or whose API server is not ready")
	cmd.Flags().BoolVar(&flags.Ambient, "ambient", true, "enrol the bookinfo namespace in the ambient mesh (istio.io/dataplane-mode=ambient)")
	return cmd
}

func runE(cmd *cobra.Command, env cliutil.Env, flags *flagpole) error {
	if flags.Workers < 0 {
		return cliutil.Usagef("--workers must be 0 or more, got %d", flags.Workers)
	}
	res, err := lifecycle.Up(cmd.Context(), lifecycle.UpOptions{
		Name:           env.Globals.Name,
		Kubeconfig:     env.Globals.Kubeconfig,
		NodeImage:      flags.NodeImage,
		Offline:        flags.Offline,
		Workers:        flags.Workers,
		Wait:           flags.Wait,
		Ambient:        flags.Ambient,
		With:           flags.With,
		RecreateBroken: flags.Recreate,
	}, env.Logger)
	if err != nil {
		if errors.Is(err, apps.ErrInput) {
			return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("%w (nothing of them was applied)", err)}
		}
		if errors.Is(err, lifecycle.ErrEnvironment) {
			return &cliutil.ExitError{Code: 2, Err: err}
		}
		return fmt.Errorf("meshlab up: %w (run `meshlab down --name %s` to remove what was created)", err, env.Globals.Name)
	}
	for _, s := range res.Steps {
		env.Logger.V(1)("  %-45s %s", s.Name, s.Duration.Round(100*time.Millisecond))
	}
	out := env.Streams.Out
	fmt.Fprintf(out, "meshlab is up in %s: cluster %q (context kind-%s), node image %s, meshlab image %s\n\n",
		res.Total.Round(100*time.Millisecond), res.Cluster, res.Cluster, res.NodeImage, res.Image)
	fmt.Fprintf(out, "Try:\n")
	fmt.Fprintf(out, "  kubectl --context kind-%s exec deploy/%s -- meshlab curl -s http://productpage:9080/productpage\n", res.Cluster, bookinfo.Sleep)
	fmt.Fprintf(out, "  kubectl --context kind-%s exec deploy/%s -- meshlab curl -s http://reviews:9080/reviews/0\n", res.Cluster, bookinfo.Sleep)
	fmt.Fprintf(out, "  kubectl --context kind-%s port-forward svc/%s 8080:80   # then open http://localhost:8080/productpage\n", res.Cluster, manifests.BookinfoGatewayService)
	fmt.Fprintf(out, "  meshlab status\n  meshlab down\n")
	return nil
}
