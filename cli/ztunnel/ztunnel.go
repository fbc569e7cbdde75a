// Package ztunnel is `meshlab ztunnel`, the process of the ztunnel DaemonSet: flags and environment in,
// dataplane/ztunnel/app.Run does the rest. xDS and the CA share the control plane's TLS listener on 15012,
// as istiod's do.
package ztunnel

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/dataplane/ztunnel/agent"
	"github.com/meshlab/meshlab/dataplane/ztunnel/app"
)

type flagpole struct {
	xdsAddress     string
	caAddress      string
	tokenPath      string
	rootCert       string
	netnsDir       string
	serviceAccount string
	adminAddr      string
	statsAddr      string
	healthAddr     string
	svidTTL        time.Duration
	cleanupOnExit  bool
}

// NewCommand returns `meshlab ztunnel`.
func NewCommand(env cliutil.Env) *cobra.Command {
	f := &flagpole{}
	cmd := &cobra.Command{
		Use:   "ztunnel",
		Short: "Run the node proxy (the ztunnel DaemonSet's process)",
		Long: `Runs ztunnel on this node: enrols pods of ambient namespaces (istio.io/dataplane-mode=ambient),
carries their TCP over HBONE with their own SPIFFE identities, and enforces L4 authorization.
Reads NODE_NAME, POD_NAME, POD_NAMESPACE and INSTANCE_IP from the environment (the DaemonSet sets them).`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			opts, err := f.options(env)
			if err != nil {
				return err
			}
			return app.Run(ctx, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.xdsAddress, "xds-address", mesh.XDSAddress, "control plane xDS address (TLS)")
	fl.StringVar(&f.caAddress, "ca-address", mesh.XDSAddress, "control plane CA address (TLS); the same listener as xDS by default")
	fl.StringVar(&f.tokenPath, "token-path", app.TokenPath, "projected service-account token (audience istio-ca)")
	fl.StringVar(&f.rootCert, "root-cert", app.RootCertPath, "the mesh root certificate (PEM)")
	fl.StringVar(&f.netnsDir, "netns-dir", app.NetnsDir, "where the node's pod network namespaces are")
	fl.StringVar(&f.serviceAccount, "service-account", mesh.NodeProxyServiceAccount, "ztunnel's own service account")
	fl.StringVar(&f.adminAddr, "admin-address", fmt.Sprintf("127.0.0.1:%d", app.AdminPort), "admin listener (config dump)")
	fl.StringVar(&f.statsAddr, "stats-address", fmt.Sprintf(":%d", app.StatsPort), "Prometheus listener")
	fl.StringVar(&f.healthAddr, "health-address", fmt.Sprintf(":%d", app.HealthPort), "readiness listener")
	fl.DurationVar(&f.svidTTL, "svid-ttl", 0, "lifetime asked for workload certificates (0: the CA's default)")
	fl.BoolVar(&f.cleanupOnExit, "cleanup-on-exit", false, "remove every pod's capture on exit (by default pods stay captured, as in Istio, and the next ztunnel takes them over)")
	return cmd
}

// options turns the flags and the DaemonSet's environment into app.Options, with an in-cluster client.
func (f *flagpole) options(env cliutil.Env) (app.Options, error) {
	node, podNS := os.Getenv("NODE_NAME"), os.Getenv("POD_NAMESPACE")
	if node == "" {
		return app.Options{}, cliutil.Usagef("NODE_NAME is not set (the DaemonSet sets it from spec.nodeName)")
	}
	if podNS == "" {
		podNS = mesh.Namespace
	}
	restCfg, err := rest.InClusterConfig()
	if err != nil {
		return app.Options{}, fmt.Errorf("reading in-cluster config: %w", err)
	}
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return app.Options{}, fmt.Errorf("creating Kubernetes client: %w", err)
	}
	return app.Options{
		Node: node, PodName: os.Getenv("POD_NAME"), PodIP: os.Getenv("INSTANCE_IP"),
		Namespace: podNS, ServiceAccount: f.serviceAccount,
		XDSAddress: f.xdsAddress, CAAddress: f.caAddress, TokenPath: f.tokenPath, RootCert: f.rootCert,
		Kube: kube, Netns: &agent.NetnsFinder{Dir: f.netnsDir},
		AdminAddress: f.adminAddr, StatsAddress: f.statsAddr, HealthAddress: f.healthAddr,
		SVIDTTL: f.svidTTL, CleanupOnExit: f.cleanupOnExit,
		AccessLog: env.Streams.Out, Logf: func(format string, args ...any) { env.Logger.Infof(format, args...) },
	}, nil
}
