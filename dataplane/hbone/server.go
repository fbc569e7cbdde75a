package hbone

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
	"sync/atomic"
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

	h2 http2.Server

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
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		s.logf("HBONE connection from %s refused: ALPN %q, want h2", c.RemoteAddr(), p)
		return
	}
	// CONNECT requests carry no :scheme, so net/http leaves r.TLS nil: the handler gets the state itself.
	cs := tc.ConnectionState()
	s.h2.ServeConn(tc, &http2.ServeConnOpts{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serveHTTP(w, r, &cs)
	})})
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

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request, cs *tls.ConnectionState) {
	if r.Method != http.MethodConnect {
		w.Header().Set("Allow", http.MethodConnect)
		http.Error(w, "HBONE accepts only CONNECT", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get(":protocol") != "" || r.Proto != "HTTP/2.0" {
		http.Error(w, "HBONE accepts only plain HTTP/2 CONNECT", http.StatusBadRequest)
		return
	}
	target, err := netip.ParseAddrPort(r.Host)
	if err != nil {
		http.Error(w, fmt.Sprintf("CONNECT target %q is not IP:PORT", r.Host), http.StatusBadRequest)
		return
	}
	peer, err := PeerID(cs)
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	if s.Authorize != nil {
		if err := s.Authorize(peer, target, r.Header); err != nil {
			s.logf("HBONE stream %s -> %s refused: %v", peer, target, err)
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
	}
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	st := &Stream{
		Peer: peer, Target: target, Header: r.Header,
		ctx: r.Context(), body: r.Body, w: w, rc: rc,
		remote: remoteAddr(r.RemoteAddr),
	}
	s.Handler.ServeHBONE(st)
	st.Close()
}

func remoteAddr(s string) net.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return tunnelAddr(s)
}

// Stream is the server end of one HBONE stream. It is a net.Conn whose LocalAddr is the target and whose
// RemoteAddr is the peer of the tunnel's TCP connection.
type Stream struct {
	// Peer is the verified SPIFFE ID of the client.
	Peer spiffeid.ID
	// Target is the CONNECT :authority.
	Target netip.AddrPort
	// Header holds the CONNECT request headers (Forwarded, Baggage, ...).
	Header http.Header

	ctx    context.Context
	body   io.ReadCloser
	w      http.ResponseWriter
	rc     *http.ResponseController
	remote net.Addr

	wmu         sync.Mutex // ResponseWriter is not safe for concurrent writes
	writeClosed atomic.Bool
}

var _ net.Conn = (*Stream)(nil)

// Context is cancelled when the stream or its connection goes away.
func (s *Stream) Context() context.Context { return s.ctx }

func (s *Stream) Read(p []byte) (int, error) { return s.body.Read(p) }

func (s *Stream) Write(p []byte) (int, error) {
	if s.writeClosed.Load() {
		return 0, net.ErrClosed
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	n, err := s.w.Write(p)
	if err != nil {
		return n, err
	}
	return n, s.rc.Flush()
}

// CloseWrite refuses further writes. HTTP/2 servers in Go send END_STREAM only when the handler returns,
// so the peer sees EOF then; reading continues until it.
func (s *Stream) CloseWrite() error {
	s.writeClosed.Store(true)
	return nil
}

// Close ends both directions; the handler should return soon after.
func (s *Stream) Close() error {
	s.CloseWrite()
	return s.body.Close()
}

func (s *Stream) LocalAddr() net.Addr  { return net.TCPAddrFromAddrPort(s.Target) }
func (s *Stream) RemoteAddr() net.Addr { return s.remote }

func (s *Stream) SetDeadline(t time.Time) error {
	if err := s.SetReadDeadline(t); err != nil {
		return err
	}
	return s.SetWriteDeadline(t)
}
func (s *Stream) SetReadDeadline(t time.Time) error  { return s.rc.SetReadDeadline(t) }
func (s *Stream) SetWriteDeadline(t time.Time) error { return s.rc.SetWriteDeadline(t) }
