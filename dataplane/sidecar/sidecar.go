// Package sidecar is meshlab's sidecar proxy, the istio-proxy container of an injected pod (`meshlab proxy
// sidecar`). It follows the sidecar config the control plane generates (controlplane/configgen/sidecar.go)
// over ADS and executes it with the same L7 engine as the waypoint (dataplane/l7):
//
//   - outbound, :15001 (virtualOutbound): the pod's connections, redirected by the init container's rules;
//     the original destination (SO_ORIGINAL_DST) picks the filter chain (service VIP and port), then the
//     HTTP route, the outbound|PORT|SUBSET|FQDN cluster and an endpoint.
//   - inbound plaintext, :15006 (virtualInbound): connections to the pod's ports from outside the mesh
//     (kubelet probes, non-mesh clients; meshlab's mode is PERMISSIVE), chosen by their original
//     destination port (inbound|PORT||), delivered to the app.
//   - inbound mTLS, :15008: HBONE (HTTP/2 CONNECT over mutual TLS 1.3 with SPIFFE SVIDs) from other sidecars
//     and from ztunnels. The peer's SPIFFE identity must be in the trust domain; it is the downstream
//     identity the inbound chains' RBAC filters and the access log see. The CONNECT target must be one of
//     the pod's own addresses. The stream then takes the same virtualInbound chains as plaintext.
//
// mTLS between workloads is HBONE, in both directions and for both kinds of peer: where Istio sidecars speak
// ISTIO_MUTUAL TLS to each other on the application port, meshlab sidecars open an HBONE stream to the
// destination pod's 15008 whenever its endpoint is envoy://connect_originate/IP:PORT. The control plane
// sends that form for every pod that terminates HBONE — injected pods (their sidecar) and ambient pods
// (ztunnel) — and a plain IP:PORT for pods outside the mesh, which are called in plaintext. So "a sidecar
// calls an ambient pod", "an ambient pod calls a sidecar" (ztunnel sees injected pods as HBONE workloads)
// and "a sidecar calls a sidecar" are one mechanism. The client checks that the server's certificate chains
// to the mesh root and names exactly the destination workload's SPIFFE ID, which its endpoint carries
// (metadata tunnel.identity); a pod with a valid certificate of another service account is refused
// (docs/security.md).
//
// Delivery to the app: the inbound clusters are ORIGINAL_DST with source 127.0.0.6 (Istio's
// InboundPassthroughBindAddress), so the proxy dials the original destination (the pod IP and port) from
// 127.0.0.6. The app therefore sees 127.0.0.6, not the caller's address (as with Istio's sidecars in
// REDIRECT mode), and the init container's rule for source 127.0.0.6 on lo leaves that connection alone.
//
// The proxy's own connections escape capture because the process runs as uid 1337 (the init container's
// owner match), not by socket marks: the container drops every capability, and SO_MARK needs NET_ADMIN.
//
// Ports besides the three above: admin on 127.0.0.1:15000 (dataplane/admin: /config_dump, /clusters,
// /stats/prometheus, /ready), :15021 /healthz/ready (ready once the initial config is complete, as with
// Envoy's init manager, and the certificate is loaded) and :15090 /stats/prometheus (Istio's http-envoy-prom).
package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/dataplane/admin"
	"github.com/meshlab/meshlab/dataplane/capture"
	"github.com/meshlab/meshlab/dataplane/hbone"
	"github.com/meshlab/meshlab/dataplane/l7"
	"github.com/meshlab/meshlab/dataplane/l7xds"
	"github.com/meshlab/meshlab/dataplane/xdsclient"
)

// Listener names the control plane uses for the sidecar (Istio's) and the capture ports.
const (
	VirtualOutbound = "virtualOutbound"
	VirtualInbound  = "virtualInbound"
	OutboundPort    = 15001
	InboundPort     = 15006
	StatsAddress    = ":15090"
	// InboundBindAddress is the source address the proxy uses towards its own app.
	InboundBindAddress = "127.0.0.6"
)

// Options configure a Sidecar.
type Options struct {
	// XDSAddress is the control plane's ADS endpoint (host:port). Required.
	XDSAddress string
	// XDSDialOptions for gRPC; nil means plaintext.
	XDSDialOptions []grpc.DialOption
	// Namespace and Pod identify the sidecar; the node id is sidecar/NAMESPACE/POD. Required.
	Namespace, Pod string
	// IPs are the pod's addresses: node metadata, and the only HBONE targets accepted.
	IPs []string
	// Version is reported to the control plane.
	Version string

	// SVID is the pod's identity, presented to peers. Required.
	SVID x509svid.Source
	// Bundle verifies peers. Required.
	Bundle x509bundle.Source
	// TrustDomain is what peers must belong to (default: the SVID's).
	TrustDomain spiffeid.TrustDomain

	// Listen addresses; "off" disables one. Defaults: outbound 0.0.0.0:15001, inbound 0.0.0.0:15006,
	// HBONE 0.0.0.0:15008, admin 127.0.0.1:15000, health :15021, stats :15090.
	OutboundAddress, InboundAddress, HBONEAddress string
	AdminAddress, HealthAddress, StatsAddress     string

	// Listen opens listeners; nil is net.Listen.
	Listen func(network, addr string) (net.Listener, error)
	// Dial opens upstream TCP connections from an optional local address; nil uses a net.Dialer.
	Dial func(ctx context.Context, local netip.Addr, addr string) (net.Conn, error)
	// OriginalDst returns a captured connection's original destination; nil is capture.OriginalDst
	// (SO_ORIGINAL_DST, REDIRECT mode).
	OriginalDst func(net.Conn) (netip.AddrPort, error)

	// AccessLog receives one line per request or TCP connection; nil discards.
	AccessLog io.Writer
	// Logf reports events and errors; nil discards.
	Logf func(format string, args ...any)
	// Registry receives the metrics; nil creates one.
	Registry *prometheus.Registry
}

// Sidecar is a running sidecar proxy.
type Sidecar struct {
	proxy *l7xds.Proxy
	opts  Options
	// upstream opens the HBONE streams to connect_originate endpoints, checking each server's identity.
	upstream *l7xds.Upstream
	reg      *prometheus.Registry
	ips      []netip.Addr

	mu        sync.Mutex
	listeners map[string]net.Listener
	servers   []*http.Server
	conns     sync.WaitGroup
	wg        sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
}

// New checks opts and builds the sidecar; Start runs it.
func New(opts Options) (*Sidecar, error) {
	if opts.XDSAddress == "" || opts.SVID == nil || opts.Bundle == nil || opts.Namespace == "" || opts.Pod == "" {
		return nil, errors.New("sidecar: XDSAddress, SVID, Bundle, Namespace and Pod are required")
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&opts.OutboundAddress, fmt.Sprintf("0.0.0.0:%d", OutboundPort))
	def(&opts.InboundAddress, fmt.Sprintf("0.0.0.0:%d", InboundPort))
	def(&opts.HBONEAddress, fmt.Sprintf("0.0.0.0:%d", mesh.HBONEPort))
	def(&opts.AdminAddress, admin.DefaultAddress)
	def(&opts.HealthAddress, admin.DefaultHealthAddress)
	def(&opts.StatsAddress, StatsAddress)
	if opts.Listen == nil {
		opts.Listen = net.Listen
	}
	if opts.Dial == nil {
		opts.Dial = dialFrom
	}
	if opts.OriginalDst == nil {
		opts.OriginalDst = capture.OriginalDst
	}
	if opts.TrustDomain.IsZero() {
		svid, err := opts.SVID.GetX509SVID()
		if err != nil {
			return nil, fmt.Errorf("reading the sidecar's SVID: %w", err)
		}
		opts.TrustDomain = svid.ID.TrustDomain()
	}
	s := &Sidecar{opts: opts, reg: opts.Registry, listeners: map[string]net.Listener{}}
	for _, ip := range opts.IPs {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("sidecar: pod IP %q: %w", ip, err)
		}
		s.ips = append(s.ips, a.Unmap())
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	// Tunnels leave from the pod's IP, which the far end reports as the source.
	var src netip.Addr
	if len(s.ips) > 0 {
		src = s.ips[0]
	}
	s.upstream = l7xds.NewUpstream(opts.SVID, opts.Bundle, opts.TrustDomain, func(ctx context.Context, _, addr string) (net.Conn, error) {
		return opts.Dial(ctx, src, addr)
	})
	var err error
	s.proxy, err = l7xds.NewProxy(l7xds.ProxyOptions{
		Engine: l7.Options{Dial: s.dialUpstream, Metrics: l7.NewMetrics(s.reg), AccessLog: opts.AccessLog, Logf: opts.Logf},
		XDS: xdsclient.Options{
			Address:     opts.XDSAddress,
			Node:        xdsclient.NewNode("sidecar", opts.Namespace, opts.Pod, opts.IPs, opts.Version),
			DialOptions: opts.XDSDialOptions,
			Logf:        opts.Logf,
		},
		SVID: opts.SVID, Bundle: opts.Bundle, TrustDomain: opts.TrustDomain,
		Serve: s.serveStream, Authorize: s.authorize, Logf: opts.Logf,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Ready reports whether the initial config is complete (every subscribed xDS type has had its first
// response, endpoints and routes included: xdsclient.Client.Initialized, Envoy's init manager) and the
// certificate is loaded.
func (s *Sidecar) Ready() bool {
	if !s.proxy.XDS.Initialized() {
		return false
	}
	svid, err := s.opts.SVID.GetX509SVID()
	return err == nil && len(svid.Certificates) > 0 && time.Now().Before(svid.Certificates[0].NotAfter)
}

// Engine is the sidecar's L7 engine.
func (s *Sidecar) Engine() *l7.Engine { return s.proxy.Engine }

// XDS is the sidecar's xDS client.
func (s *Sidecar) XDS() *xdsclient.Client { return s.proxy.XDS }

// Addr returns the bound address of a listener: "outbound", "inbound", "hbone", "admin", "health" or
// "stats"; nil if it is not open.
func (s *Sidecar) Addr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.listeners[name]; l != nil {
		return l.Addr()
	}
	return nil
}

// Start opens the listeners and the xDS stream, then returns; Close stops everything.
func (s *Sidecar) Start(ctx context.Context) error {
	s.ctx, s.cancel = context.WithCancel(ctx)
	fail := func(err error) error {
		s.Close()
		return err
	}
	if err := s.serveCaptured("outbound", s.opts.OutboundAddress, VirtualOutbound); err != nil {
		return fail(err)
	}
	if err := s.serveCaptured("inbound", s.opts.InboundAddress, VirtualInbound); err != nil {
		return fail(err)
	}
	if l, err := s.listen("hbone", s.opts.HBONEAddress); err != nil {
		return fail(err)
	} else if l != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.proxy.HBONE.Serve(l); err != nil && !errors.Is(err, hbone.ErrServerClosed) {
				s.opts.Logf("HBONE server: %v", err)
			}
		}()
	}
	stats := http.NewServeMux()
	stats.Handle("/stats/prometheus", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	for _, h := range []struct {
		name, addr string
		handler    http.Handler
	}{
		{"admin", s.opts.AdminAddress, s.AdminHandler()},
		{"health", s.opts.HealthAddress, admin.HealthHandler(s.Ready)},
		{"stats", s.opts.StatsAddress, stats},
	} {
		if err := s.serveHTTP(h.name, h.addr, h.handler); err != nil {
			return fail(err)
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.proxy.XDS.Run(s.ctx)
	}()
	return nil
}

// Run starts the sidecar and serves until ctx ends.
func (s *Sidecar) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}

// Close stops serving and waits for the connections in flight.
func (s *Sidecar) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.proxy.HBONE.Close()
	s.mu.Lock()
	for _, l := range s.listeners {
		l.Close()
	}
	for _, srv := range s.servers {
		srv.Close()
	}
	s.mu.Unlock()
	s.proxy.Engine.Close()
	s.upstream.Close()
	s.wg.Wait()
	s.conns.Wait()
	return nil
}

func (s *Sidecar) listen(name, addr string) (net.Listener, error) {
	if addr == "off" {
		return nil, nil
	}
	l, err := s.opts.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s (%s): %w", addr, name, err)
	}
	s.mu.Lock()
	s.listeners[name] = l
	s.mu.Unlock()
	return l, nil
}

func (s *Sidecar) serveHTTP(name, addr string, h http.Handler) error {
	l, err := s.listen(name, addr)
	if err != nil || l == nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		srv.Serve(l)
	}()
	return nil
}

// serveCaptured accepts redirected connections and hands each to the engine with the named listener's
// filter chains, by its original destination.
func (s *Sidecar) serveCaptured(name, addr, listener string) error {
	l, err := s.listen(name, addr)
	if err != nil || l == nil {
		return err
	}
	port := uint16(0)
	if ap, err := netip.ParseAddrPort(l.Addr().String()); err == nil {
		port = ap.Port()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					s.opts.Logf("%s: accept: %v", name, err)
				}
				return
			}
			s.conns.Add(1)
			go func() {
				defer s.conns.Done()
				s.serveConn(c, listener, port)
			}()
		}
	}()
	return nil
}

func (s *Sidecar) serveConn(c net.Conn, listener string, port uint16) {
	dst, err := s.opts.OriginalDst(c)
	if err != nil {
		s.opts.Logf("%s: %s: original destination: %v", listener, c.RemoteAddr(), err)
		c.Close()
		return
	}
	src, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	// A connection made to the capture port itself (not redirected) would be forwarded to itself forever.
	if dst.Port() == port && s.local(dst.Addr()) {
		s.opts.Logf("%s: refusing a direct connection to the capture port from %s", listener, src)
		c.Close()
		return
	}
	d := l7.Downstream{Listener: listener, Source: unmap(src), Destination: unmap(dst)}
	if err := s.proxy.Engine.ServeConn(s.ctx, c, d); err != nil {
		s.opts.Logf("%s %s -> %s: %v", listener, src, dst, err)
		c.Close()
	}
}

// local reports whether a is the pod's (loopback or one of its IPs, or unspecified).
func (s *Sidecar) local(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsUnspecified() || slices.Contains(s.ips, a)
}

func unmap(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) }

// authorize accepts CONNECTs to the pod's own addresses, and not to the proxy's own ports.
func (s *Sidecar) authorize(peer spiffeid.ID, target netip.AddrPort, _ http.Header) error {
	t := unmap(target)
	if len(s.ips) > 0 && !slices.Contains(s.ips, t.Addr()) {
		return fmt.Errorf("%s is not an address of pod %s/%s", t.Addr(), s.opts.Namespace, s.opts.Pod)
	}
	switch t.Port() {
	case OutboundPort, InboundPort, mesh.HBONEPort, 15000, 15021, 15090:
		return fmt.Errorf("port %d is the proxy's own", t.Port())
	}
	if !s.Ready() {
		return errors.New("sidecar has no configuration yet")
	}
	return nil
}

func (s *Sidecar) serveStream(st *hbone.Stream) {
	d := l7.Downstream{Listener: VirtualInbound, Peer: st.Peer.String(), PeerCert: st.PeerCert, Source: sourceOf(st), Destination: unmap(st.Target)}
	if svid, err := s.opts.SVID.GetX509SVID(); err == nil {
		d.Local = svid.ID.String() // XFCC's By=
	}
	if err := s.proxy.Engine.ServeConn(st.Context(), st, d); err != nil {
		s.opts.Logf("HBONE %s -> %s: %v", st.Peer, st.Target, err)
	}
}

// sourceOf is the original client: the Forwarded for= address if the tunnel's origin set one, else the
// tunnel's peer address.
func sourceOf(st *hbone.Stream) netip.AddrPort {
	for _, part := range strings.Split(st.Header.Get(hbone.HeaderForwarded), ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "for="); ok {
			v = strings.Trim(v, `"[]`)
			if ap, err := netip.ParseAddrPort(v); err == nil {
				return unmap(ap)
			}
			if a, err := netip.ParseAddr(v); err == nil {
				return netip.AddrPortFrom(a.Unmap(), 0)
			}
		}
	}
	ap, _ := netip.ParseAddrPort(st.RemoteAddr().String())
	return unmap(ap)
}

// dialUpstream opens a connection to an endpoint: an HBONE stream to IP:15008 for connect_originate
// endpoints (pods that terminate HBONE), plain TCP otherwise (pods outside the mesh, passthrough, and the
// inbound clusters' delivery to the app from 127.0.0.6).
func (s *Sidecar) dialUpstream(ctx context.Context, ep *l7.Endpoint) (net.Conn, error) {
	switch ep.InternalListener {
	case "":
		return s.opts.Dial(ctx, ep.BindAddress, ep.Address)
	case l7.ConnectOriginate:
		// The server must present the endpoint's identity (l7xds.Upstream).
		return s.upstream.Dial(ctx, ep)
	}
	return nil, fmt.Errorf("endpoint %s: unsupported internal listener %s", ep, ep.InternalListener)
}

func dialFrom(ctx context.Context, local netip.Addr, addr string) (net.Conn, error) {
	d := &net.Dialer{}
	if local.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	return d.DialContext(ctx, "tcp", addr)
}
