package proxy

import (
	"context"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/dataplane/gateway"
)

type routerFlags struct {
	router cliutil.RouterFlags
}

// gatewayEnv names the variables the ingress gateway Deployment sets (controlplane/waypoints).
var gatewayEnv = cliutil.RouterEnv{Who: "gateway", XDSAddress: "DISCOVERY_ADDRESS", CAAddress: "CA_ADDR", Name: "GATEWAY_NAME",
	ServiceAccount: "SERVICE_ACCOUNT", DefaultServiceAccountSuffix: "-istio"}

// NewRouterCommand returns `proxy router`, the process of an ingress gateway Deployment (Istio's gateway
// pods run `pilot-agent proxy router`).
func NewRouterCommand(env cliutil.Env) *cobra.Command {
	f := &routerFlags{}
	cmd := &cobra.Command{
		Use:   "router",
		Short: "Run an ingress gateway proxy (the Deployment of a Gateway of class istio)",
		Long: `Runs an ingress gateway: opens a socket for every listener the control plane sends (0.0.0.0_80 for
a Gateway listener on port 80), routes each request by the route configuration http.PORT built from the
HTTPRoutes attached to the Gateway, and forwards to the backends: over HBONE to mesh pods, in plain text
to others. Admin on 127.0.0.1:15000 (/config_dump, /clusters, /stats/prometheus), readiness on
:15021/healthz/ready. Access-log lines go to stdout.

Flags fall back to the environment the gateway controller sets: POD_NAMESPACE, GATEWAY_NAME, POD_NAME,
INSTANCE_IP, SERVICE_ACCOUNT, CA_ADDR and DISCOVERY_ADDRESS. Listener ports below 1024 need
net.ipv4.ip_unprivileged_port_start=0 in the pod (the controller sets it, as Istio's does).`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runRouter(ctx, env, f)
		},
	}
	f.router.Register(cmd, gatewayEnv)
	return cmd
}

func runRouter(ctx context.Context, env cliutil.Env, f *routerFlags) error {
	opts, closeCerts, err := f.router.Boot(ctx, env, gatewayEnv)
	if err != nil {
		return err
	}
	defer closeCerts()
	return gateway.Run(ctx, gateway.Options{RouterOptions: opts})
}
