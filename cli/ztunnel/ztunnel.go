// Package ztunnel is `meshlab ztunnel`, the process of the ztunnel DaemonSet: it gets certificates from the
// control plane's CA (its own, and each local workload's by impersonation), follows the workload API over
// Delta ADS, enrols the node's ambient pods, and serves admin (15000, loopback: /config_dump), stats
// (15020: /stats/prometheus) and health (15021: /healthz/ready). xDS and the CA share the control plane's
// TLS listener meshlab-controlplane.meshlab-system.svc:15012, as istiod's do.
package ztunnel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/vishvananda/netns"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ztunnel/dump"
	"github.com/meshlab/meshlab/dataplane/capture"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/dataplane/ztunnel/agent"
	"github.com/meshlab/meshlab/dataplane/ztunnel/deploy"
	ztxds "github.com/meshlab/meshlab/dataplane/ztunnel/xds"
	"github.com/meshlab/meshlab/identity"
	"github.com/meshlab/meshlab/identity/ca"
	"github.com/meshlab/meshlab/identity/caclient"
	"github.com/meshlab/meshlab/identity/svidsource"
	"github.com/meshlab/meshlab/version"
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
Reads NODE_NAME and POD_NAMESPACE from the environment (the DaemonSet sets them).`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runE(ctx, env, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.xdsAddress, "xds-address", mesh.XDSAddress, "control plane xDS address (TLS)")
	fl.StringVar(&f.caAddress, "ca-address", mesh.XDSAddress, "control plane CA address (TLS); the same listener as xDS by default")
	fl.StringVar(&f.tokenPath, "token-path", deploy.TokenPath, "projected service-account token (audience istio-ca)")
	fl.StringVar(&f.rootCert, "root-cert", deploy.RootCertPath, "the mesh root certificate (PEM)")
	fl.StringVar(&f.netnsDir, "netns-dir", deploy.NetnsDir, "where the node's pod network namespaces are")
	fl.StringVar(&f.serviceAccount, "service-account", deploy.Name, "ztunnel's own service account")
	fl.StringVar(&f.adminAddr, "admin-address", fmt.Sprintf("127.0.0.1:%d", deploy.AdminPort), "admin listener (config dump)")
	fl.StringVar(&f.statsAddr, "stats-address", fmt.Sprintf(":%d", deploy.StatsPort), "Prometheus listener")
	fl.StringVar(&f.healthAddr, "health-address", fmt.Sprintf(":%d", deploy.HealthPort), "readiness listener")
	fl.DurationVar(&f.svidTTL, "svid-ttl", 0, "lifetime asked for workload certificates (0: the CA's default)")
	fl.BoolVar(&f.cleanupOnExit, "cleanup-on-exit", false, "remove every pod's capture on exit (by default pods stay captured, as in Istio, and the next ztunnel takes them over)")
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, f *flagpole) error {
	log := env.Logger
	node, podNS := os.Getenv("NODE_NAME"), os.Getenv("POD_NAMESPACE")
	if node == "" {
		return cliutil.Usagef("NODE_NAME is not set (the DaemonSet sets it from spec.nodeName)")
	}
	if podNS == "" {
		podNS = deploy.Namespace
	}
	roots, err := identity.LoadRoots(f.rootCert)
	if err != nil {
		return err
	}
	bundle := x509bundle.FromX509Authorities(mesh.TrustDomain, roots)
	logf := func(format string, args ...any) { log.Infof(format, args...) }

	// The CA first (token only), then ztunnel's own SVID, which the xDS connection presents.
	caConn, err := caclient.Dial(f.caAddress, caclient.ClientTLSConfig(roots, mesh.ServerName, mesh.ControlPlaneID, nil))
	if err != nil {
		return err
	}
	defer caConn.Close()
	caClient := caclient.NewClient(caConn, f.tokenPath)
	ownID, err := ca.WorkloadID(mesh.TrustDomain, podNS, f.serviceAccount)
	if err != nil {
		return err
	}
	own, err := retry(ctx, logf, "fetching ztunnel's own certificate", func() (*svidsource.Source, error) {
		return svidsource.New(ctx, caClient, ownID, svidsource.WithLogf(logf))
	})
	if err != nil {
		return err
	}
	defer own.Close()
	xdsConn, err := caclient.Dial(f.xdsAddress, caclient.ClientTLSConfig(roots, mesh.ServerName, mesh.ControlPlaneID, own))
	if err != nil {
		return err
	}
	defer xdsConn.Close()

	var certOpts []svidsource.Option
	if f.svidTTL > 0 {
		certOpts = append(certOpts, svidsource.WithTTL(f.svidTTL))
	}
	certs := ztunnel.NewCerts(caClient, append(certOpts, svidsource.WithLogf(logf))...)
	defer certs.Close()
	var z *ztunnel.Ztunnel
	m := newMetrics(env.Streams.Out, func() []ztunnel.Connection { return z.Connections() })
	z, err = ztunnel.New(ztunnel.Options{Node: node, Certs: certs, Bundle: bundle, AccessLog: m, Logf: logf})
	if err != nil {
		return err
	}
	if f.cleanupOnExit {
		defer z.Close()
	}

	restCfg, err := rest.InClusterConfig()
	if err != nil {
		return fmt.Errorf("reading in-cluster config: %w", err)
	}
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("creating Kubernetes client: %w", err)
	}
	var xc *ztxds.Client
	ag, err := agent.New(agent.Options{
		Client: kube, Node: node, Proxy: z, Netns: &agent.NetnsFinder{Dir: f.netnsDir}, Logf: logf,
		Ready: func(uid string, ip netip.Addr) bool {
			return slices.ContainsFunc(xc.Config().Workloads, func(w ztunnel.Workload) bool { return w.UID == uid && w.IP == ip })
		},
		RemoveRules: func(ns netns.NsHandle) error { return capture.Remove(ns, capture.Config{}) },
	})
	if err != nil {
		return err
	}
	xc, err = ztxds.New(ztxds.Options{
		Conn: xdsConn, Node: node, Metadata: map[string]string{"NAMESPACE": podNS, "MESHLAB_VERSION": version.Version},
		Apply: z.SetConfig, OnApplied: func(ztunnel.Config) { ag.Resync() }, Logf: logf,
	})
	if err != nil {
		return err
	}

	build := func() dump.Dump {
		return dump.Build(dump.Sources{Node: node, Config: xc.Config(), SVIDs: append(certs.Certificates(), mustSVID(own)...),
			Roots: roots, Connections: z.Connections(), Enrolled: ag.Enrolled(), XDS: xc.Status()})
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	servers := []*http.Server{
		{Addr: f.adminAddr, Handler: adminMux(build)},
		{Addr: f.statsAddr, Handler: statsMux(reg)},
		{Addr: f.healthAddr, Handler: healthMux(func() error {
			switch {
			case !xc.Status().Synced:
				return errors.New("workload API not synced")
			case !ag.Synced():
				return errors.New("pods not listed yet")
			}
			return nil
		})},
	}
	errc := make(chan error, len(servers)+2)
	for _, s := range servers {
		lis, err := net.Listen("tcp", s.Addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", s.Addr, err)
		}
		go func() { errc <- s.Serve(lis) }()
		defer s.Close()
	}
	go func() { errc <- xc.Run(ctx) }()
	go func() { errc <- ag.Run(ctx) }()
	log.Infof("ztunnel on %s: xDS %s, CA %s, identity %s", node, f.xdsAddress, f.caAddress, ownID)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
}

func mustSVID(s *svidsource.Source) []*x509svid.SVID {
	svid, err := s.GetX509SVID()
	if err != nil {
		return nil
	}
	return []*x509svid.SVID{svid}
}

// retry calls fn until it succeeds or ctx ends, backing off up to 10s (the control plane may start later).
func retry[T any](ctx context.Context, logf func(string, ...any), what string, fn func() (T, error)) (T, error) {
	wait := 500 * time.Millisecond
	for {
		v, err := fn()
		if err == nil {
			return v, nil
		}
		logf("%s (retrying in %v): %v", what, wait, err)
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

func adminMux(build func() dump.Dump) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/config_dump", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, build()) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "meshlab ztunnel admin: /config_dump")
	})
	return mux
}

func statsMux(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux.Handle("/stats/prometheus", h)
	mux.Handle("/metrics", h)
	return mux
}

func healthMux(ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz/ready", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
