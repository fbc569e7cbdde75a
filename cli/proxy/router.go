package proxy

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/dataplane/admin"
	"github.com/meshlab/meshlab/dataplane/gateway"
	"github.com/meshlab/meshlab/dataplane/l7xds"
	"github.com/meshlab/meshlab/dataplane/proxyboot"
	"github.com/meshlab/meshlab/version"
)

type routerFlags struct {
	xdsAddress        string
	xdsPlaintext      bool
	certs             proxyboot.CertSource
	namespace, name   string
	pod, podIP, sa    string
	adminAddr, health string
}

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
	fl := cmd.Flags()
	fl.StringVar(&f.xdsAddress, "xds-address", cliutil.EnvOr("DISCOVERY_ADDRESS", mesh.XDSAddress), "control plane ADS address")
	fl.BoolVar(&f.xdsPlaintext, "xds-plaintext", false, "talk to the ADS server without TLS (local test servers)")
	fl.StringVar(&f.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the gateway's namespace")
	fl.StringVar(&f.name, "name", os.Getenv("GATEWAY_NAME"), "the gateway's name (its Gateway)")
	fl.StringVar(&f.pod, "pod", os.Getenv("POD_NAME"), "the gateway's pod (its xDS node ID names it, as istioctl lists proxies)")
	fl.StringVar(&f.podIP, "pod-ip", os.Getenv("INSTANCE_IP"), "the gateway pod's IP")
	fl.StringVar(&f.sa, "service-account", os.Getenv("SERVICE_ACCOUNT"), "the gateway's service account (default: NAME-istio)")
	cliutil.AddCertFlags(cmd, &f.certs, cliutil.EnvOr("CA_ADDR", mesh.XDSAddress))
	fl.StringVar(&f.adminAddr, "admin-address", admin.DefaultAddress, `admin listener ("off" disables it)`)
	fl.StringVar(&f.health, "health-address", admin.DefaultHealthAddress, `readiness listener ("off" disables it)`)
	return cmd
}

func runRouter(ctx context.Context, env cliutil.Env, f *routerFlags) error {
	if f.namespace == "" || f.name == "" {
		return cliutil.Usagef("--namespace and --name are required (or POD_NAMESPACE and GATEWAY_NAME)")
	}
	if f.sa == "" {
		f.sa = f.name + "-istio"
	}
	logf := func(format string, args ...any) { env.Logger.Infof(format, args...) }
	id, err := f.certs.Boot(ctx, "gateway", f.namespace, f.sa, f.xdsPlaintext, logf)
	if err != nil {
		return err
	}
	defer id.Close()
	var ips []string
	if f.podIP != "" {
		ips = []string{f.podIP}
	}
	return gateway.Run(ctx, gateway.Options{RouterOptions: l7xds.RouterOptions{
		XDSAddress: f.xdsAddress, XDSDialOptions: id.XDSDial,
		Namespace: f.namespace, Name: f.name, Pod: f.pod, IPs: ips, Version: version.Version,
		SVID: id.SVID, Bundle: id.Bundle,
		AdminAddress: f.adminAddr, HealthAddress: f.health,
		AccessLog: env.Streams.Out, Logf: logf,
	}})
}
