// Package cniagent implements `meshlab cni-agent`, the per-node process of meshlab's pod network.
package cniagent

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cluster/cni"
)

// NewCommand returns the cni-agent command (run by the meshlab-cni DaemonSet, not by users).
func NewCommand(env cliutil.Env) *cobra.Command {
	var confDir string
	var every time.Duration
	cmd := &cobra.Command{
		Use:    "cni-agent",
		Short:  "Keep this node's CNI config and pod routes in step with the cluster (runs in the meshlab-cni DaemonSet)",
		Hidden: true,
		Args:   cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := rest.InClusterConfig()
			if err != nil {
				return err
			}
			kube, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			node := os.Getenv("NODE_NAME")
			if node == "" {
				return cliutil.Usagef("NODE_NAME is not set")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			a := &cni.Agent{Kube: kube, NodeName: node, ConfDir: confDir, SetRoute: cni.NetlinkRoute, Logf: env.Logger.V(0)}
			return a.Run(ctx, every)
		},
	}
	cmd.Flags().StringVar(&confDir, "conf-dir", "/etc/cni/net.d", "CNI config directory")
	cmd.Flags().DurationVar(&every, "resync", 10*time.Second, "how often to resync")
	return cmd
}
