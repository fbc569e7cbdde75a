package hbone

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"
)

// Handler serves one tunnelled stream. The stream is valid until ServeHBONE returns; returning ends the
// stream (END_STREAM), so a handler that wants to half-close should call CloseWrite and keep reading.
type Handler interface {
	ServeHBONE(*Stream)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(*Stream)

// ServeHBONE calls f(s).
func (f HandlerFunc) ServeHBONE(s *Stream) { f(s) }

// Server terminates HBONE: it accepts TLS connections, verifies the peer's SVID (through TLSConfig), and
// serves CONNECT streams whose :authority is an "IP:PORT" target. Anything else gets 405 or 400.
type Server struct {
	// TLSConfig must require and verify client certificates (see ServerTLSConfig).
	TLSConfig *tls.Config
	Handler   Handler
	// Authorize, if set, decides per stream; an error refuses the CONNECT with 403 and the error text.
	Authorize func(peer spiffeid.ID, target netip.AddrPort, h http.Header) error
	// HandshakeTimeout bounds the TLS handshake (default 10s).
	HandshakeTimeout time.Duration
	// Logf reports refused handshakes and streams; nil discards.
	Logf func(format string, args ...any)

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("hbone: server closed")

// Serve accepts connections on l until Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[net.Conn]struct{}{}
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accepting HBONE connections: %w", err)
		}
		delay = 0
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.ServeConn(c)
		}()
	}
}

// ServeConn handshakes TLS on c and serves its streams until the connection ends.
func (s *Server) ServeConn(c net.Conn) {
	if !s.track(c, true) {
		c.Close()
		return
	}
	defer s.track(c, false)
	defer c.Close()
	timeout := s.HandshakeTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	tc := tls.Server(c, s.TLSConfig)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.logf("HBONE handshake from %s refused: %v", c.RemoteAddr(), err)
		return
	}
	cs := tc.ConnectionState()
	if p := cs.NegotiatedProtocol; p != "h2" {
		s.logf("HBONE connection from %s refused: ALPN %q, want h2", c.RemoteAddr(), p)
		return
	}
	peer, err := PeerID(&cs)
	if err != nil {
		s.logf("HBONE connection from %s refused: %v", c.RemoteAddr(), err)
		return
	}
	var leaf *x509.Certificate
	if len(cs.PeerCertificates) > 0 {
		leaf = cs.PeerCertificates[0]
	}
	s.serveH2(tc, peer, leaf, c.RemoteAddr(), timeout)
}

// serveH2 speaks HTTP/2 on an authenticated connection (tc, the TLS connection, whose peer is peer with
// leaf certificate peerCert) from the client preface on, until the connection ends; streams are served in
// their own goroutines, which may outlive it. It is split from ServeConn so that the fuzz test can drive it with raw bytes; it returns the
// connection (nil if there was none) so that the test can wait for the stream handlers.
func (s *Server) serveH2(tc net.Conn, peer spiffeid.ID, peerCert *x509.Certificate, remote net.Addr, timeout time.Duration) *h2conn {
	br := bufio.NewReaderSize(tc, readBufferSize)
	tc.SetReadDeadline(time.Now().Add(timeout))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(br, preface); err != nil || string(preface) != http2.ClientPreface {
		s.logf("HBONE connection from %s refused: no HTTP/2 client preface", remote)
		return nil
	}
	hc := newH2Conn(tc, br, false)
	hc.peer, hc.logf = peer, s.Logf
	hc.peerCert = peerCert
	hc.onStream = func(st *stream) { s.serveStream(hc, st, remote) }
	if err := hc.writePreface(); err != nil {
		return hc
	}
	if err := hc.readPeerSettings(); err != nil {
		s.logf("HBONE connection from %s refused: %v", remote, err)
		if code, ok := connErrorCode(err); ok {
			hc.goAwayAndClose(code, err)
		}
		return hc
	}
	tc.SetReadDeadline(time.Time{})
	hc.watchHealth(readIdleTimeout, pingTimeout)
	hc.readLoop()
	return hc
}

func (s *Server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[net.Conn]struct{}{}
	}
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// Close stops the listeners and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// serveStream answers one CONNECT and runs the handler on it.
func (s *Server) serveStream(hc *h2conn, st *stream, remote net.Addr) {
	defer st.Close()
	st.mu.Lock()
	method, authority, protocol, header, truncated := st.method, st.authority, st.protocol, st.header, st.truncated
	st.mu.Unlock()
	refuse := func(code int, msg string, h http.Header) {
		if h == nil {
			h = http.Header{}
		}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		if hc.respond(st, code, h, false) == nil {
			st.Write([]byte(msg + "\n"))
		}
	}
	if method != http.MethodConnect {
		refuse(http.StatusMethodNotAllowed, "HBONE accepts only CONNECT", http.Header{"Allow": {http.MethodConnect}})
		return
	}
	if protocol != "" {
		refuse(http.StatusBadRequest, "HBONE accepts only plain HTTP/2 CONNECT", nil)
		return
	}
	if truncated {
		// The framer stopped keeping fields at the advertised limit: serving the rest would silently drop
		// headers (Forwarded, Baggage) the client sent.
		refuse(http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("HBONE request headers exceed %d bytes", maxHeaderList), nil)
		return
	}
	target, err := netip.ParseAddrPort(authority)
	if err != nil {
		refuse(http.StatusBadRequest, fmt.Sprintf("CONNECT target %q is not IP:PORT", authority), nil)
		return
	}
	if s.Authorize != nil {
		if err := s.Authorize(hc.peer, target, header); err != nil {
			s.logf("HBONE stream %s -> %s refused: %v", hc.peer, target, err)
			refuse(http.StatusForbidden, err.Error(), nil)
			return
		}
	}
	if err := hc.respond(st, http.StatusOK, nil, false); err != nil {
		return
	}
	s.Handler.ServeHBONE(&Stream{stream: st, Peer: hc.peer, PeerCert: hc.peerCert, Target: target, Header: header, remote: remoteAddr(remote)})
}

func remoteAddr(a net.Addr) net.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return t
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return tunnelAddr(a.String())
}

// Stream is the server end of one HBONE stream. It is a net.Conn whose LocalAddr is the target and whose
// RemoteAddr is the peer of the tunnel's TCP connection. Read, Write, WriteTo, CloseWrite (END_STREAM),
// Close and the deadlines come from the stream.
type Stream struct {
	*stream
	// Peer is the verified SPIFFE ID of the client.
	Peer spiffeid.ID
	// PeerCert is the client's verified leaf certificate.
	PeerCert *x509.Certificate
	// Target is the CONNECT :authority.
	Target netip.AddrPort
	// Header holds the CONNECT request headers (Forwarded, Baggage, ...).
	Header http.Header

	remote net.Addr
}

var _ net.Conn = (*Stream)(nil)

// Context is cancelled when the stream or its connection goes away.
func (s *Stream) Context() context.Context { return s.ctx }

func (s *Stream) LocalAddr() net.Addr  { return net.TCPAddrFromAddrPort(s.Target) }
func (s *Stream) RemoteAddr() net.Addr { return s.remote }
