// Package waypoint is meshlab's waypoint proxy: it takes Envoy config over ADS (dataplane/xdsclient),
// executes it with the shared L7 engine (dataplane/l7), terminates HBONE on 15008 (the connect_terminate
// listener, done natively with dataplane/hbone), hands each tunnelled stream to main_internal's filter
// chains by its CONNECT target, and sends upstream traffic to connect_originate endpoints as HBONE streams
// from its own SVID (dataplane/l7xds.Upstream, shared with the ingress gateway). Admin (15000) and health
// (15021) come from dataplane/admin.
package waypoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/dataplane/admin"
	"github.com/meshlab/meshlab/dataplane/hbone"
	"github.com/meshlab/meshlab/dataplane/l7"
	"github.com/meshlab/meshlab/dataplane/l7xds"
	"github.com/meshlab/meshlab/dataplane/xdsclient"
)

// MainInternal is the listener whose filter chains serve tunnelled streams.
const MainInternal = "main_internal"

// Options configure a Waypoint.
type Options struct {
	l7xds.RouterOptions
	// HBONEAddress is where HBONE is terminated (default ":15008").
	HBONEAddress string
}

// Waypoint is a running waypoint proxy.
type Waypoint struct {
	proxy    *l7xds.Proxy
	opts     Options
	upstream *l7xds.Upstream
	reg      *prometheus.Registry

	mu        sync.Mutex
	listeners []net.Listener
	http      l7xds.HTTPServers
	wg        sync.WaitGroup
	cancel    context.CancelFunc
}

// New checks opts and builds the waypoint; Start runs it.
func New(opts Options) (*Waypoint, error) {
	if err := opts.Complete("waypoint"); err != nil {
		return nil, err
	}
	if opts.HBONEAddress == "" {
		opts.HBONEAddress = fmt.Sprintf(":%d", mesh.HBONEPort)
	}
	w := &Waypoint{opts: opts, reg: opts.Registry, upstream: l7xds.NewUpstream(opts.SVID, opts.Bundle, opts.TrustDomain, opts.UpstreamDial)}
	node := xdsclient.NewRouterNode("waypoint", opts.Namespace, opts.Name, opts.Pod, opts.IPs, opts.Version)
	var err error
	w.proxy, err = l7xds.NewProxy(l7xds.ProxyOptions{
		Engine: l7.Options{Dial: w.upstream.Dial, Rand: opts.Rand, Metrics: l7.NewMetrics(w.reg), AccessLog: opts.AccessLog, Logf: opts.Logf},
		XDS: xdsclient.Options{
			Address:     opts.XDSAddress,
			Node:        node,
			DialOptions: opts.XDSDialOptions,
			Logf:        opts.Logf,
		},
		SVID: opts.SVID, Bundle: opts.Bundle, TrustDomain: opts.TrustDomain,
		Serve: w.serveStream, Authorize: w.authorize, Logf: opts.Logf,
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// Ready reports whether the initial config is complete: every subscribed xDS type has had its first
// response, endpoints and routes included (xdsclient.Client.Initialized, Envoy's init manager).
func (w *Waypoint) Ready() bool { return w.proxy.XDS.Initialized() }

// Engine is the waypoint's L7 engine.
func (w *Waypoint) Engine() *l7.Engine { return w.proxy.Engine }

// XDS is the waypoint's xDS client.
func (w *Waypoint) XDS() *xdsclient.Client { return w.proxy.XDS }

// Start opens the listeners and the xDS stream, then returns; Close stops everything.
func (w *Waypoint) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	hl, err := net.Listen("tcp", w.opts.HBONEAddress)
	if err != nil {
		cancel()
		return fmt.Errorf("listening for HBONE on %s: %w", w.opts.HBONEAddress, err)
	}
	w.track(hl)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		if err := w.proxy.HBONE.Serve(hl); err != nil && !errors.Is(err, hbone.ErrServerClosed) {
			w.opts.Logf("HBONE server: %v", err)
		}
	}()
	if err := w.serveHTTP(w.opts.AdminAddress, w.AdminHandler()); err != nil {
		w.Close()
		return err
	}
	if err := w.serveHTTP(w.opts.HealthAddress, admin.HealthHandler(w.Ready)); err != nil {
		w.Close()
		return err
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.proxy.XDS.Run(ctx)
	}()
	return nil
}

// Run starts the waypoint and serves until ctx ends.
func (w *Waypoint) Run(ctx context.Context) error {
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return w.Close()
}

func (w *Waypoint) serveHTTP(addr string, h http.Handler) error {
	l, err := w.http.Serve(addr, h)
	if l != nil {
		w.track(l)
	}
	return err
}

func (w *Waypoint) track(l net.Listener) {
	w.mu.Lock()
	w.listeners = append(w.listeners, l)
	w.mu.Unlock()
}

// Addrs returns the bound HBONE, admin and health addresses (in that order, those that are open).
func (w *Waypoint) Addrs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, l := range w.listeners {
		out = append(out, l.Addr().String())
	}
	return out
}

// Close stops serving.
func (w *Waypoint) Close() error {
	if w.cancel != nil {
		w.cancel()
	}
	w.proxy.HBONE.Close()
	w.http.Close()
	w.proxy.Engine.Close()
	w.upstream.Close()
	w.wg.Wait()
	return nil
}

// authorize refuses CONNECTs whose target no filter chain serves (Envoy would close them).
func (w *Waypoint) authorize(peer spiffeid.ID, target netip.AddrPort, _ http.Header) error {
	if w.proxy.Engine.Table().Chain(MainInternal, target) == nil {
		if !w.Ready() {
			return fmt.Errorf("waypoint has no configuration yet")
		}
		return fmt.Errorf("no filter chain of %s matches %s", MainInternal, target)
	}
	return nil
}

func (w *Waypoint) serveStream(s *hbone.Stream) {
	d := l7.Downstream{Listener: MainInternal, Peer: s.Peer.String(), Destination: s.Target, Source: sourceOf(s)}
	if err := w.proxy.Engine.ServeConn(s.Context(), s, d); err != nil {
		w.opts.Logf("stream %s -> %s: %v", s.Peer, s.Target, err)
	}
}

// sourceOf is the original client: the Forwarded for= address ztunnel sets, else the tunnel's peer.
func sourceOf(s *hbone.Stream) netip.AddrPort {
	for _, part := range strings.Split(s.Header.Get(hbone.HeaderForwarded), ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "for="); ok {
			v = strings.Trim(v, `"[]`)
			if ap, err := netip.ParseAddrPort(v); err == nil {
				return ap
			}
			if a, err := netip.ParseAddr(v); err == nil {
				return netip.AddrPortFrom(a, 0)
			}
		}
	}
	ap, _ := netip.ParseAddrPort(s.RemoteAddr().String())
	return ap
}

// Run is a waypoint process: New, Start, and Close once ctx ends. `meshlab waypoint run` and the
// cross-plane integration tests both run it.
func Run(ctx context.Context, opts Options) error {
	w, err := New(opts)
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	if opts.Logf != nil {
		opts.Logf("waypoint %s/%s serving HBONE on %s, xDS from %s", opts.Namespace, opts.Name, opts.HBONEAddress, opts.XDSAddress)
	}
	<-ctx.Done()
	return w.Close()
}
