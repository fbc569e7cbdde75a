// Package waypointrun is `meshlab waypoint run`, the process of a waypoint Deployment: it gets the
// waypoint's certificate (from the control plane's CA, or from PEM files in --cert-dir), follows its Envoy
// config over ADS and runs dataplane/waypoint: HBONE on 15008, admin on 127.0.0.1:15000, /healthz/ready on
// 15021. Access-log lines go to stdout.
//
// Certificate seam: the waypoint needs an x509svid.Source and a trust bundle. With --cert-dir they are
// read once from cert-chain.pem, key.pem and root-cert.pem (Istio's file names; written by a test, or by
// anything that fetches certificates on the waypoint's behalf). Without it, an svidsource.Source signs
// through the control plane's CA with the pod's projected token and rotates the certificate itself.
package waypointrun

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/controlplane/ca"
	"github.com/meshlab/meshlab/controlplane/ca/caservice"
	"github.com/meshlab/meshlab/controlplane/ca/svidsource"
	"github.com/meshlab/meshlab/dataplane/admin"
	"github.com/meshlab/meshlab/dataplane/waypoint"
	"github.com/meshlab/meshlab/version"
)

// Files read from --cert-dir.
const (
	CertChainFile = "cert-chain.pem"
	KeyFile       = "key.pem"
	RootCertFile  = "root-cert.pem"
)

// Default paths inside the waypoint pod (the same mounts as ztunnel's).
const (
	DefaultTokenPath    = "/var/run/secrets/tokens/istio-token"
	DefaultRootCertPath = "/var/run/secrets/istio/" + caservice.RootConfigMapKey
)

type flagpole struct {
	xdsAddress     string
	xdsPlaintext   bool
	caAddress      string
	namespace      string
	name           string
	serviceAccount string
	podIP          string
	certDir        string
	tokenPath      string
	rootCert       string
	hboneAddr      string
	adminAddr      string
	healthAddr     string
}

// NewCommand returns the `waypoint` parent with `run` under it. Another package may own the parent
// later (`waypoint generate|apply|list|delete`); it then adds NewRunCommand itself.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "waypoint",
		Short: "Waypoint proxies",
		Args:  cliutil.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(NewRunCommand(env))
	return cmd
}

// NewRunCommand returns `waypoint run`.
func NewRunCommand(env cliutil.Env) *cobra.Command {
	f := &flagpole{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a waypoint proxy (the waypoint Deployment's process)",
		Long: `Runs a waypoint: terminates HBONE on 15008, executes the L7 config the control plane sends over ADS
(routes, weighted clusters, retries, timeouts, fault injection, L7 authorization) and forwards to
endpoints over HBONE. Admin on 127.0.0.1:15000 (/config_dump, /clusters, /stats/prometheus, /ready),
readiness on :15021/healthz/ready.

Flags fall back to the environment: POD_NAMESPACE (--namespace), WAYPOINT_NAME (--name),
INSTANCE_IP (--pod-ip), XDS_ADDRESS (--xds-address), CA_ADDRESS (--ca-address).`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runE(ctx, env, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.xdsAddress, "xds-address", envOr("XDS_ADDRESS", caservice.DefaultAddress), "control plane ADS address")
	fl.BoolVar(&f.xdsPlaintext, "xds-plaintext", false, "talk to the ADS server without TLS (local test servers)")
	fl.StringVar(&f.caAddress, "ca-address", envOr("CA_ADDRESS", caservice.DefaultAddress), "control plane CA address (TLS); unused with --cert-dir")
	fl.StringVar(&f.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the waypoint's namespace")
	fl.StringVar(&f.name, "name", os.Getenv("WAYPOINT_NAME"), "the waypoint's name (its Gateway)")
	fl.StringVar(&f.serviceAccount, "service-account", "", "the waypoint's service account (default: --name)")
	fl.StringVar(&f.podIP, "pod-ip", os.Getenv("INSTANCE_IP"), "the waypoint pod's IP, sent as node metadata")
	fl.StringVar(&f.certDir, "cert-dir", "", "read "+CertChainFile+", "+KeyFile+" and "+RootCertFile+" from this directory instead of asking the CA")
	fl.StringVar(&f.tokenPath, "token-path", DefaultTokenPath, "projected service-account token shown to the CA")
	fl.StringVar(&f.rootCert, "root-cert", DefaultRootCertPath, "the mesh root certificate (PEM), without --cert-dir")
	fl.StringVar(&f.hboneAddr, "hbone-address", ":15008", "HBONE listener")
	fl.StringVar(&f.adminAddr, "admin-address", admin.DefaultAddress, `admin listener ("off" disables it)`)
	fl.StringVar(&f.healthAddr, "health-address", admin.DefaultHealthAddress, `readiness listener ("off" disables it)`)
	return cmd
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func runE(ctx context.Context, env cliutil.Env, f *flagpole) error {
	if f.namespace == "" || f.name == "" {
		return cliutil.Usagef("--namespace and --name are required (or POD_NAMESPACE and WAYPOINT_NAME)")
	}
	if f.serviceAccount == "" {
		f.serviceAccount = f.name
	}
	logf := func(format string, args ...any) { env.Logger.Infof(format, args...) }
	svid, roots, closeCerts, err := certificates(ctx, f, logf)
	if err != nil {
		return err
	}
	defer closeCerts()
	bundle := x509bundle.FromX509Authorities(ca.DefaultTrustDomain, roots)

	var dial []grpc.DialOption
	if f.xdsPlaintext {
		dial = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	} else {
		dial = []grpc.DialOption{tlsDialOption(roots, svid)}
	}
	var ips []string
	if f.podIP != "" {
		ips = []string{f.podIP}
	}
	w, err := waypoint.New(waypoint.Options{
		XDSAddress: f.xdsAddress, XDSDialOptions: dial,
		Namespace: f.namespace, Name: f.name, IPs: ips, Version: version.Version,
		SVID: svid, Bundle: bundle,
		HBONEAddress: f.hboneAddr, AdminAddress: f.adminAddr, HealthAddress: f.healthAddr,
		AccessLog: env.Streams.Out, Logf: logf,
	})
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	logf("waypoint %s/%s serving HBONE on %s, xDS from %s", f.namespace, f.name, f.hboneAddr, f.xdsAddress)
	<-ctx.Done()
	return w.Close()
}

// certificates returns the waypoint's SVID source and the trust roots, from --cert-dir or the CA.
func certificates(ctx context.Context, f *flagpole, logf func(string, ...any)) (x509svid.Source, []*x509.Certificate, func(), error) {
	if f.certDir != "" {
		svid, err := x509svid.Load(filepath.Join(f.certDir, CertChainFile), filepath.Join(f.certDir, KeyFile))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("loading the waypoint certificate from %s: %w", f.certDir, err)
		}
		roots, err := caservice.LoadRoots(filepath.Join(f.certDir, RootCertFile))
		if err != nil {
			return nil, nil, nil, err
		}
		return svid, roots, func() {}, nil
	}
	roots, err := caservice.LoadRoots(f.rootCert)
	if err != nil {
		return nil, nil, nil, err
	}
	conn, err := caservice.Dial(f.caAddress, caservice.ClientTLSConfig(roots, caservice.ServerName, caservice.ControlPlaneID, nil))
	if err != nil {
		return nil, nil, nil, err
	}
	id, err := ca.WorkloadID(ca.DefaultTrustDomain, f.namespace, f.serviceAccount)
	if err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	var src *svidsource.Source
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		src, err = svidsource.New(ctx, caservice.NewClient(conn, f.tokenPath), id, svidsource.WithLogf(logf))
		if err == nil {
			break
		}
		logf("fetching the waypoint certificate from %s: %v; retrying in %v", f.caAddress, err, delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			conn.Close()
			return nil, nil, nil, ctx.Err()
		}
	}
	return src, roots, func() { src.Close(); conn.Close() }, nil
}
