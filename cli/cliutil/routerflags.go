package cliutil

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/dataplane/admin"
	"github.com/meshlab/meshlab/dataplane/l7xds"
	"github.com/meshlab/meshlab/dataplane/proxyboot"
	"github.com/meshlab/meshlab/version"
)

// RouterFlags are the flags of a router proxy process (`waypoint run`, `proxy router`): where its config
// and certificate come from and who it is. Each falls back to an environment variable its Deployment sets.
type RouterFlags struct {
	xdsAddress, namespace, name, pod, podIP, serviceAccount, adminAddr, healthAddr string
	xdsPlaintext                                                                   bool
	certs                                                                          proxyboot.CertSource
}

// RouterEnv names the environment variables a router's Deployment sets, which differ between the waypoint
// and the ingress gateway templates.
type RouterEnv struct {
	Who                         string // "waypoint", "gateway": in the flags' help
	XDSAddress, CAAddress, Name string // the variables for --xds-address, --ca-address, --name
	ServiceAccount              string // the variable for --service-account; "" reads none
	DefaultServiceAccountSuffix string // the default service account is NAME+suffix
}

// Register adds the flags to cmd.
func (f *RouterFlags) Register(cmd *cobra.Command, e RouterEnv) {
	fl := cmd.Flags()
	fl.StringVar(&f.xdsAddress, "xds-address", EnvOr(e.XDSAddress, mesh.XDSAddress), "control plane ADS address")
	fl.BoolVar(&f.xdsPlaintext, "xds-plaintext", false, "talk to the ADS server without TLS (local test servers)")
	fl.StringVar(&f.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the "+e.Who+"'s namespace")
	fl.StringVar(&f.name, "name", os.Getenv(e.Name), "the "+e.Who+"'s name (its Gateway)")
	fl.StringVar(&f.pod, "pod", os.Getenv("POD_NAME"), "the "+e.Who+"'s pod (its xDS node ID names it, as istioctl lists proxies)")
	fl.StringVar(&f.podIP, "pod-ip", os.Getenv("INSTANCE_IP"), "the "+e.Who+" pod's IP, sent as node metadata")
	sa := ""
	if e.ServiceAccount != "" {
		sa = os.Getenv(e.ServiceAccount)
	}
	fl.StringVar(&f.serviceAccount, "service-account", sa, "the "+e.Who+"'s service account (default: NAME"+e.DefaultServiceAccountSuffix+")")
	AddCertFlags(cmd, &f.certs, EnvOr(e.CAAddress, mesh.XDSAddress))
	fl.StringVar(&f.adminAddr, "admin-address", admin.DefaultAddress, `admin listener ("off" disables it)`)
	fl.StringVar(&f.healthAddr, "health-address", admin.DefaultHealthAddress, `readiness listener ("off" disables it)`)
}

// Boot checks the flags, gets the router's certificate (from the CA, or --cert-dir) and returns its
// options; close releases the certificate source once the proxy has stopped.
func (f *RouterFlags) Boot(ctx context.Context, env Env, e RouterEnv) (opts l7xds.RouterOptions, close func(), err error) {
	if f.namespace == "" || f.name == "" {
		return opts, nil, Usagef("--namespace and --name are required (or POD_NAMESPACE and %s)", e.Name)
	}
	if f.serviceAccount == "" {
		f.serviceAccount = f.name + e.DefaultServiceAccountSuffix
	}
	logf := func(format string, args ...any) { env.Logger.Infof(format, args...) }
	id, err := f.certs.Boot(ctx, e.Who, f.namespace, f.serviceAccount, f.xdsPlaintext, logf)
	if err != nil {
		return opts, nil, err
	}
	var ips []string
	if f.podIP != "" {
		ips = []string{f.podIP}
	}
	return l7xds.RouterOptions{
		XDSAddress: f.xdsAddress, XDSDialOptions: id.XDSDial,
		Namespace: f.namespace, Name: f.name, Pod: f.pod, IPs: ips, Version: version.Version,
		SVID: id.SVID, Bundle: id.Bundle,
		AdminAddress: f.adminAddr, HealthAddress: f.healthAddr,
		AccessLog: env.Streams.Out, Logf: logf,
	}, func() { id.Close() }, nil
}
