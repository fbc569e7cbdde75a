// Package gateway is meshlab's ingress gateway proxy, the istio-proxy container of a Gateway of class istio
// (`meshlab proxy router`). It follows the config istiod-style generation gives a gateway
// (controlplane/configgen/gateway.go) over ADS and executes it with the same L7 engine as the waypoint and
// the sidecar (dataplane/l7):
//
//   - every listener with a socket address (0.0.0.0_80 ...) is a real listening socket, opened when the
//     listener first arrives and closed when it goes; a listener whose port cannot be bound is refused
//     (the xDS client NACKs the update), as Envoy refuses it;
//   - each accepted connection takes the listener's filter chain: the HTTP connection manager, the route
//     configuration http.PORT, an outbound|PORT||FQDN cluster and an endpoint;
//   - endpoints of mesh pods (envoy://connect_originate/IP:PORT) are reached over HBONE from the gateway's
//     own SVID, the others in plain text (dataplane/l7xds.Upstream).
//
// The node ID is Istio's router~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local (metadata KIND=gateway, NAME=
// the Gateway), so istioctl lists the gateway pod. Admin on 127.0.0.1:15000, /healthz/ready on :15021 (ready
// once the initial config is complete and its listeners are open).
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshlab/meshlab/dataplane/admin"
	"github.com/meshlab/meshlab/dataplane/l7"
	"github.com/meshlab/meshlab/dataplane/l7xds"
	"github.com/meshlab/meshlab/dataplane/xdsclient"
)

// NodeKind is the KIND the gateway sends in its node metadata; Istio's node type for it is router.
const NodeKind = "gateway"

// Options configure a Gateway.
type Options struct {
	l7xds.RouterOptions
	// ListenAddress maps a listener's address from the config (0.0.0.0:80) to where to bind it; nil binds
	// it as it is. Tests bind 127.0.0.1:0 instead.
	ListenAddress func(configured netip.AddrPort) string
}

// Gateway is a running ingress gateway.
type Gateway struct {
	proxy    *l7xds.Proxy
	upstream *l7xds.Upstream
	opts     Options
	reg      *prometheus.Registry

	mu     sync.Mutex
	open   map[string]*socket // by listener name
	http   l7xds.HTTPServers
	conns  sync.WaitGroup
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// socket is one open listener socket and the configured address it serves.
type socket struct {
	configured netip.AddrPort
	l          net.Listener
}

// New checks opts and builds the gateway; Start runs it.
func New(opts Options) (*Gateway, error) {
	if err := opts.Complete("gateway"); err != nil {
		return nil, err
	}
	if opts.ListenAddress == nil {
		opts.ListenAddress = func(a netip.AddrPort) string { return a.String() }
	}
	g := &Gateway{opts: opts, reg: opts.Registry, open: map[string]*socket{}}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.upstream = l7xds.NewUpstream(opts.SVID, opts.Bundle, opts.TrustDomain, opts.UpstreamDial)
	node := xdsclient.NewRouterNode(NodeKind, opts.Namespace, opts.Name, opts.Pod, opts.IPs, opts.Version)
	var err error
	g.proxy, err = l7xds.NewProxy(l7xds.ProxyOptions{
		Engine: l7.Options{Dial: g.upstream.Dial, Rand: opts.Rand, Metrics: l7.NewMetrics(g.reg), AccessLog: opts.AccessLog, Logf: opts.Logf},
		XDS: xdsclient.Options{
			Address:     opts.XDSAddress,
			Node:        node,
			DialOptions: opts.XDSDialOptions,
			Apply:       g.apply,
			Logf:        opts.Logf,
		},
		SVID: opts.SVID, Bundle: opts.Bundle, TrustDomain: opts.TrustDomain, Logf: opts.Logf,
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// Ready reports whether the initial config is complete (every subscribed xDS type has had its first
// response) and so its listeners are open.
func (g *Gateway) Ready() bool { return g.proxy.XDS.Initialized() }

// Engine is the gateway's L7 engine.
func (g *Gateway) Engine() *l7.Engine { return g.proxy.Engine }

// XDS is the gateway's xDS client.
func (g *Gateway) XDS() *xdsclient.Client { return g.proxy.XDS }

// Addr returns where the listener named name (0.0.0.0_80) is bound, or nil when it is not open.
func (g *Gateway) Addr(name string) net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.open[name]; s != nil {
		return s.l.Addr()
	}
	return nil
}

// apply is the xDS client's Apply step: it binds the sockets of listeners new to snap (refusing the update
// when one cannot be bound), installs snap in the engine, then closes the sockets of listeners snap no
// longer has or has moved.
func (g *Gateway) apply(snap xdsclient.Snapshot) error {
	want := map[string]netip.AddrPort{}
	for _, l := range snap.Listeners {
		sa := l.GetAddress().GetSocketAddress()
		if l.GetInternalListener() != nil || sa == nil {
			continue
		}
		ip, err := netip.ParseAddr(sa.GetAddress())
		if err != nil {
			return fmt.Errorf("listener %s: address %q: %w", l.GetName(), sa.GetAddress(), err)
		}
		want[l.GetName()] = netip.AddrPortFrom(ip, uint16(sa.GetPortValue()))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	opened := map[string]*socket{}
	closeAll := func(m map[string]*socket) {
		for _, s := range m {
			s.l.Close()
		}
	}
	for name, addr := range want {
		if cur := g.open[name]; cur != nil && cur.configured == addr {
			continue
		}
		bind := g.opts.ListenAddress(addr)
		l, err := net.Listen("tcp", bind)
		if err != nil {
			closeAll(opened)
			return fmt.Errorf("listener %s: binding %s: %w", name, bind, err)
		}
		opened[name] = &socket{configured: addr, l: l}
	}
	if err := g.proxy.Applied.Apply(snap); err != nil {
		closeAll(opened)
		return err
	}
	for name, s := range g.open {
		if addr, ok := want[name]; !ok || addr != s.configured {
			s.l.Close()
			delete(g.open, name)
		}
	}
	for name, s := range opened {
		g.open[name] = s
		g.wg.Add(1)
		go g.accept(name, s.l)
		g.opts.Logf("listener %s open on %s", name, s.l.Addr())
	}
	return nil
}

// accept serves the connections of one listener socket until it is closed.
func (g *Gateway) accept(name string, l net.Listener) {
	defer g.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				g.opts.Logf("%s: accept: %v", name, err)
			}
			return
		}
		g.conns.Add(1)
		go func() {
			defer g.conns.Done()
			src, _ := netip.ParseAddrPort(c.RemoteAddr().String())
			dst, _ := netip.ParseAddrPort(c.LocalAddr().String())
			d := l7.Downstream{Listener: name, Source: unmap(src), Destination: unmap(dst)}
			if err := g.proxy.Engine.ServeConn(g.ctx, c, d); err != nil {
				g.opts.Logf("%s %s: %v", name, src, err)
				c.Close()
			}
		}()
	}
}

func unmap(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) }

// Start opens the admin and health listeners and the xDS stream, then returns; the config's listeners
// open as it arrives. Close stops everything.
func (g *Gateway) Start(ctx context.Context) error {
	go func() {
		select {
		case <-ctx.Done():
			g.cancel()
		case <-g.ctx.Done():
		}
	}()
	for _, h := range []struct {
		addr    string
		handler http.Handler
	}{
		{g.opts.AdminAddress, g.AdminHandler()},
		{g.opts.HealthAddress, admin.HealthHandler(g.Ready)},
	} {
		if err := g.serveHTTP(h.addr, h.handler); err != nil {
			g.Close()
			return err
		}
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.proxy.XDS.Run(g.ctx)
	}()
	return nil
}

func (g *Gateway) serveHTTP(addr string, h http.Handler) error {
	_, err := g.http.Serve(addr, h)
	return err
}

// AdminHandler serves the gateway's admin endpoints (see dataplane/admin and dataplane/l7xds).
func (g *Gateway) AdminHandler() http.Handler {
	return g.proxy.AdminHandler(l7xds.AdminOptions{
		Registry: g.reg, Ready: g.Ready, SVID: g.opts.SVID, Bundle: g.opts.Bundle, TrustDomain: g.opts.TrustDomain,
		Version: g.opts.Version, AdminAddress: g.opts.AdminAddress,
	})
}

// Close stops serving and waits for the connections in flight.
func (g *Gateway) Close() error {
	g.cancel()
	g.mu.Lock()
	for name, s := range g.open {
		s.l.Close()
		delete(g.open, name)
	}
	g.mu.Unlock()
	g.http.Close()
	g.proxy.Engine.Close()
	g.upstream.Close()
	g.wg.Wait()
	g.conns.Wait()
	return nil
}

// Run is a gateway process: New, Start, and Close once ctx ends. `meshlab proxy router` and the
// integration tests both run it.
func Run(ctx context.Context, opts Options) error {
	g, err := New(opts)
	if err != nil {
		return err
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	if opts.Logf != nil {
		opts.Logf("gateway %s/%s: xDS from %s", opts.Namespace, opts.Name, opts.XDSAddress)
	}
	<-ctx.Done()
	return g.Close()
}

// ListenerName is the gateway listener for a port, as the control plane names it: 0.0.0.0_PORT.
func ListenerName(port uint16) string { return "0.0.0.0_" + strconv.Itoa(int(port)) }
