package hbone_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/nettest"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/meshlab/meshlab/dataplane/hbone"
	"github.com/meshlab/meshlab/identity/ca"
)

// pattern is n bytes that differ by position, so that reordering or loss changes the digest.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>10)
	}
	return b
}

// flushWriter flushes after every write, as a tunnel must.
type flushWriter struct {
	w http.ResponseWriter
	f *http.ResponseController
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.f.Flush()
	}
	return n, err
}

// TestClientAgainstXNetServer: meshlab's client against x/net's HTTP/2 server with the smallest windows it
// allows, so that the client's writes must wait for window updates many times over.
func TestClientAgainstXNetServer(t *testing.T) {
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := &http2.Server{MaxUploadBufferPerStream: 16 << 10, MaxUploadBufferPerConnection: 64 << 10}
	cfg := hbone.ServerTLSConfig(issue(t, authority, serverID), authority.Bundle(), tlsconfig.AuthorizeAny())
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, cfg)
			if tc.Handshake() != nil {
				c.Close()
				continue
			}
			go srv.ServeConn(tc, &http2.ServeConnOpts{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodConnect || r.Host != "10.244.0.9:9080" || r.Header.Get("Baggage") != "k8s.pod.name=sleep" {
					http.Error(w, "unexpected request", http.StatusBadRequest)
					return
				}
				w.WriteHeader(http.StatusOK)
				rc := http.NewResponseController(w)
				rc.Flush()
				io.Copy(flushWriter{w, rc}, r.Body)
			})})
		}
	}()
	client := &hbone.Client{}
	defer client.Close()
	conn, err := client.Connect(ctx(t), hbone.Request{
		ProxyAddr: l.Addr().String(), Target: "10.244.0.9:9080",
		TLS:    hbone.ClientTLSConfig(issue(t, authority, clientID), authority.Bundle(), tlsconfig.AuthorizeID(serverID)),
		Header: http.Header{hbone.HeaderBaggage: {"k8s.pod.name=sleep"}},
	})
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	defer conn.Close()
	payload := pattern(3 << 20)
	go func() {
		if _, err := conn.Write(payload); err != nil {
			t.Errorf("Write() = %v", err)
		}
		conn.CloseWrite()
	}()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("ReadAll() = %v", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatalf("echo of %d bytes came back as %d different bytes", len(payload), len(got))
	}
}

// TestServerAgainstXNetTransport: x/net's HTTP/2 client opens a CONNECT stream to meshlab's server and
// streams through it both ways.
func TestServerAgainstXNetTransport(t *testing.T) {
	f := newServer(t, func(s *hbone.Stream) { io.Copy(s, s) }, nil)
	tr := &http2.Transport{TLSClientConfig: f.clientTLS(t, clientID)}
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	req, _ := http.NewRequestWithContext(ctx(t), http.MethodConnect, "https://"+f.addr, pr)
	req.Host = "10.244.0.9:9080"
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip(CONNECT) = %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT = %d, want 200", resp.StatusCode)
	}
	payload := pattern(3 << 20)
	go func() {
		pw.Write(payload)
		pw.Close()
	}()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echo of %d bytes came back as %d different bytes", len(payload), len(got))
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

// TestWriteToSocketKeepsOrderWhenItFills: the read loop writes into the destination socket directly until
// that socket is full, then buffers, and WriteTo flushes; the bytes must arrive complete and in order, and
// the counter must see all of them.
func TestWriteToSocketKeepsOrderWhenItFills(t *testing.T) {
	payload := pattern(24 << 20)
	f := newServer(t, func(s *hbone.Stream) { s.Write(payload) }, nil)
	client := &hbone.Client{}
	defer client.Close()
	conn, err := client.Connect(ctx(t), hbone.Request{ProxyAddr: f.addr, Target: "10.244.0.9:9080", TLS: f.clientTLS(t, clientID)})
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	defer conn.Close()
	dst, reader := tcpPair(t)
	dst.SetWriteBuffer(64 << 10) // small, so that it fills often
	digest := make(chan [32]byte, 1)
	go func() {
		h := sha256.New()
		buf := make([]byte, 8<<10)
		for i := 0; ; i++ {
			if i < 300 {
				time.Sleep(time.Millisecond) // a slow application at first: the socket fills up
			}
			n, err := reader.Read(buf)
			h.Write(buf[:n])
			if err != nil {
				break
			}
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		digest <- sum
	}()
	var counted atomic.Int64
	n, err := conn.WriteToCounting(dst, &counted)
	if err != nil {
		t.Fatalf("WriteToCounting() = %d, %v", n, err)
	}
	dst.CloseWrite()
	if n != int64(len(payload)) || counted.Load() != n {
		t.Errorf("WriteToCounting() = %d bytes, counted %d, want %d", n, counted.Load(), len(payload))
	}
	if <-digest != sha256.Sum256(payload) {
		t.Fatal("bytes arrived out of order or incomplete")
	}
}

// TestStreamSlotsAreReused: more streams than the server allows at once, one after another, all on one
// connection: every finished stream frees its slot on both ends.
func TestStreamSlotsAreReused(t *testing.T) {
	f := newServer(t, func(s *hbone.Stream) { io.Copy(s, s) }, nil)
	client := &hbone.Client{}
	defer client.Close()
	cfg := f.clientTLS(t, clientID)
	for i := range 1500 {
		conn, err := client.Dial(ctx(t), f.addr, "10.244.0.9:9080", cfg)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		io.WriteString(conn, "x")
		conn.(*hbone.Conn).CloseWrite()
		if b, err := io.ReadAll(conn); err != nil || string(b) != "x" {
			t.Fatalf("stream %d: read %q, %v", i, b, err)
		}
		if i%2 == 0 {
			conn.Close()
		}
	}
	if n := f.accept.Load(); n != 1 {
		t.Errorf("%d connections for 1500 sequential streams, want 1", n)
	}
}

// TestReadDeadline: net/http aborts its background read with a deadline in the past; the stream must
// honour it and keep working after the deadline is cleared.
func TestReadDeadline(t *testing.T) {
	f := newServer(t, func(s *hbone.Stream) { io.Copy(s, s) }, nil)
	conn, err := hbone.Dial(ctx(t), f.addr, "10.244.0.9:9080", f.clientTLS(t, clientID))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	start := time.Now()
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read() past the deadline = %v, want a deadline error", err)
	}
	if d := time.Since(start); d < 25*time.Millisecond {
		t.Errorf("Read() returned after %v, before the deadline", d)
	}
	conn.SetReadDeadline(time.Time{})
	io.WriteString(conn, "still here")
	buf := make([]byte, 10)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("after clearing the deadline: %q, %v", buf, err)
	}
}

// TestPeerGoneFailsStreams: when the client's connection goes away, a server handler blocked in Read
// returns and its Context is cancelled.
func TestPeerGoneFailsStreams(t *testing.T) {
	done := make(chan error, 1)
	var ctxDone atomic.Bool
	f := newServer(t, func(s *hbone.Stream) {
		_, err := io.ReadAll(s)
		select {
		case <-s.Context().Done():
			ctxDone.Store(true)
		case <-time.After(time.Second):
		}
		done <- err
	}, nil)
	client := &hbone.Client{}
	conn, err := client.Dial(ctx(t), f.addr, "10.244.0.9:9080", f.clientTLS(t, clientID))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "half a request")
	client.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("handler read a clean EOF from a connection that went away")
		}
		if !ctxDone.Load() {
			t.Error("stream context not cancelled")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler still blocked after the client closed its connection")
	}
}

// TestNetConnConformance runs x/net's net.Conn conformance suite over an HBONE stream: concurrent reads and
// writes, deadlines, and Close interrupting blocked calls.
func TestNetConnConformance(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		streams := make(chan *hbone.Stream, 1)
		release := make(chan struct{})
		f := newServer(t, func(s *hbone.Stream) {
			streams <- s
			<-release
		}, nil)
		client := &hbone.Client{}
		conn, err := client.Dial(ctx(t), f.addr, "10.244.0.9:9080", f.clientTLS(t, clientID))
		if err != nil {
			return nil, nil, nil, err
		}
		s := <-streams
		return conn, s, func() {
			conn.Close()
			s.Close()
			close(release)
			client.Close()
		}, nil
	})
}

// TestConnectReopensUnprocessedStreams: a stream the server refuses without processing it — above the last
// stream ID of its GOAWAY, or reset with REFUSED_STREAM — is opened again on a new connection, and the
// application gets a working stream instead of an error.
func TestConnectReopensUnprocessedStreams(t *testing.T) {
	for name, refuse := range map[string]func(fr *http2.Framer, streamID uint32) error{
		"GOAWAY": func(fr *http2.Framer, _ uint32) error { return fr.WriteGoAway(0, http2.ErrCodeNo, nil) },
		"REFUSED_STREAM": func(fr *http2.Framer, id uint32) error {
			return fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newServer(t, func(s *hbone.Stream) { io.Copy(s, s) }, nil)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var accepted, refused atomic.Int32
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					if accepted.Add(1) > 1 {
						go f.server.ServeConn(c) // later connections get the real server
						continue
					}
					go func() {
						defer c.Close()
						// Counted before the refusal is sent, so before the client can react to it.
						refuseAll(c, f.server.TLSConfig, func(fr *http2.Framer, id uint32) error {
							refused.Add(1)
							return refuse(fr, id)
						})
					}()
				}
			}()
			client := &hbone.Client{}
			defer client.Close()
			conn, err := client.Dial(ctx(t), l.Addr().String(), "10.244.0.9:9080", f.clientTLS(t, clientID))
			if err != nil {
				t.Fatalf("Dial() = %v, want the stream opened again on a new connection", err)
			}
			defer conn.Close()
			io.WriteString(conn, "hello")
			conn.(*hbone.Conn).CloseWrite()
			got, err := io.ReadAll(conn)
			if err != nil || string(got) != "hello" {
				t.Fatalf("echo = %q, %v; want hello", got, err)
			}
			if refused.Load() != 1 || accepted.Load() != 2 {
				t.Errorf("refusing server refused %d streams, %d connections accepted; want 1 and 2", refused.Load(), accepted.Load())
			}
		})
	}
}

// refuseAll is an HTTP/2 server that answers the first CONNECT on c with refuse and then waits for the
// client to go.
func refuseAll(c net.Conn, cfg *tls.Config, refuse func(fr *http2.Framer, streamID uint32) error) {
	tc := tls.Server(c, cfg)
	if _, err := io.ReadFull(tc, make([]byte, len(http2.ClientPreface))); err != nil {
		return
	}
	fr := http2.NewFramer(tc, tc)
	if fr.WriteSettings() != nil {
		return
	}
	refused := false
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if !refused {
				refused = true
				refuse(fr, f.StreamID)
			}
		}
	}
}

// TestConnectGivesUpOnAPeerThatRefusesEverything: reopening is bounded; the refusal reaches the caller.
func TestConnectGivesUpOnAPeerThatRefusesEverything(t *testing.T) {
	f := newServer(t, echo, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				refuseAll(c, f.server.TLSConfig, func(fr *http2.Framer, id uint32) error {
					return fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
				})
			}()
		}
	}()
	client := &hbone.Client{}
	defer client.Close()
	_, err = client.Dial(ctx(t), l.Addr().String(), "10.244.0.9:9080", f.clientTLS(t, clientID))
	if err == nil || !strings.Contains(err.Error(), "REFUSED_STREAM") {
		t.Fatalf("Dial() = %v, want the peer's REFUSED_STREAM", err)
	}
	if n := accepted.Load(); n != 3 {
		t.Errorf("client opened %d connections, want 3 attempts", n)
	}
}
