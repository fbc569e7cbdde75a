package hbone

import (
	"bufio"
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

	"github.com/spiffe/go-spiffe/v2/spiffeid"
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

	mu      sync.Mutex
	pool    map[poolKey][]*h2conn
	dialing map[poolKey]chan struct{}
}

type poolKey struct{ addr, identity string }

// Pooled connections are closed after this long without streams, and pinged after this long without
// hearing from the peer.
const (
	idleTimeout     = 5 * time.Minute
	readIdleTimeout = 30 * time.Second
	pingTimeout     = 10 * time.Second
)

// maxConnectAttempts bounds how often Connect opens a stream the peer did not process.
const maxConnectAttempts = 3

func (c *Client) init() {
	if c.pool == nil {
		c.pool = map[poolKey][]*h2conn{}
		c.dialing = map[poolKey]chan struct{}{}
	}
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
	var (
		hc     *h2conn
		s      *stream
		status int
	)
	for attempt := 1; ; attempt++ {
		var err error
		if hc, err = c.clientConn(ctx, key, r.TLS); err != nil {
			return nil, err
		}
		if s, err = hc.openStream(r.Target, r.Header); err == nil {
			if status, err = s.awaitResponse(ctx); err != nil {
				s.Close()
			}
		}
		if err == nil {
			break
		}
		// A stream the peer did not process is opened again (on another connection: a refusing or
		// departing one takes no new streams), as an HTTP/2 client retries an unprocessed request.
		var unprocessed *unprocessedError
		if !errors.As(err, &unprocessed) || attempt == maxConnectAttempts {
			return nil, fmt.Errorf("HBONE CONNECT %s via %s: %w", r.Target, r.ProxyAddr, err)
		}
	}
	if status < 200 || status > 299 {
		// The refusal's body says why; the server ends the stream right after it.
		s.SetReadDeadline(time.Now().Add(time.Second))
		reason, _ := io.ReadAll(io.LimitReader(s, 512))
		s.Close()
		return nil, &StatusError{Code: status, Target: r.Target, Reason: string(trimSpace(reason))}
	}
	return &Conn{stream: s, target: r.Target, proxy: r.ProxyAddr, peer: hc.peer}, nil
}

// awaitResponse waits for the response HEADERS, the stream's failure, or ctx.
func (s *stream) awaitResponse(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.status == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-ctx.Done():
			s.mu.Lock()
			return 0, ctx.Err()
		}
		s.mu.Lock()
	}
	return s.status, nil
}

// clientConn returns a pooled connection with a reserved stream slot, dialling one if none can take a
// stream. Concurrent callers for the same key wait for a single dial rather than each opening a connection.
func (c *Client) clientConn(ctx context.Context, key poolKey, cfg *tls.Config) (*h2conn, error) {
	for {
		c.mu.Lock()
		c.init()
		live := c.pool[key][:0]
		var found *h2conn
		for _, hc := range c.pool[key] {
			if !hc.usable() {
				continue
			}
			live = append(live, hc)
			if found == nil && hc.reserve() {
				found = hc
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

		hc, err := c.dialConn(ctx, key.addr, cfg)
		c.mu.Lock()
		delete(c.dialing, key)
		close(done)
		if err != nil {
			c.mu.Unlock()
			return nil, err
		}
		c.pool[key] = append(c.pool[key], hc)
		c.mu.Unlock()
	}
}

func (c *Client) dialConn(ctx context.Context, addr string, cfg *tls.Config) (*h2conn, error) {
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
	cs := tc.ConnectionState()
	if p := cs.NegotiatedProtocol; p != "h2" {
		tc.Close()
		return nil, fmt.Errorf("HBONE %s negotiated %q, want h2", addr, p)
	}
	hc := newH2Conn(tc, bufio.NewReaderSize(tc, readBufferSize), true)
	hc.peer, _ = PeerID(&cs)
	if err := hc.writePreface(); err != nil {
		tc.Close()
		return nil, fmt.Errorf("starting HTTP/2 with %s: %w", addr, err)
	}
	// TLS 1.3: the server verifies our certificate only after our side of the handshake is done, and
	// then answers with its HTTP/2 SETTINGS or with an alert. Wait for that first record, so that a
	// rejection surfaces here as the TLS error it is (for example "certificate required"), rather than
	// as a broken connection at some later write.
	deadline, _ := hctx.Deadline()
	tc.SetReadDeadline(deadline)
	if err := hc.readPeerSettings(); err != nil {
		tc.Close()
		return nil, fmt.Errorf("HBONE %s did not accept the connection: %w", addr, err)
	}
	tc.SetReadDeadline(time.Time{})
	hc.idleTimeout = idleTimeout
	hc.idle = time.AfterFunc(idleTimeout, hc.close)
	hc.start(readIdleTimeout, pingTimeout)
	return hc, nil
}

// readBufferSize is the buffered reader between TLS and the frame reader: a few frames' worth.
const readBufferSize = 4 * (maxFrameSize + 9)

// PoolSize reports how many live connections the client holds to proxyAddr, for tests and admin output.
func (c *Client) PoolSize(proxyAddr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, hcs := range c.pool {
		if k.addr != proxyAddr {
			continue
		}
		for _, hc := range hcs {
			if hc.usable() {
				n++
			}
		}
	}
	return n
}

// Close closes every pooled connection (and with them their streams).
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, hcs := range c.pool {
		for _, hc := range hcs {
			hc.close()
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

// Conn is the client end of one HBONE stream. Read, Write, WriteTo, CloseWrite (END_STREAM), Close (resets
// an unfinished stream) and the deadlines come from the stream.
type Conn struct {
	*stream
	target string
	proxy  string
	peer   spiffeid.ID
}

var _ net.Conn = (*Conn)(nil)

// PeerID is the verified SPIFFE ID of the HBONE server (a waypoint or the destination's node proxy).
func (c *Conn) PeerID() spiffeid.ID { return c.peer }

// Target is the CONNECT authority.
func (c *Conn) Target() string { return c.target }

// LocalAddr is unknown for a multiplexed stream; it reports the target for symmetry with the server side.
func (c *Conn) LocalAddr() net.Addr { return tunnelAddr(c.proxy) }

// RemoteAddr is the stream's target.
func (c *Conn) RemoteAddr() net.Addr { return tunnelAddr(c.target) }

// tunnelAddr is a net.Addr for an "IP:PORT" string.
type tunnelAddr string

func (a tunnelAddr) Network() string { return "hbone" }
func (a tunnelAddr) String() string  { return string(a) }
