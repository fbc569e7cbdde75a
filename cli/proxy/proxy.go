// Package proxy is `meshlab proxy sidecar` and `meshlab proxy router` (router.go: an ingress gateway's
// process, dataplane/gateway). `proxy sidecar` is the istio-proxy container of an injected pod: it gets the pod's
// certificate from the control plane's CA (the projected istio-ca token, verified by TokenReview), follows
// the sidecar config over ADS (node id sidecar/NAMESPACE/POD) and runs dataplane/sidecar: outbound capture
// on 15001, inbound capture on 15006, HBONE on 15008, admin on 127.0.0.1:15000, /healthz/ready on 15021 and
// /stats/prometheus on 15090. Access-log lines go to stdout.
//
// It reads what the injection template gives it: POD_NAME, POD_NAMESPACE, INSTANCE_IP, SERVICE_ACCOUNT,
// CA_ADDR and DISCOVERY_ADDRESS, the token at /var/run/secrets/tokens/istio-token and the mesh root at
// /var/run/secrets/istio/root-cert.pem. It writes nothing to disk (the root filesystem is read-only), and
// runs as uid 1337 so that the init container's rules leave its own connections alone.
package proxy

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/dataplane/admin"
	"github.com/meshlab/meshlab/dataplane/proxyboot"
	"github.com/meshlab/meshlab/dataplane/sidecar"
	"github.com/meshlab/meshlab/version"
)

type flagpole struct {
	xdsAddress               string
	xdsPlaintext             bool
	certs                    proxyboot.CertSource
	namespace, pod, podIP    string
	sa                       string
	outbound, inbound, hbone string
	adminAddr, health, stats string
}

// NewCommand returns `proxy` with `sidecar` and `router` under it.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Mesh proxies run by pods",
		Args:  cliutil.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(NewSidecarCommand(env), NewRouterCommand(env))
	return cmd
}

// NewSidecarCommand returns `proxy sidecar`.
func NewSidecarCommand(env cliutil.Env) *cobra.Command {
	f := &flagpole{}
	cmd := &cobra.Command{
		Use:   "sidecar",
		Short: "Run a sidecar proxy (the istio-proxy container of an injected pod)",
		Long: `Runs the sidecar of an injected pod: outbound capture on 15001 (routes, retries, weighted clusters
from the control plane's sidecar config), inbound capture on 15006 (plaintext, delivered to the app from
127.0.0.6), mTLS between mesh workloads as HBONE on 15008 (to and from other sidecars and ztunnel).
Admin on 127.0.0.1:15000 (/config_dump, /clusters, /stats/prometheus), readiness on :15021/healthz/ready,
Prometheus stats on :15090/stats/prometheus.

Flags fall back to the environment the injection template sets: POD_NAMESPACE, POD_NAME, INSTANCE_IP,
SERVICE_ACCOUNT, CA_ADDR and DISCOVERY_ADDRESS. Run it as uid 1337: the capture rules exempt that uid.`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runE(ctx, env, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.xdsAddress, "xds-address", cliutil.EnvOr("DISCOVERY_ADDRESS", mesh.XDSAddress), "control plane ADS address")
	fl.BoolVar(&f.xdsPlaintext, "xds-plaintext", false, "talk to the ADS server without TLS (local test servers)")
	fl.StringVar(&f.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the pod's namespace")
	fl.StringVar(&f.pod, "pod", os.Getenv("POD_NAME"), "the pod's name")
	fl.StringVar(&f.podIP, "pod-ip", os.Getenv("INSTANCE_IP"), "the pod's IP")
	fl.StringVar(&f.sa, "service-account", cliutil.EnvOr("SERVICE_ACCOUNT", "default"), "the pod's service account (its identity)")
	cliutil.AddCertFlags(cmd, &f.certs, cliutil.EnvOr("CA_ADDR", mesh.XDSAddress))
	fl.StringVar(&f.outbound, "outbound-address", fmt.Sprintf("0.0.0.0:%d", sidecar.OutboundPort), "outbound capture listener")
	fl.StringVar(&f.inbound, "inbound-address", fmt.Sprintf("0.0.0.0:%d", sidecar.InboundPort), "inbound capture listener")
	fl.StringVar(&f.hbone, "hbone-address", "0.0.0.0:15008", "HBONE listener")
	fl.StringVar(&f.adminAddr, "admin-address", admin.DefaultAddress, `admin listener ("off" disables it)`)
	fl.StringVar(&f.health, "health-address", admin.DefaultHealthAddress, `readiness listener ("off" disables it)`)
	fl.StringVar(&f.stats, "stats-address", sidecar.StatsAddress, `Prometheus listener ("off" disables it)`)
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, f *flagpole) error {
	if f.namespace == "" || f.pod == "" {
		return cliutil.Usagef("--namespace and --pod are required (or POD_NAMESPACE and POD_NAME)")
	}
	logf := func(format string, args ...any) { env.Logger.Infof(format, args...) }
	id, err := f.certs.Boot(ctx, "sidecar", f.namespace, f.sa, f.xdsPlaintext, logf)
	if err != nil {
		return err
	}
	defer id.Close()
	var ips []string
	if f.podIP != "" {
		ips = []string{f.podIP}
	}
	s, err := sidecar.New(sidecar.Options{
		XDSAddress: f.xdsAddress, XDSDialOptions: id.XDSDial,
		Namespace: f.namespace, Pod: f.pod, IPs: ips, Version: version.Version,
		SVID: id.SVID, Bundle: id.Bundle,
		OutboundAddress: f.outbound, InboundAddress: f.inbound, HBONEAddress: f.hbone,
		AdminAddress: f.adminAddr, HealthAddress: f.health, StatsAddress: f.stats,
		AccessLog: env.Streams.Out, Logf: logf,
	})
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	logf("sidecar %s/%s (%s) capturing on %s and %s, HBONE on %s, xDS from %s", f.namespace, f.pod, f.podIP, f.outbound, f.inbound, f.hbone, f.xdsAddress)
	<-ctx.Done()
	return s.Close()
}
