package ztunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/dataplane/capture"
	"github.com/meshlab/meshlab/dataplane/hbone"
)

// Options configure a Ztunnel.
type Options struct {
	// Node is the node this ztunnel serves (informational; pods are enrolled explicitly with AddPod).
	Node string
	// Certs provides the SVIDs of local pods' identities. Required.
	Certs CertProvider
	// Bundle is the trust bundle peers are verified against. Required.
	Bundle x509bundle.Source
	// Capture configures ports and marks; zero values are Istio's defaults.
	Capture capture.Config
	// SkipRules leaves the pod's iptables rules to someone else (AddPod then only opens listeners).
	SkipRules bool
	// AccessLog receives one line per finished connection; nil discards.
	AccessLog io.Writer
	// Logf reports errors; nil discards.
	Logf func(format string, args ...any)
	// ConnectTimeout bounds opening the upstream leg (default 10s).
	ConnectTimeout time.Duration
}

// Ztunnel is the node proxy.
type Ztunnel struct {
	opts  Options
	capt  capture.Config
	table *connTable

	mu   sync.RWMutex
	ix   *index
	pods map[string]*pod
}

// pod is one enrolled pod: its namespace, listeners and servers.
type pod struct {
	uid       string
	ns        netns.NsHandle
	listeners *capture.PodListeners
	hbone     *hbone.Server
	client    *hbone.Client
	wg        sync.WaitGroup

	tlsMu sync.Mutex
	tls   map[spiffeid.ID]*tls.Config // client configs by expected server identity
}

// New returns a Ztunnel with an empty configuration.
func New(opts Options) (*Ztunnel, error) {
	if opts.Certs == nil || opts.Bundle == nil {
		return nil, errors.New("ztunnel: Certs and Bundle are required")
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	capt := opts.Capture
	d := capture.DefaultConfig()
	if capt.OutboundPort == 0 {
		capt = d
		capt.Backend = opts.Capture.Backend
	}
	ix, _ := buildIndex(Config{})
	return &Ztunnel{opts: opts, capt: capt, table: newConnTable(opts.AccessLog), ix: ix, pods: map[string]*pod{}}, nil
}

// SetConfig replaces the mesh configuration. Connections already open keep their decisions.
func (z *Ztunnel) SetConfig(cfg Config) error {
	ix, err := buildIndex(cfg)
	if err != nil {
		return err
	}
	z.mu.Lock()
	z.ix = ix
	z.mu.Unlock()
	return nil
}

func (z *Ztunnel) index() *index {
	z.mu.RLock()
	defer z.mu.RUnlock()
	return z.ix
}

// AddPod enrols the workload uid whose network namespace is ns: it installs capture rules there, fetches
// the pod's SVID and serves 15001, 15006 and 15008 inside the namespace. ns is duplicated; the caller keeps
// ownership of its handle.
func (z *Ztunnel) AddPod(ctx context.Context, uid string, ns netns.NsHandle) error {
	w := z.index().byUID[uid]
	if w == nil {
		return fmt.Errorf("enrolling %s: not a known workload", uid)
	}
	z.mu.Lock()
	_, exists := z.pods[uid]
	z.mu.Unlock()
	if exists {
		return nil
	}
	svid, err := z.opts.Certs.Source(ctx, w.Identity())
	if err != nil {
		return fmt.Errorf("enrolling %s: fetching SVID for %s: %w", uid, w.Identity(), err)
	}
	fd, err := unix.Dup(int(ns))
	if err != nil {
		return fmt.Errorf("enrolling %s: duplicating netns handle: %w", uid, err)
	}
	p := &pod{uid: uid, ns: netns.NsHandle(fd), tls: map[spiffeid.ID]*tls.Config{}}
	if !z.opts.SkipRules {
		if err := capture.Install(p.ns, z.capt); err != nil {
			p.ns.Close()
			return fmt.Errorf("enrolling %s: %w", uid, err)
		}
	}
	if p.listeners, err = capture.OpenPodListeners(p.ns, z.capt); err != nil {
		z.undo(p)
		return fmt.Errorf("enrolling %s: %w", uid, err)
	}
	p.client = &hbone.Client{DialContext: capture.Dialer{NS: p.ns, Options: capture.SocketOptions{Mark: z.capt.ProxyMark}}.DialContext}
	p.hbone = &hbone.Server{
		TLSConfig: hbone.ServerTLSConfig(svid, z.opts.Bundle, tlsconfig.AuthorizeAny()),
		Handler:   hbone.HandlerFunc(func(s *hbone.Stream) { z.serveInboundHBONE(p, s) }),
		Authorize: func(peer spiffeid.ID, target netip.AddrPort, h http.Header) error {
			return z.authorizeHBONE(p, peer, target, h)
		},
		Logf: z.opts.Logf,
	}
	p.wg.Add(3)
	go func() { defer p.wg.Done(); p.hbone.Serve(p.listeners.HBONE) }()
	go func() {
		defer p.wg.Done()
		z.acceptLoop(p.listeners.Outbound, func(c net.Conn) { z.serveOutbound(p, c) })
	}()
	go func() {
		defer p.wg.Done()
		z.acceptLoop(p.listeners.InboundPlaintext, func(c net.Conn) { z.serveInboundPlaintext(p, c) })
	}()
	z.mu.Lock()
	z.pods[uid] = p
	z.mu.Unlock()
	return nil
}

// RemovePod stops serving uid and removes its capture rules. Connections already open are closed.
func (z *Ztunnel) RemovePod(uid string) error {
	z.mu.Lock()
	p := z.pods[uid]
	delete(z.pods, uid)
	z.mu.Unlock()
	if p == nil {
		return nil
	}
	return z.undo(p)
}

func (z *Ztunnel) undo(p *pod) error {
	var errs []error
	if p.hbone != nil {
		p.hbone.Close()
	}
	if p.listeners != nil {
		p.listeners.Close()
	}
	if p.client != nil {
		p.client.Close()
	}
	p.wg.Wait()
	if !z.opts.SkipRules {
		if err := capture.Remove(p.ns, z.capt); err != nil {
			errs = append(errs, err)
		}
	}
	p.ns.Close()
	return errors.Join(errs...)
}

// Pods lists enrolled workload UIDs.
func (z *Ztunnel) Pods() []string {
	z.mu.RLock()
	defer z.mu.RUnlock()
	out := make([]string, 0, len(z.pods))
	for uid := range z.pods {
		out = append(out, uid)
	}
	return out
}

// Connections lists open connections, oldest first.
func (z *Ztunnel) Connections() []Connection { return z.table.list() }

// Close un-enrols every pod.
func (z *Ztunnel) Close() error {
	var errs []error
	for _, uid := range z.Pods() {
		errs = append(errs, z.RemovePod(uid))
	}
	return errors.Join(errs...)
}

func (z *Ztunnel) acceptLoop(l net.Listener, serve func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				z.opts.Logf("accept on %s: %v", l.Addr(), err)
			}
			return
		}
		go serve(c)
	}
}

func name(w *Workload) string {
	if w == nil {
		return ""
	}
	return w.Namespace + "/" + w.Name
}

func identity(w *Workload) string {
	if w == nil {
		return ""
	}
	return w.Identity().String()
}

// route is where an outbound connection goes.
type route struct {
	hbone     bool
	proxyAddr string      // HBONE server (waypoint or destination pod's 15008), or the plain destination
	target    string      // HBONE :authority
	expect    spiffeid.ID // the HBONE server's identity
	dst       *Workload   // final destination workload, when known
	service   *Service
}

// resolve decides the outbound route for dst as seen from src.
func (ix *index) resolve(src *Workload, dst netip.AddrPort) (route, error) {
	var svc *Service
	if s := ix.byVIP[dst.Addr()]; s != nil {
		svc = s.Service
		if s.Waypoint != nil && !isGateway(ix, src, s.Waypoint) {
			return ix.viaWaypoint(s.Waypoint, dst, nil, svc)
		}
		ep := ix.pick(s)
		if ep == nil {
			return route{}, fmt.Errorf("service %s/%s has no endpoints", s.Namespace, s.Name)
		}
		port := dst.Port()
		if tp := s.Ports[port]; tp != 0 {
			port = tp
		} else if _, ok := s.Ports[port]; !ok && len(s.Ports) > 0 {
			return route{}, fmt.Errorf("service %s/%s has no port %d", s.Namespace, s.Name, port)
		}
		dst = netip.AddrPortFrom(ep.IP, port)
	}
	w := ix.byIP[dst.Addr()]
	if w == nil {
		return route{proxyAddr: dst.String(), service: svc}, nil // outside the mesh: passthrough
	}
	if w.Waypoint != nil && !isGateway(ix, src, w.Waypoint) {
		return ix.viaWaypoint(w.Waypoint, dst, w, svc)
	}
	if w.Protocol != ProtocolHBONE {
		return route{proxyAddr: dst.String(), dst: w, service: svc}, nil
	}
	return route{
		hbone: true, proxyAddr: netip.AddrPortFrom(w.IP, mesh.HBONEPort).String(), target: dst.String(),
		expect: w.Identity(), dst: w, service: svc,
	}, nil
}

func (ix *index) viaWaypoint(g *GatewayAddress, dst netip.AddrPort, w *Workload, svc *Service) (route, error) {
	gw, err := ix.gateway(g)
	if err != nil {
		return route{}, err
	}
	return route{
		hbone: true, proxyAddr: netip.AddrPortFrom(gw.IP, g.port()).String(), target: dst.String(),
		expect: gw.Identity(), dst: w, service: svc,
	}, nil
}

// isGateway says whether src is (an endpoint of) the waypoint g: a waypoint's own traffic must not loop
// back into itself.
func isGateway(ix *index, src *Workload, g *GatewayAddress) bool {
	if src == nil {
		return false
	}
	if src.IP == g.Address {
		return true
	}
	if s := ix.byVIP[g.Address]; s != nil {
		for _, uid := range s.Endpoints {
			if uid == src.UID {
				return true
			}
		}
	}
	return false
}

func (p *pod) clientTLS(ctx context.Context, z *Ztunnel, src spiffeid.ID, expect spiffeid.ID) (*tls.Config, error) {
	p.tlsMu.Lock()
	defer p.tlsMu.Unlock()
	if cfg, ok := p.tls[expect]; ok {
		return cfg, nil
	}
	svid, err := z.opts.Certs.Source(ctx, src)
	if err != nil {
		return nil, err
	}
	// The server must be exactly the workload (or waypoint) the workload API names for this destination:
	// a valid mesh certificate of any other identity is refused, with ztunnel's SAN error.
	cfg := hbone.ClientTLSConfig(svid, z.opts.Bundle, hbone.AuthorizeIdentity(expect))
	p.tls[expect] = cfg
	return cfg, nil
}

func (z *Ztunnel) serveOutbound(p *pod, app net.Conn) {
	defer app.Close()
	ix := z.index()
	src := ix.byUID[p.uid]
	if src == nil {
		return // un-enrolled while accepting
	}
	conn := &Connection{
		Workload: name(src), Direction: Outbound, SrcAddr: app.RemoteAddr().String(),
		SrcWorkload: name(src), SrcIdentity: identity(src), Protocol: "TCP",
	}
	dst, err := capture.OriginalDst(app)
	if err != nil {
		z.table.done(z.table.add(conn), err.Error())
		return
	}
	conn.DstAddr = dst.String()
	if dst.Port() == uint16(z.capt.OutboundPort) && dst.Addr().IsLoopback() {
		z.table.done(z.table.add(conn), "connection to the outbound listener itself")
		return
	}
	rt, err := ix.resolve(src, dst)
	conn.Remote, conn.Local = rt.proxyAddr, src.IP.String()
	conn.DstWorkload, conn.DstIdentity = name(rt.dst), identity(rt.dst)
	if rt.service != nil {
		conn.DstService = rt.service.Hostname
	}
	if rt.hbone {
		conn.Protocol, conn.RemoteTarget, conn.DstIdentity = "HBONE", rt.target, rt.expect.String()
	}
	tc := z.table.add(conn)
	if err != nil {
		z.table.done(tc, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), z.opts.ConnectTimeout)
	defer cancel()
	var upstream net.Conn
	if rt.hbone {
		var cfg *tls.Config
		cfg, err = p.clientTLS(ctx, z, src.Identity(), rt.expect)
		if err == nil {
			var hc *hbone.Conn
			hc, err = p.client.Connect(ctx, hbone.Request{
				ProxyAddr: rt.proxyAddr, Target: rt.target, TLS: cfg, PoolKey: rt.expect.String(),
				Header: http.Header{
					hbone.HeaderForwarded: {"for=" + src.IP.String()},
					hbone.HeaderBaggage: {fmt.Sprintf("k8s.namespace.name=%s,k8s.pod.name=%s,service.name=%s",
						src.Namespace, src.Name, src.ServiceAccount)},
				},
			})
			if hc != nil {
				upstream = hc
			}
		}
	} else {
		upstream, err = capture.Dialer{NS: p.ns, Options: capture.SocketOptions{Mark: z.capt.ProxyMark}}.DialContext(ctx, "tcp4", rt.proxyAddr)
	}
	if err != nil {
		var idErr *hbone.IdentityError
		if errors.As(err, &idErr) {
			z.opts.Logf("outbound %s -> %s via %s refused: %v", name(src), rt.target, rt.proxyAddr, idErr)
		}
		z.table.done(tc, err.Error())
		return
	}
	splice(app, upstream, tc)
	z.table.done(tc, "")
}

// authorizeHBONE checks an inbound stream before it is accepted (a refusal becomes a 403).
func (z *Ztunnel) authorizeHBONE(p *pod, peer spiffeid.ID, target netip.AddrPort, h http.Header) error {
	ix := z.index()
	w := ix.byUID[p.uid]
	if w == nil {
		return errors.New("workload no longer enrolled")
	}
	err := func() error {
		if target.Addr() != w.IP {
			return fmt.Errorf("target %s is not this pod (%s)", target, w.IP)
		}
		if isProxyPort(z.capt, target.Port()) {
			return fmt.Errorf("target port %d is ztunnel's own", target.Port())
		}
		return ix.authorize(w, connInfo{peer: peer, dstPort: target.Port()})
	}()
	if err != nil {
		c := z.table.add(&Connection{
			Workload: name(w), Direction: Inbound, Protocol: "HBONE", Local: netip.AddrPortFrom(w.IP, mesh.HBONEPort).String(),
			Remote: forwardedFor(h), RemoteTarget: target.String(), SrcAddr: forwardedFor(h),
			SrcIdentity: peer.String(), DstWorkload: name(w), DstIdentity: identity(w), DstAddr: target.String(),
		})
		z.table.done(c, "connection closed due to policy rejection: "+err.Error())
	}
	return err
}

func isProxyPort(c capture.Config, port uint16) bool {
	return int(port) == c.OutboundPort || int(port) == c.InboundPlaintextPort || int(port) == c.HBONEPort
}

func forwardedFor(h http.Header) string {
	for _, part := range splitComma(h.Get(hbone.HeaderForwarded)) {
		if v, ok := cutPrefixFold(part, "for="); ok {
			return v
		}
	}
	return ""
}

func (z *Ztunnel) serveInboundHBONE(p *pod, s *hbone.Stream) {
	w := z.index().byUID[p.uid]
	if w == nil {
		return
	}
	srcIP := addrIP(s.RemoteAddr())
	src := z.index().byIP[srcIP]
	conn := z.table.add(&Connection{
		Workload: name(w), Direction: Inbound, Protocol: "HBONE",
		Local: netip.AddrPortFrom(w.IP, mesh.HBONEPort).String(), Remote: s.RemoteAddr().String(),
		RemoteTarget: s.Target.String(), SrcAddr: s.RemoteAddr().String(), SrcWorkload: name(src),
		SrcIdentity: s.Peer.String(), DstAddr: s.Target.String(), DstWorkload: name(w), DstIdentity: identity(w),
	})
	app, err := z.deliver(p, srcIP, s.Target)
	if err != nil {
		z.table.done(conn, err.Error())
		return
	}
	splice(s, app, conn)
	z.table.done(conn, "")
}

func (z *Ztunnel) serveInboundPlaintext(p *pod, c net.Conn) {
	defer c.Close()
	ix := z.index()
	w := ix.byUID[p.uid]
	if w == nil {
		return
	}
	srcIP := addrIP(c.RemoteAddr())
	conn := &Connection{
		Workload: name(w), Direction: Inbound, Protocol: "TCP", Remote: c.RemoteAddr().String(),
		SrcAddr: c.RemoteAddr().String(), SrcWorkload: name(ix.byIP[srcIP]), DstWorkload: name(w), DstIdentity: identity(w),
	}
	dst, err := capture.OriginalDst(c)
	if err == nil {
		conn.Local, conn.DstAddr = dst.String(), dst.String()
		switch {
		case isProxyPort(z.capt, dst.Port()):
			err = fmt.Errorf("plaintext to ztunnel port %d refused", dst.Port())
		case dst.Addr() != w.IP:
			err = fmt.Errorf("destination %s is not this pod", dst)
		default:
			// No peer identity: only policies that do not ask for one can allow it.
			err = ix.authorize(w, connInfo{dstPort: dst.Port()})
		}
	}
	tc := z.table.add(conn)
	if err != nil {
		z.table.done(tc, err.Error())
		return
	}
	app, err := z.deliver(p, srcIP, dst)
	if err != nil {
		z.table.done(tc, err.Error())
		return
	}
	splice(c, app, tc)
	z.table.done(tc, "")
}

// deliver connects to the application inside the pod, from the original source IP (IP_TRANSPARENT).
func (z *Ztunnel) deliver(p *pod, src netip.Addr, dst netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), z.opts.ConnectTimeout)
	defer cancel()
	d := capture.Dialer{NS: p.ns, Options: capture.SocketOptions{Mark: z.capt.ProxyMark, Transparent: true}}
	if src.IsValid() && src.Is4() {
		d.Source = src
	}
	c, err := d.DialContext(ctx, "tcp4", dst.String())
	if err != nil {
		return nil, fmt.Errorf("delivering to %s: %w", dst, err)
	}
	return c, nil
}

func addrIP(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
