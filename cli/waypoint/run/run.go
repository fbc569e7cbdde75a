// Package run is `meshlab waypoint run`, the process of a waypoint Deployment: it gets the
// waypoint's certificate (from the control plane's CA, or from PEM files in --cert-dir), follows its Envoy
// config over ADS and runs dataplane/waypoint: HBONE on 15008, admin on 127.0.0.1:15000, /healthz/ready on
// 15021. Access-log lines go to stdout.
//
// Certificate seam (dataplane/proxyboot, shared with `proxy sidecar`): the waypoint needs an x509svid.Source and
// a trust bundle. With --cert-dir they are read once from cert-chain.pem, key.pem and root-cert.pem
// (Istio's file names; written by a test, or by anything that fetches certificates on the waypoint's
// behalf). Without it, an svidsource.Source signs through the control plane's CA with the pod's projected
// token and rotates the certificate itself.
package run

import (
	"context"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/dataplane/waypoint"
)

type flagpole struct {
	router    cliutil.RouterFlags
	hboneAddr string
}

// routerEnv names the variables the waypoint Deployment sets (controlplane/waypoints).
var routerEnv = cliutil.RouterEnv{Who: "waypoint", XDSAddress: "XDS_ADDRESS", CAAddress: "CA_ADDRESS", Name: "WAYPOINT_NAME"}

// NewCommand returns `waypoint run`.
func NewCommand(env cliutil.Env) *cobra.Command {
	f := &flagpole{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a waypoint proxy (the waypoint Deployment's process)",
		Long: `Runs a waypoint: terminates HBONE on 15008, executes the L7 config the control plane sends over ADS
(routes, weighted clusters, retries, timeouts, fault injection, L7 authorization) and forwards to
endpoints over HBONE. Admin on 127.0.0.1:15000 (/config_dump, /clusters, /stats/prometheus, /ready),
readiness on :15021/healthz/ready.

Flags fall back to the environment: POD_NAMESPACE (--namespace), WAYPOINT_NAME (--name), POD_NAME (--pod),
INSTANCE_IP (--pod-ip), XDS_ADDRESS (--xds-address), CA_ADDRESS (--ca-address).`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runE(ctx, env, f)
		},
	}
	f.router.Register(cmd, routerEnv)
	cmd.Flags().StringVar(&f.hboneAddr, "hbone-address", ":15008", "HBONE listener")
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, f *flagpole) error {
	opts, closeCerts, err := f.router.Boot(ctx, env, routerEnv)
	if err != nil {
		return err
	}
	defer closeCerts()
	return waypoint.Run(ctx, waypoint.Options{RouterOptions: opts, HBONEAddress: f.hboneAddr})
}
