package hbone_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshlab/meshlab/dataplane/hbone"
)

// Bad input to the HBONE port (15008): whatever one client sends, or fails to send, the server goes on
// serving the others. Each case ends by proving that a well-behaved client still gets a tunnel.

// stillServes opens a tunnel with a fresh client and checks the echo.
func stillServes(t *testing.T, f *fixture) {
	t.Helper()
	client := &hbone.Client{}
	defer client.Close()
	conn, err := client.Connect(ctx(t), hbone.Request{ProxyAddr: f.addr, Target: "10.244.0.9:9080", TLS: f.clientTLS(t, clientID)})
	if err != nil {
		t.Fatalf("a well-behaved client cannot connect: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("still here")); err != nil {
		t.Fatalf("a well-behaved client cannot write: %v", err)
	}
	conn.CloseWrite()
	got, err := io.ReadAll(conn)
	if err != nil || !bytes.HasPrefix(got, []byte("still here")) {
		t.Fatalf("a well-behaved client got %q, %v", got, err)
	}
}

// rawH2 is an authenticated TLS connection on which the test writes HTTP/2 frames by hand.
type rawH2 struct {
	*tls.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

func dialRaw(t *testing.T, f *fixture) *rawH2 {
	t.Helper()
	cfg := f.clientTLS(t, clientID)
	c, err := tls.Dial("tcp", f.addr, cfg)
	if err != nil {
		t.Fatalf("TLS to the HBONE port: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawH2{Conn: c}
	r.fr = http2.NewFramer(c, c)
	r.henc = hpack.NewEncoder(&r.hbuf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rawH2) block(fields ...string) []byte {
	r.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		r.henc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(r.hbuf.Bytes())
}

// untilClosed reads frames until the server closes the connection and returns the GOAWAY it sent, if any.
func (r *rawH2) untilClosed(t *testing.T) *http2.GoAwayFrame {
	t.Helper()
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	var goAway *http2.GoAwayFrame
	for {
		fr, err := r.fr.ReadFrame()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server did not close a connection that broke the protocol")
		}
		if err != nil {
			return goAway
		}
		if g, ok := fr.(*http2.GoAwayFrame); ok {
			goAway = g
		}
	}
}

// streamEnd reads frames until stream id ends (RST_STREAM or END_STREAM) or the connection closes, and
// returns the response status the server sent on it (0 for none).
func (r *rawH2) streamEnd(t *testing.T, id uint32) (status string, closed bool) {
	t.Helper()
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	for {
		fr, err := r.fr.ReadFrame()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("stream %d neither answered nor ended", id)
		}
		if err != nil {
			return status, true
		}
		if fr.Header().StreamID != id {
			continue
		}
		switch fr := fr.(type) {
		case *http2.MetaHeadersFrame:
			status = fr.PseudoValue("status")
			if fr.StreamEnded() {
				return status, false
			}
		case *http2.DataFrame:
			if fr.StreamEnded() {
				return status, false
			}
		case *http2.RSTStreamFrame:
			return status, false
		}
	}
}

func TestBadInputToHBONEPort(t *testing.T) {
	f := newServer(t, echo, nil)

	t.Run("plaintext HTTP/1.1", func(t *testing.T) {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: reviews\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil && strings.Contains(err.Error(), "timeout") {
			t.Fatal("the server keeps a plaintext connection open")
		}
		stillServes(t, f)
	})

	t.Run("random bytes after the preface", func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(1, 2))
		for i := range 20 {
			r := dialRaw(t, f)
			junk := make([]byte, 1+rnd.IntN(4096))
			for j := range junk {
				junk[j] = byte(rnd.Uint32())
			}
			if i%2 == 0 { // half of them after a valid SETTINGS, so that the read loop sees the junk
				r.fr.WriteSettings()
			}
			r.Write(junk)
			r.untilClosed(t)
		}
		stillServes(t, f)
	})

	t.Run("protocol errors end the connection with GOAWAY", func(t *testing.T) {
		for name, write := range map[string]func(r *rawH2){
			"HEADERS on an even stream": func(r *rawH2) {
				r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 2, BlockFragment: r.block(":method", "CONNECT", ":authority", "10.0.0.1:80"), EndHeaders: true})
			},
			"DATA on an idle stream": func(r *rawH2) { r.fr.WriteData(5, false, []byte("x")) },
			"PUSH_PROMISE from a client": func(r *rawH2) {
				r.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: r.block(":method", "GET"), EndHeaders: true})
			},
			"a frame larger than the server's maximum": func(r *rawH2) { r.fr.WriteRawFrame(http2.FrameData, 0, 1, make([]byte, 20<<10)) },
			"SETTINGS with an invalid window": func(r *rawH2) {
				r.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31})
			},
		} {
			r := dialRaw(t, f)
			r.fr.WriteSettings()
			write(r)
			if g := r.untilClosed(t); g == nil || g.ErrCode == http2.ErrCodeNo {
				t.Errorf("%s: the server closed without a GOAWAY naming an error (%v)", name, g)
			}
		}
		stillServes(t, f)
	})

	t.Run("oversized request headers", func(t *testing.T) {
		r := dialRaw(t, f)
		r.fr.WriteSettings()
		// 100 KiB of headers against the advertised 64 KiB SETTINGS_MAX_HEADER_LIST_SIZE, in CONTINUATION
		// frames within the frame size limit.
		block := r.block(":method", "CONNECT", ":authority", "10.244.0.9:9080", "x-big", strings.Repeat("a", 100<<10))
		const chunk = 16 << 10
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:chunk]})
		for rest := block[chunk:]; len(rest) > 0; {
			n := min(len(rest), chunk)
			r.fr.WriteContinuation(1, n == len(rest), rest[:n])
			rest = rest[n:]
		}
		if status, closed := r.streamEnd(t, 1); status == "200" {
			t.Errorf("a CONNECT with 100 KiB of headers was accepted (closed=%v)", closed)
		}
		stillServes(t, f)
	})

	t.Run("headers just over the limit are refused, not cut", func(t *testing.T) {
		// 60 KiB then 7000 bytes: the framer accepts the block but drops the second field (it is past the
		// 64 KiB limit). Serving the CONNECT without it would silently lose what the client sent.
		r := dialRaw(t, f)
		r.fr.WriteSettings()
		head := r.block(":method", "CONNECT", ":authority", "10.244.0.9:9080", "x-a", strings.Repeat("a", 60<<10))
		tail := r.block("x-b", strings.Repeat("b", 7000))
		const chunk = 16 << 10
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head[:chunk]})
		for rest := head[chunk:]; len(rest) > 0; {
			n := min(len(rest), chunk)
			r.fr.WriteContinuation(1, false, rest[:n])
			rest = rest[n:]
		}
		r.fr.WriteContinuation(1, true, tail)
		if status, closed := r.streamEnd(t, 1); status != "431" || closed {
			t.Errorf("a CONNECT whose headers were cut got status %q (closed=%v), want 431 on a live connection", status, closed)
		}
		stillServes(t, f)
	})

	t.Run("a non-CONNECT request is refused, the connection stays up", func(t *testing.T) {
		r := dialRaw(t, f)
		r.fr.WriteSettings()
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(":method", "GET", ":scheme", "https", ":path", "/", ":authority", "reviews"), EndHeaders: true, EndStream: true})
		if status, closed := r.streamEnd(t, 1); status != "405" || closed {
			t.Errorf("GET got status %q (closed=%v), want 405 on a live connection", status, closed)
		}
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: r.block(":method", "CONNECT", ":authority", "10.244.0.9:9080"), EndHeaders: true, EndStream: true})
		if status, closed := r.streamEnd(t, 3); status != "200" || closed {
			t.Errorf("the CONNECT after it got status %q (closed=%v), want 200", status, closed)
		}
	})
}

// TestSlowClientsDoNotBlockOthers holds the HBONE port's resources in the ways a slow or stuck client can:
// a TCP connection that never starts TLS, a TLS connection that stops in the middle of the preface, and a
// tunnel whose client sends but never reads (the server's echo stalls on flow control). Each time a second
// client is served, and the server drops the connections that never finish their handshake.
func TestSlowClientsDoNotBlockOthers(t *testing.T) {
	f := newServer(t, echo, nil)
	f.server.HandshakeTimeout = 500 * time.Millisecond

	silent, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, err := tls.Dial("tcp", f.addr, f.clientTLS(t, clientID))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, http2.ClientPreface[:10])

	// A tunnel whose reader never reads: 8 MiB echoed back exceeds every window the client grants.
	stuckClient := &hbone.Client{}
	defer stuckClient.Close()
	stuck, err := stuckClient.Connect(ctx(t), hbone.Request{ProxyAddr: f.addr, Target: "10.244.0.9:9080", TLS: f.clientTLS(t, clientID)})
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	wrote := make(chan error, 1)
	go func() {
		_, err := stuck.Write(make([]byte, 8<<20))
		wrote <- err
	}()

	start := time.Now()
	stillServes(t, f)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a well-behaved client waited %v behind slow ones", d)
	}

	for name, conn := range map[string]net.Conn{"a connection that never starts TLS": silent, "a connection stuck in the preface": c} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s is still open after the handshake timeout", name)
		}
	}
	select {
	case err := <-wrote:
		t.Fatalf("8 MiB were written to a tunnel whose echo is never read (%v): flow control is not applied", err)
	default:
	}
}
