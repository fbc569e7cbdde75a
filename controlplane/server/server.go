// Package server is the control plane process (`meshlab controlplane`): it wires the journey of a config
// change end to end —
//
//	informers (controlplane/kube) -> ingest.Store -> xdsgen.PushRequestFor -> xds.Server debounce
//	-> xdsgen.Prepare (one model.Snapshot per full push) -> status writer (problems on objects)
//	-> xdsgen.Affects/Generate per proxy -> ADS streams
//
// — and serves it: gRPC with TLS on :15012 (xDS, plus whatever Options.RegisterGRPC adds, such as the CA
// service), plain gRPC on :15010 (xDS, for tests and debugging), and HTTP on :15014 (/debug/syncz,
// /debug/config_dump?proxy=ID, /metrics, /ready, /debug/problems). Both gRPC listeners also answer
// Istio's debug types (istio.io/debug/syncz and config_dump, for istioctl) as DebugAccess allows. It also
// keeps the CA root in Secret meshlab-ca, publishes it as ConfigMap istio-ca-root-cert in every namespace,
// and runs the waypoint controller.
//
// One replica runs; there is no leader election. Everything it writes (status, waypoint objects,
// ConfigMaps) converges by comparing with what is there, so a restarted or briefly doubled control plane
// does no harm.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/meshlab/meshlab/controlplane/caserver"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/kube"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/waypoints"
	"github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/controlplane/xdsgen"
	"github.com/meshlab/meshlab/identity/ca"
)

// Defaults of the listeners and names.
const (
	DefaultGRPCAddr      = ":15012"
	DefaultPlainGRPCAddr = ":15010"
	DefaultHTTPAddr      = ":15014"
	DefaultNamespace     = "istio-system"
	// ServiceAccount is the control plane's identity, and its serving certificate's SPIFFE ID's last part.
	ServiceAccount = "istiod"
)

// Options configure the control plane.
type Options struct {
	GRPCAddr      string // TLS gRPC (xDS + RegisterGRPC); empty disables it
	PlainGRPCAddr string // plaintext gRPC (xDS only); empty disables it
	HTTPAddr      string // debug and readiness HTTP; empty disables it
	Namespace     string // where the CA Secret lives
	ID            string // instance name shown by proxy-status (the pod name)

	DebounceQuiet, DebounceMax time.Duration
	PushConcurrency            int
	SyncTimeout                time.Duration // how long informers may take to list everything

	// Image runs waypoints; empty disables the waypoint controller.
	Image string
	// ControlPlaneAddress is what waypoint pods are told to dial (default waypoints.DefaultControlPlaneAddress).
	ControlPlaneAddress string
	// RootResync is how often the CA root ConfigMaps are checked besides namespace events.
	RootResync time.Duration

	// RegisterGRPC adds services to the TLS gRPC server (e.g. the CA service); each gets the control
	// plane's CA. Called once, before serving.
	RegisterGRPC []func(g *grpc.Server, c *ca.CA)
	// TLSConfig, when set, replaces the default serving config (ServingTLS).
	TLSConfig func(ctx context.Context, c *ca.CA) (*tls.Config, error)
	// Authenticator checks the bearer tokens of debug xDS requests on the TLS listener (istioctl's; see
	// DebugAccess). Default: a TokenReview for audience istio-ca.
	Authenticator caserver.Authenticator

	Logf func(string, ...any)
}

func (o *Options) defaults() {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.ID == "" {
		o.ID = ServiceAccount
	}
	if o.DebounceQuiet == 0 && o.DebounceMax == 0 {
		o.DebounceQuiet, o.DebounceMax = xds.DefaultDebounceQuiet, xds.DefaultDebounceMax
	}
	if o.PushConcurrency == 0 {
		o.PushConcurrency = xds.DefaultConcurrency
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = 2 * time.Minute
	}
	if o.RootResync == 0 {
		o.RootResync = time.Minute
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Server is one control plane.
type Server struct {
	opts      Options
	clients   *kube.Clients
	store     *ingest.Store
	gen       *xdsgen.Generator
	xds       *xds.Server
	informers *kube.Informers
	status    *kube.StatusWriter
	waypoints *waypoints.Controller
	ready     atomic.Bool

	mu    sync.Mutex
	addrs map[string]net.Addr
	ca    *ca.CA
}

// New wires a control plane over clients; Run starts it.
func New(clients *kube.Clients, opts Options) *Server {
	opts.defaults()
	s := &Server{opts: opts, clients: clients, store: ingest.NewStore(), addrs: map[string]net.Addr{}}
	s.gen = xdsgen.New(s.store, xdsgen.WithLogf(opts.Logf))
	if opts.Authenticator == nil {
		opts.Authenticator = caserver.TokenReviewer{Client: clients.Kube}
	}
	s.xds = xds.NewServer(s.gen,
		xds.WithDebugAuthorizer(DebugAccess(opts.Authenticator, opts.Namespace)),
		xds.WithCache(s.gen.Cache()),
		xds.WithDebounce(opts.DebounceQuiet, opts.DebounceMax),
		xds.WithConcurrency(opts.PushConcurrency),
		xds.WithID(opts.ID),
		xds.WithLogf(opts.Logf))
	s.status = kube.NewStatusWriter(clients, s.store, opts.Logf)
	s.gen.OnSnapshot(s.status.Report)
	s.store.OnChange(func(ev ingest.Event) {
		if req := s.gen.PushRequestFor(ev); req != nil {
			s.xds.ConfigUpdate(req)
		}
	})
	s.informers = kube.NewInformers(clients, s.store, opts.Logf)
	if opts.Image != "" {
		s.waypoints = waypoints.New(clients.Kube, clients.Gateway, s.informers.Kube, s.informers.Gateway,
			waypoints.Options{Image: opts.Image, ControlPlaneAddress: opts.ControlPlaneAddress, Logf: opts.Logf})
	}
	return s
}

// Store, Generator, XDS and StatusWriter expose the wired parts (tests, benchmarks, debug).
func (s *Server) Store() *ingest.Store             { return s.store }
func (s *Server) Generator() *xdsgen.Generator     { return s.gen }
func (s *Server) XDS() *xds.Server                 { return s.xds }
func (s *Server) StatusWriter() *kube.StatusWriter { return s.status }
func (s *Server) Informers() *kube.Informers       { return s.informers }
func (s *Server) Ready() bool                      { return s.ready.Load() }

// CA returns the control plane's CA once Run loaded it.
func (s *Server) CA() *ca.CA {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ca
}

// Addr returns the bound address of a listener ("grpc", "grpc-plain", "http") once Run bound it.
func (s *Server) Addr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[name]
}

func (s *Server) listen(name, addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s (%s): %w", addr, name, err)
	}
	s.mu.Lock()
	s.addrs[name] = l.Addr()
	s.mu.Unlock()
	return l, nil
}

// Run serves until ctx ends. The HTTP port answers from the start (/ready is 503 until the informers have
// synced and the first snapshot is built); gRPC is served once the CA is loaded.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)

	if s.opts.HTTPAddr != "" {
		l, err := s.listen("http", s.opts.HTTPAddr)
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- serveErr("http", hs.Serve(l)) }()
		defer hs.Close()
	}

	s.xds.Start(ctx)
	go s.status.Run(ctx)
	s.informers.Start(ctx)
	if err := s.informers.WaitForSync(ctx, s.opts.SyncTimeout); err != nil {
		return err
	}
	s.opts.Logf("controlplane: informers synced, %d objects", s.store.Len())
	// One full push now builds the first snapshot even if the store saw no change since (an empty
	// cluster), so /ready and the first proxies do not wait for the debounce of a later change.
	s.xds.ConfigUpdate(xds.NewPushRequest(true, "startup"))
	if s.waypoints != nil {
		go s.waypoints.Run(ctx, 2)
	}

	c, err := s.loadCA(ctx)
	if err != nil {
		return err
	}
	go s.publishRoot(ctx, c)

	grpcOpts := []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(16 << 20),
	}
	if s.opts.GRPCAddr != "" {
		tlsCfg, err := s.tlsConfig(ctx, c)
		if err != nil {
			return err
		}
		g := grpc.NewServer(append(grpcOpts, grpc.Creds(credentials.NewTLS(tlsCfg)))...)
		s.xds.Register(g)
		for _, reg := range s.opts.RegisterGRPC {
			reg(g, c)
		}
		l, err := s.listen("grpc", s.opts.GRPCAddr)
		if err != nil {
			return err
		}
		go func() { errc <- serveErr("grpc", g.Serve(l)) }()
		defer g.Stop()
	}
	if s.opts.PlainGRPCAddr != "" {
		g := grpc.NewServer(grpcOpts...)
		s.xds.Register(g)
		l, err := s.listen("grpc-plain", s.opts.PlainGRPCAddr)
		if err != nil {
			return err
		}
		go func() { errc <- serveErr("grpc-plain", g.Serve(l)) }()
		defer g.Stop()
	}

	// Ready once the first snapshot exists: proxies connecting now get complete config.
	go func() {
		for s.gen.Snapshot() == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		s.ready.Store(true)
		s.opts.Logf("controlplane: ready")
	}()

	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

func serveErr(name string, err error) error {
	if err == nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return fmt.Errorf("serving %s: %w", name, err)
}

func (s *Server) loadCA(ctx context.Context) (*ca.CA, error) {
	var c *ca.CA
	err := retryUntil(ctx, func() error {
		var err error
		c, err = LoadOrCreateCA(ctx, s.clients.Kube, s.opts.Namespace)
		if err != nil {
			s.opts.Logf("controlplane: %v (retrying)", err)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("loading the CA: %w", err)
	}
	s.mu.Lock()
	s.ca = c
	s.mu.Unlock()
	return c, nil
}

func (s *Server) tlsConfig(ctx context.Context, c *ca.CA) (*tls.Config, error) {
	if s.opts.TLSConfig != nil {
		return s.opts.TLSConfig(ctx, c)
	}
	id, err := spiffeid.FromSegments(c.TrustDomain(), "ns", s.opts.Namespace, "sa", ServiceAccount)
	if err != nil {
		return nil, err
	}
	return ServingTLS(ctx, c, id)
}

// publishRoot keeps istio-ca-root-cert in every namespace: each namespace as its informer event
// arrives, and all of them every RootResync (which also repairs edited or deleted ConfigMaps).
func (s *Server) publishRoot(ctx context.Context, c *ca.CA) {
	names := make(chan string, 1024)
	enqueue := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok && ns.Status.Phase != corev1.NamespaceTerminating {
			select {
			case names <- ns.Name:
			default: // the next resync covers it
			}
		}
	}
	if _, err := s.informers.Kube.Core().V1().Namespaces().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, n any) { enqueue(n) },
	}); err != nil {
		s.opts.Logf("controlplane: watching namespaces for the CA root: %v", err)
	}
	t := time.NewTicker(s.opts.RootResync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ns := <-names:
			if err := PublishRoot(ctx, s.clients.Kube, []string{ns}, c.RootPEM()); err != nil {
				s.opts.Logf("controlplane: %v", err)
			}
		case <-t.C:
			var all []string
			for _, o := range s.store.List(ingest.KindNamespace) {
				if ns := o.(*corev1.Namespace); ns.Status.Phase != corev1.NamespaceTerminating {
					all = append(all, ns.Name)
				}
			}
			if err := PublishRoot(ctx, s.clients.Kube, all, c.RootPEM()); err != nil {
				s.opts.Logf("controlplane: %v", err)
			}
		}
	}
}

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	s.xds.RegisterHTTP(mux)
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready: waiting for informers and the first snapshot", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /debug/problems", func(w http.ResponseWriter, _ *http.Request) {
		snap := s.gen.Snapshot()
		out := struct {
			Version  uint64          `json:"version"`
			Problems []model.Problem `json:"problems"`
		}{Problems: []model.Problem{}}
		if snap != nil {
			out.Version = snap.Version
			out.Problems = append(out.Problems, snap.Problems...)
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	})
	return mux
}
