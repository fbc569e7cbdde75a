// Package app assembles a ztunnel process, as ztunnel's own app.rs does: certificates from the control
// plane's CA (its own, and each local workload's by impersonation), the workload API over Delta ADS, the
// enrolment agent for the node's ambient pods, and the admin (/config_dump), stats (/stats/prometheus) and
// health (/healthz/ready) listeners. `meshlab ztunnel` and the cross-plane integration tests both run it.
package app

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/vishvananda/netns"
	"k8s.io/client-go/kubernetes"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/dataplane/capture"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/dataplane/ztunnel/agent"
	"github.com/meshlab/meshlab/dataplane/ztunnel/configdump"
	"github.com/meshlab/meshlab/dataplane/ztunnel/workloadxds"
	"github.com/meshlab/meshlab/identity"
	"github.com/meshlab/meshlab/identity/ca"
	"github.com/meshlab/meshlab/identity/caclient"
	"github.com/meshlab/meshlab/identity/svidsource"
	"github.com/meshlab/meshlab/version"
)

// Where the DaemonSet mounts ztunnel's inputs, and its ports, as Istio's ztunnel chart has them.
const (
	TokenPath    = "/var/run/secrets/tokens/istio-token"
	RootCertPath = "/var/run/secrets/istio/" + mesh.RootConfigMapKey
	NetnsDir     = "/var/run/netns"
	AdminPort    = 15000 // loopback: /config_dump
	StatsPort    = 15020 // /stats/prometheus
	HealthPort   = 15021 // /healthz/ready
)

// Options is what one ztunnel process needs. Empty listener addresses turn that listener off.
type Options struct {
	Node           string
	PodName, PodIP string // ztunnel's pod; when both are set its xDS node ID is Istio's form (workloadxds.IstioNodeID)
	Namespace      string // ztunnel's own namespace (its identity's)
	ServiceAccount string // ztunnel's own service account
	XDSAddress     string
	CAAddress      string
	TokenPath      string
	RootCert       string
	Kube           kubernetes.Interface // pods and namespaces of the node, for the agent
	Netns          *agent.NetnsFinder
	AdminAddress   string
	StatsAddress   string
	HealthAddress  string
	SVIDTTL        time.Duration // lifetime asked for workload certificates (0: the CA's default)
	CleanupOnExit  bool          // remove every pod's capture on exit
	AccessLog      io.Writer     // access-log lines; counted into the istio_tcp_* metrics on the way
	Logf           func(format string, args ...any)
}

// Run runs ztunnel until ctx ends or a part of it fails.
func Run(ctx context.Context, o Options) error {
	logf := o.Logf
	roots, err := identity.LoadRoots(o.RootCert)
	if err != nil {
		return err
	}
	bundle := x509bundle.FromX509Authorities(mesh.TrustDomain, roots)

	// The CA first (token only), then ztunnel's own SVID, which the xDS connection presents.
	caConn, err := caclient.Dial(o.CAAddress, caclient.ClientTLSConfig(roots, mesh.ServerName, mesh.ControlPlaneID, nil))
	if err != nil {
		return err
	}
	defer caConn.Close()
	caClient := caclient.NewClient(caConn, o.TokenPath)
	ownID, err := ca.WorkloadID(mesh.TrustDomain, o.Namespace, o.ServiceAccount)
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
	xdsConn, err := caclient.Dial(o.XDSAddress, caclient.ClientTLSConfig(roots, mesh.ServerName, mesh.ControlPlaneID, own))
	if err != nil {
		return err
	}
	defer xdsConn.Close()

	certOpts := []svidsource.Option{svidsource.WithLogf(logf)}
	if o.SVIDTTL > 0 {
		certOpts = append(certOpts, svidsource.WithTTL(o.SVIDTTL))
	}
	certs := ztunnel.NewCerts(caClient, certOpts...)
	defer certs.Close()
	var z *ztunnel.Ztunnel
	m := newMetrics(o.AccessLog, func() []ztunnel.Connection { return z.Connections() })
	z, err = ztunnel.New(ztunnel.Options{Node: o.Node, Certs: certs, Bundle: bundle, AccessLog: m, Logf: logf})
	if err != nil {
		return err
	}
	if o.CleanupOnExit {
		defer z.Close()
	}

	var xc *workloadxds.Client
	ag, err := agent.New(agent.Options{
		Client: o.Kube, Node: o.Node, Proxy: z, Netns: o.Netns, Logf: logf,
		Ready: func(uid string, ip netip.Addr) bool {
			return slices.ContainsFunc(xc.Config().Workloads, func(w ztunnel.Workload) bool { return w.UID == uid && w.IP == ip })
		},
		RemoveRules: func(ns netns.NsHandle) error { return capture.Remove(ns, capture.Config{}) },
	})
	if err != nil {
		return err
	}
	xc, err = workloadxds.New(workloadxds.Options{
		Conn: xdsConn, Node: o.Node, ID: nodeID(o), Metadata: map[string]string{"NAMESPACE": o.Namespace, "MESHLAB_VERSION": version.Version},
		Apply: z.SetConfig, OnApplied: func(ztunnel.Config) { ag.Resync() }, Logf: logf,
	})
	if err != nil {
		return err
	}

	settings := dumpConfig(o, ownID.String())
	build := func() configdump.Dump {
		addrs, authz := xc.Resources()
		return configdump.Build(configdump.Sources{Node: o.Node, Addresses: addrs, Authorizations: authz,
			SVIDs: append(certs.Certificates(), svidOf(own)...), Roots: roots, Connections: z.Connections(),
			Enrolled: ag.Enrolled(), XDS: xc.Status(), Config: settings, Version: buildInfo()})
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	servers := []*http.Server{
		{Addr: o.AdminAddress, Handler: adminMux(build)},
		{Addr: o.StatsAddress, Handler: statsMux(reg)},
		{Addr: o.HealthAddress, Handler: healthMux(func() error {
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
		if s.Addr == "" {
			continue
		}
		lis, err := net.Listen("tcp", s.Addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", s.Addr, err)
		}
		go func() { errc <- s.Serve(lis) }()
		defer s.Close()
	}
	go func() { errc <- xc.Run(ctx) }()
	go func() { errc <- ag.Run(ctx) }()
	logf("ztunnel on %s: xDS %s, CA %s, identity %s", o.Node, o.XDSAddress, o.CAAddress, ownID)
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

// dumpConfig is the config dump's "config": ztunnel's names for the settings this process runs with.
func dumpConfig(o Options, ownID string) configdump.Config {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	addr := func(s string) *configdump.SocketAddress {
		if s == "" {
			return nil
		}
		return &configdump.SocketAddress{SocketAddr: s}
	}
	pc := capture.DefaultConfig()
	ttl := o.SVIDTTL
	if ttl <= 0 {
		ttl = ca.DefaultTTL // what the CA issues when not asked otherwise
	}
	return configdump.Config{
		AdminAddr: addr(o.AdminAddress), CAAddress: opt(o.CAAddress), CARootCert: configdump.RootCert{File: o.RootCert},
		ClusterDomain: "cluster.local", ClusterID: "Kubernetes",
		// In-pod listeners, opened in every served pod's network namespace (dataplane/capture).
		InboundAddr:          fmt.Sprintf("0.0.0.0:%d", pc.HBONEPort),
		InboundPlaintextAddr: fmt.Sprintf("0.0.0.0:%d", pc.InboundPlaintextPort),
		OutboundAddr:         fmt.Sprintf("127.0.0.1:%d", pc.OutboundPort),
		LocalNode:            opt(o.Node), Proxy: true, ProxyMode: "Shared", ReadinessAddr: addr(o.HealthAddress),
		SecretTTL: configdump.DurationOf(ttl), StatsAddr: addr(o.StatsAddress), XDSAddress: opt(o.XDSAddress),
		XDSRootCert: configdump.RootCert{File: o.RootCert}, ZtunnelIdentity: opt(ownID),
		ZtunnelWorkload: &configdump.WorkloadInfo{Namespace: o.Namespace, ServiceAccount: o.ServiceAccount},
	}
}

// buildInfo is the config dump's "version". RustVersion carries the Go version.
func buildInfo() configdump.BuildInfo {
	v := version.String()
	return configdump.BuildInfo{
		BuildProfile: "release", BuildStatus: "Clean", CryptoProvider: "go", GitRevision: v,
		IstioVersion: cmp.Or(os.Getenv("ISTIO_META_ISTIO_VERSION"), "unknown"), RustVersion: runtime.Version(), Version: v,
	}
}

// svidOf is the source's current SVID, if it has one, for the dump's certificate list.
func svidOf(s *svidsource.Source) []*x509svid.SVID {
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

func adminMux(build func() configdump.Dump) http.Handler {
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

// nodeID is ztunnel's xDS node ID: Istio's form when the pod is known, else workloadxds' default.
func nodeID(o Options) string {
	if o.PodName == "" || o.PodIP == "" {
		return ""
	}
	return workloadxds.IstioNodeID(o.PodIP, o.PodName, o.Namespace)
}
