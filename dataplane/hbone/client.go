package hbone

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"
)

// DefaultClient is used by the package-level Dial.
var DefaultClient = &Client{}

// Dial opens a tunnelled stream to target ("IP:PORT") through the HBONE server at proxyAddr with
// DefaultClient. See Client.Dial.
func Dial(ctx context.Context, proxyAddr, target string, cfg *tls.Config) (net.Conn, error) {
	return DefaultClient.Dial(ctx, proxyAddr, target, cfg)
}

// Request describes one CONNECT stream.
type Request struct {
	// ProxyAddr is the HBONE server, e.g. "10.244.1.7:15008".
	ProxyAddr string
	// Target is the :authority of the CONNECT, the final destination "IP:PORT".
	Target string
	// TLS is the client configuration (see ClientTLSConfig).
	TLS *tls.Config
	// PoolKey names the client identity for connection pooling; streams with the same ProxyAddr and
	// PoolKey share a connection. Empty: derived from TLS (its static certificate's SPIFFE ID, else the
	// *tls.Config pointer, so reuse one config per identity).
	PoolKey string
	// Header is sent with the CONNECT (see HeaderForwarded, HeaderBaggage).
	Header http.Header
}

// Client opens HBONE streams, multiplexing them over pooled connections. The zero value is ready to use.
type Client struct {
	// DialContext opens the TCP connection to a proxy; nil means a net.Dialer. ztunnel sets it to dial
	// from inside a pod's network namespace.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// HandshakeTimeout bounds the TLS handshake (default 10s).
	HandshakeTimeout time.Duration

	once sync.Once
	t    *http2.Transport

	mu      sync.Mutex
	pool    map[poolKey][]*http2.ClientConn
	dialing map[poolKey]chan struct{}
}

type poolKey struct{ addr, identity string }

func (c *Client) init() {
	c.once.Do(func() {
		// The transport is only a frame engine here: connections come from NewClientConn, never its pool.
		c.t = &http2.Transport{
			ReadIdleTimeout: 30 * time.Second,
			PingTimeout:     10 * time.Second,
			IdleConnTimeout: 5 * time.Minute,
		}
		c.pool = map[poolKey][]*http2.ClientConn{}
		c.dialing = map[poolKey]chan struct{}{}
	})
}

// Dial opens a stream to target through proxyAddr. The returned net.Conn is a *Conn: CloseWrite half-closes
// (sends END_STREAM), Close resets the stream. It returns a *StatusError if the server refused the CONNECT.
func (c *Client) Dial(ctx context.Context, proxyAddr, target string, cfg *tls.Config) (net.Conn, error) {
	conn, err := c.Connect(ctx, Request{ProxyAddr: proxyAddr, Target: target, TLS: cfg})
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// Connect opens a stream described by r and waits for the server's answer. ctx bounds the dial and the
// CONNECT exchange only; the stream lives until closed.
func (c *Client) Connect(ctx context.Context, r Request) (*Conn, error) {
	c.init()
	if _, err := netip.ParseAddrPort(r.Target); err != nil {
		return nil, fmt.Errorf("HBONE target %q is not IP:PORT: %w", r.Target, err)
	}
	if r.TLS == nil {
		return nil, fmt.Errorf("HBONE to %s: no TLS configuration", r.ProxyAddr)
	}
	key := poolKey{addr: r.ProxyAddr, identity: r.PoolKey}
	if key.identity == "" {
		key.identity = poolIdentity(r.TLS)
	}
	cc, err := c.clientConn(ctx, key, r.TLS)
	if err != nil {
		return nil, err
	}

	pr, pw := io.Pipe()
	// The stream must outlive ctx, so the request gets its own context, cancelled by Close.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	req := (&http.Request{
		Method:        http.MethodConnect,
		Host:          r.Target,
		URL:           &url.URL{Host: r.Target},
		Header:        r.Header.Clone(),
		Body:          pr,
		ContentLength: -1,
		Proto:         "HTTP/2.0", ProtoMajor: 2,
	}).WithContext(sctx)
	if req.Header == nil {
		req.Header = http.Header{}
	}
	stop := context.AfterFunc(ctx, cancel)
	resp, err := cc.RoundTrip(req)
	stop()
	if err != nil {
		cancel()
		pw.Close()
		return nil, fmt.Errorf("HBONE CONNECT %s via %s: %w", r.Target, r.ProxyAddr, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		reason, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		cancel()
		pw.Close()
		return nil, &StatusError{Code: resp.StatusCode, Target: r.Target, Reason: string(trimSpace(reason))}
	}
	conn := &Conn{pw: pw, body: resp.Body, cancel: cancel, target: r.Target, proxy: r.ProxyAddr}
	if id, err := PeerID(resp.TLS); err == nil {
		conn.peer = id
	}
	return conn, nil
}

// clientConn returns a pooled connection with a reserved stream slot, dialling one if none can take a
// stream. Concurrent callers for the same key wait for a single dial rather than each opening a connection.
func (c *Client) clientConn(ctx context.Context, key poolKey, cfg *tls.Config) (*http2.ClientConn, error) {
	for {
		c.mu.Lock()
		live := c.pool[key][:0]
		var found *http2.ClientConn
		for _, cc := range c.pool[key] {
			st := cc.State()
			if st.Closed || st.Closing {
				continue
			}
			live = append(live, cc)
			if found == nil && cc.ReserveNewRequest() {
				found = cc
			}
		}
		c.pool[key] = live
		if found != nil {
			c.mu.Unlock()
			return found, nil
		}
		if wait, ok := c.dialing[key]; ok {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		c.dialing[key] = done
		c.mu.Unlock()

		cc, err := c.dialConn(ctx, key.addr, cfg)
		c.mu.Lock()
		delete(c.dialing, key)
		close(done)
		if err != nil {
			c.mu.Unlock()
			return nil, err
		}
		c.pool[key] = append(c.pool[key], cc)
		c.mu.Unlock()
	}
}

func (c *Client) dialConn(ctx context.Context, addr string, cfg *tls.Config) (*http2.ClientConn, error) {
	dial := c.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dialling HBONE %s: %w", addr, err)
	}
	timeout := c.HandshakeTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake with HBONE %s: %w", addr, err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		tc.Close()
		return nil, fmt.Errorf("HBONE %s negotiated %q, want h2", addr, p)
	}
	// TLS 1.3: the server verifies our certificate only after our side of the handshake is done, and
	// then answers with its HTTP/2 SETTINGS or with an alert. Wait for that first record, so that a
	// rejection surfaces here as the TLS error it is (for example "certificate required"), rather than
	// as a broken HTTP/2 connection at some later write.
	br := bufio.NewReader(tc)
	deadline, _ := hctx.Deadline()
	tc.SetReadDeadline(deadline)
	if _, err := br.Peek(1); err != nil {
		tc.Close()
		return nil, fmt.Errorf("HBONE %s did not accept the connection: %w", addr, err)
	}
	tc.SetReadDeadline(time.Time{})
	cc, err := c.t.NewClientConn(&peekedConn{Conn: tc, r: br})
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("starting HTTP/2 with %s: %w", addr, err)
	}
	return cc, nil
}

// peekedConn is a TLS connection whose first bytes were read ahead into r.
type peekedConn struct {
	*tls.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// PoolSize reports how many live connections the client holds to proxyAddr, for tests and admin output.
func (c *Client) PoolSize(proxyAddr string) int {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, ccs := range c.pool {
		if k.addr != proxyAddr {
			continue
		}
		for _, cc := range ccs {
			if st := cc.State(); !st.Closed && !st.Closing {
				n++
			}
		}
	}
	return n
}

// Close closes every pooled connection (and with them their streams).
func (c *Client) Close() error {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, ccs := range c.pool {
		for _, cc := range ccs {
			cc.Close()
		}
		delete(c.pool, k)
	}
	return nil
}

func poolIdentity(cfg *tls.Config) string {
	if len(cfg.Certificates) > 0 {
		if leaf := cfg.Certificates[0].Leaf; leaf != nil {
			if id, err := idFromCert(leaf); err == nil {
				return id.String()
			}
		}
	}
	return fmt.Sprintf("tls-config-%p", cfg)
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// Conn is the client end of one HBONE stream.
type Conn struct {
	pw     *io.PipeWriter
	body   io.ReadCloser
	cancel context.CancelFunc
	target string
	proxy  string
	peer   spiffeid.ID

	closeOnce sync.Once
}

var _ net.Conn = (*Conn)(nil)

func (c *Conn) Read(p []byte) (int, error)  { return c.body.Read(p) }
func (c *Conn) Write(p []byte) (int, error) { return c.pw.Write(p) }

// CloseWrite ends the sending direction (END_STREAM); the server reads EOF and may keep replying.
func (c *Conn) CloseWrite() error { return c.pw.Close() }

// Close ends both directions; an unfinished stream is reset.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.pw.Close()
		c.body.Close()
		c.cancel()
	})
	return nil
}

// PeerID is the verified SPIFFE ID of the HBONE server (a waypoint or the destination's node proxy).
func (c *Conn) PeerID() spiffeid.ID { return c.peer }

// Target is the CONNECT authority.
func (c *Conn) Target() string { return c.target }

// LocalAddr is unknown for a multiplexed stream; it reports the target for symmetry with the server side.
func (c *Conn) LocalAddr() net.Addr { return tunnelAddr(c.proxy) }

// RemoteAddr is the stream's target.
func (c *Conn) RemoteAddr() net.Addr { return tunnelAddr(c.target) }

// SetDeadline accepts only the zero time: a stream cannot interrupt a blocked read without resetting it.
func (c *Conn) SetDeadline(t time.Time) error      { return zeroOnly(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return zeroOnly(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return zeroOnly(t) }

func zeroOnly(t time.Time) error {
	if t.IsZero() {
		return nil
	}
	return ErrUnsupported
}

// tunnelAddr is a net.Addr for an "IP:PORT" string.
type tunnelAddr string

func (a tunnelAddr) Network() string { return "hbone" }
func (a tunnelAddr) String() string  { return string(a) }
