package l7

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// Downstream describes an accepted connection: which listener took it, who is calling and where to.
type Downstream struct {
	// Listener names the listener whose filter chains apply (main_internal for a waypoint).
	Listener string
	// Peer is the caller's authenticated identity (a SPIFFE URI), empty if none.
	Peer string
	// PeerCert is the client certificate of a mutual TLS connection the proxy terminated itself (a
	// sidecar's inbound), nil otherwise: X-Forwarded-Client-Cert is built from it.
	PeerCert *x509.Certificate
	// Local is the proxy's own SPIFFE ID (XFCC's By=), when it terminated mutual TLS.
	Local string
	// Source is the original client address.
	Source netip.AddrPort
	// Destination is the original destination (the HBONE CONNECT target, or SO_ORIGINAL_DST).
	Destination netip.AddrPort
}

// DialFunc opens an upstream connection to ep. The waypoint dials connect_originate endpoints over HBONE.
type DialFunc func(ctx context.Context, ep *Endpoint) (net.Conn, error)

// Options configure an Engine.
type Options struct {
	// Dial opens upstream connections. Required.
	Dial DialFunc
	// Rand returns uniform 64-bit values for weighted clusters, fault percentages, retry back-off and
	// random load balancing; nil uses math/rand/v2. Tests pass a seeded source.
	Rand func() uint64
	// Metrics receive the engine's stats; nil creates unregistered ones.
	Metrics *Metrics
	// AccessLog receives one line per request or TCP connection; nil discards.
	AccessLog io.Writer
	// Logf reports errors; nil discards.
	Logf func(format string, args ...any)
	// MaxRetryBuffer bounds how much of a request body is kept for retries (default 1 MiB); larger
	// bodies are streamed and not retried.
	MaxRetryBuffer int64
}

// Engine executes the current Table. Swapping tables is atomic: requests in flight finish with the table
// they started with, new requests see the new one.
type Engine struct {
	opts    Options
	table   atomic.Pointer[Table]
	metrics *Metrics
	rndMu   sync.Mutex

	h1   *h1Client
	h2   *http2.Transport
	srv  *http.Server
	lis  *chanListener
	logw *lineWriter
}

// NewEngine returns an engine with an empty table.
func NewEngine(opts Options) (*Engine, error) {
	if opts.Dial == nil {
		return nil, errors.New("l7: Options.Dial is required")
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.MaxRetryBuffer == 0 {
		opts.MaxRetryBuffer = 1 << 20
	}
	e := &Engine{opts: opts, metrics: opts.Metrics, logw: &lineWriter{w: opts.AccessLog}}
	if e.metrics == nil {
		e.metrics = NewMetrics(nil)
	}
	if opts.Rand == nil {
		e.opts.Rand = rand.Uint64
	} else {
		// Callers' sources need not be safe for concurrent use.
		r := opts.Rand
		e.opts.Rand = func() uint64 {
			e.rndMu.Lock()
			defer e.rndMu.Unlock()
			return r()
		}
	}
	empty, _ := Build(Config{})
	e.table.Store(empty)
	e.h1 = newH1Client(e.dialHTTP, 256, 90*time.Second)
	e.h1.limits = func(ctx context.Context) (string, int, time.Duration) {
		u, _ := ctx.Value(upstreamKey{}).(*upstreamCtx)
		if u == nil {
			return "", 0, 0
		}
		return u.cluster.Name, u.cluster.maxRequestsPerConn, u.cluster.idleTimeout
	}
	e.h2 = &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return e.dialHTTP(ctx, network, addr)
		},
		ReadIdleTimeout: 30 * time.Second,
	}
	e.lis = newChanListener()
	e.srv = &http.Server{
		Handler:           http.HandlerFunc(e.serveHTTP),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       time.Hour,
		ErrorLog:          nil,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if dc, ok := c.(*downstreamConn); ok {
				return context.WithValue(ctx, downstreamKey{}, dc)
			}
			return ctx
		},
	}
	e.srv.Protocols = new(http.Protocols)
	e.srv.Protocols.SetHTTP1(true)
	e.srv.Protocols.SetUnencryptedHTTP2(true)
	go e.srv.Serve(e.lis)
	return e, nil
}

// Apply validates cfg, compiles it and makes it current. On error the current table stays.
func (e *Engine) Apply(cfg Config) error {
	t, err := Build(cfg)
	if err != nil {
		return err
	}
	e.table.Store(t)
	return nil
}

// Table returns the current table.
func (e *Engine) Table() *Table { return e.table.Load() }

// Metrics returns the engine's metrics.
func (e *Engine) Metrics() *Metrics { return e.metrics }

// Close stops serving and drops pooled upstream connections.
func (e *Engine) Close() error {
	err := e.srv.Close()
	e.h1.closeIdle()
	e.h2.CloseIdleConnections()
	return err
}

// ServeConn serves one downstream connection with the filter chain its destination selects, and returns
// when the connection is done. It fails without touching conn when no chain matches.
func (e *Engine) ServeConn(ctx context.Context, conn net.Conn, d Downstream) error {
	chain := e.Table().Chain(d.Listener, d.Destination)
	if chain == nil {
		return fmt.Errorf("listener %s: no filter chain for %s", d.Listener, d.Destination)
	}
	if chain.TLS {
		return fmt.Errorf("listener %s: filter chain %s terminates TLS, which the caller must do", d.Listener, chain.Name)
	}
	e.metrics.downstreamCx.WithLabelValues(d.Listener).Inc()
	active := e.metrics.downstreamCxAct.WithLabelValues(d.Listener)
	active.Inc()
	defer active.Dec()
	if chain.TCP != nil {
		e.serveTCP(ctx, conn, d, chain)
		return nil
	}
	// net/http relies on read deadlines to stop its background read between requests: conn must honour
	// them (TCP connections and HBONE streams do).
	dc := &downstreamConn{Conn: conn, d: d, done: make(chan struct{})}
	if !e.lis.push(dc) {
		return net.ErrClosed
	}
	select {
	case <-dc.done:
	case <-ctx.Done():
		// Interrupt the server's reads, then wait until it lets go of the connection: the caller may
		// free the stream as soon as ServeConn returns, so nothing may write to it after that.
		dc.Conn.Close()
		<-dc.done
	}
	return nil
}

// downstreamKey finds the connection's Downstream in a request context.
type downstreamKey struct{}

// downstreamConn carries a connection's Downstream into the HTTP server; done closes when the server
// closes it (and so is finished with it).
type downstreamConn struct {
	net.Conn
	d        Downstream
	done     chan struct{}
	doneOnce sync.Once
}

func (c *downstreamConn) Close() error {
	err := c.Conn.Close()
	c.doneOnce.Do(func() { close(c.done) })
	return err
}

func (c *downstreamConn) LocalAddr() net.Addr  { return net.TCPAddrFromAddrPort(c.d.Destination) }
func (c *downstreamConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.d.Source) }

// chanListener hands connections accepted elsewhere to an http.Server.
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{} }

// lineWriter serialises access-log lines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) write(b []byte) {
	if l.w == nil {
		return
	}
	l.mu.Lock()
	l.w.Write(b)
	l.mu.Unlock()
}
