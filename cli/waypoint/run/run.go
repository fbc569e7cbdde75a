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
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/dataplane/admin"
	"github.com/meshlab/meshlab/dataplane/l7xds"
	"github.com/meshlab/meshlab/dataplane/proxyboot"
	"github.com/meshlab/meshlab/dataplane/waypoint"
	"github.com/meshlab/meshlab/version"
)

type flagpole struct {
	xdsAddress     string
	xdsPlaintext   bool
	certs          proxyboot.CertSource
	namespace      string
	name           string
	pod            string
	serviceAccount string
	podIP          string
	hboneAddr      string
	adminAddr      string
	healthAddr     string
}

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
	fl := cmd.Flags()
	fl.StringVar(&f.xdsAddress, "xds-address", cliutil.EnvOr("XDS_ADDRESS", mesh.XDSAddress), "control plane ADS address")
	fl.BoolVar(&f.xdsPlaintext, "xds-plaintext", false, "talk to the ADS server without TLS (local test servers)")
	fl.StringVar(&f.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the waypoint's namespace")
	fl.StringVar(&f.name, "name", os.Getenv("WAYPOINT_NAME"), "the waypoint's name (its Gateway)")
	fl.StringVar(&f.pod, "pod", os.Getenv("POD_NAME"), "the waypoint's pod (its xDS node ID names it, as istioctl lists proxies)")
	fl.StringVar(&f.serviceAccount, "service-account", "", "the waypoint's service account (default: --name)")
	fl.StringVar(&f.podIP, "pod-ip", os.Getenv("INSTANCE_IP"), "the waypoint pod's IP, sent as node metadata")
	cliutil.AddCertFlags(cmd, &f.certs, cliutil.EnvOr("CA_ADDRESS", mesh.XDSAddress))
	fl.StringVar(&f.hboneAddr, "hbone-address", ":15008", "HBONE listener")
	fl.StringVar(&f.adminAddr, "admin-address", admin.DefaultAddress, `admin listener ("off" disables it)`)
	fl.StringVar(&f.healthAddr, "health-address", admin.DefaultHealthAddress, `readiness listener ("off" disables it)`)
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, f *flagpole) error {
	if f.namespace == "" || f.name == "" {
		return cliutil.Usagef("--namespace and --name are required (or POD_NAMESPACE and WAYPOINT_NAME)")
	}
	if f.serviceAccount == "" {
		f.serviceAccount = f.name
	}
	logf := func(format string, args ...any) { env.Logger.Infof(format, args...) }
	id, err := f.certs.Boot(ctx, "waypoint", f.namespace, f.serviceAccount, f.xdsPlaintext, logf)
	if err != nil {
		return err
	}
	defer id.Close()
	var ips []string
	if f.podIP != "" {
		ips = []string{f.podIP}
	}
	return waypoint.Run(ctx, waypoint.Options{RouterOptions: l7xds.RouterOptions{
		XDSAddress: f.xdsAddress, XDSDialOptions: id.XDSDial,
		Namespace: f.namespace, Name: f.name, Pod: f.pod, IPs: ips, Version: version.Version,
		SVID: id.SVID, Bundle: id.Bundle,
		AdminAddress: f.adminAddr, HealthAddress: f.healthAddr,
		AccessLog: env.Streams.Out, Logf: logf,
	}, HBONEAddress: f.hboneAddr})
}
