package hbone

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// scriptConn is the server's side of a connection whose peer sends a fixed script of bytes and then closes
// its side: reads return the script, then (once drain has returned) EOF; writes are recorded.
type scriptConn struct {
	r *bytes.Reader
	// drain runs once when the script is consumed, before EOF: the test lets the handlers answer.
	drain func()
	once  sync.Once

	mu     sync.Mutex
	out    bytes.Buffer
	closed bool
}

func (c *scriptConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	if c.r.Len() == 0 && c.drain != nil {
		c.once.Do(c.drain)
	}
	return c.r.Read(p)
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.out.Write(p)
}

func (c *scriptConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *scriptConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

func (*scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 15008} }
func (*scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 40000} }
func (*scriptConn) SetDeadline(time.Time) error      { return nil }
func (*scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (*scriptConn) SetWriteDeadline(time.Time) error { return nil }

// frames builds a client's byte stream (after the preface) with a real framer and HPACK encoder.
type frames struct {
	buf  bytes.Buffer
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

func newFrames() *frames {
	f := &frames{}
	f.fr = http2.NewFramer(&f.buf, nil)
	f.henc = hpack.NewEncoder(&f.hbuf)
	return f
}

func (f *frames) block(fields ...string) []byte {
	f.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		f.henc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(f.hbuf.Bytes())
}

func (f *frames) connect(id uint32, authority string, end bool) *frames {
	f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: f.block(":method", "CONNECT", ":authority", authority, "baggage", "k=v"), EndHeaders: true, EndStream: end})
	return f
}

func (f *frames) bytes() []byte { return bytes.Clone(f.buf.Bytes()) }

// fuzzSeeds are client byte streams a real HBONE client sends, and the corners of the protocol around them.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	add := func(build func(f *frames)) {
		f := newFrames()
		build(f)
		seeds = append(seeds, f.bytes())
	}
	add(func(f *frames) { // one stream, bytes both ways, closed by the client
		f.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 4 << 20}, http2.Setting{ID: http2.SettingEnablePush, Val: 0})
		f.fr.WriteWindowUpdate(0, 1<<20)
		f.connect(1, "10.0.0.2:8080", false)
		f.fr.WriteData(1, false, []byte("hello"))
		f.fr.WriteData(1, true, nil)
	})
	add(func(f *frames) { // two streams, control frames in between
		f.fr.WriteSettings()
		f.connect(1, "10.0.0.2:8080", false)
		f.connect(3, "[fd00::2]:9080", false)
		f.fr.WritePing(false, [8]byte{1})
		f.fr.WriteData(3, false, []byte("ping"))
		f.fr.WriteWindowUpdate(1, 100)
		f.fr.WriteRSTStream(1, http2.ErrCodeCancel)
		f.fr.WriteData(1, false, []byte("after reset"))
		f.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
		f.fr.WriteData(3, true, []byte("bye"))
	})
	add(func(f *frames) { // refused requests: not CONNECT, extended CONNECT, a host name target
		f.fr.WriteSettings()
		f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: f.block(":method", "GET", ":path", "/", ":scheme", "https", ":authority", "x"), EndHeaders: true, EndStream: true})
		f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: f.block(":method", "CONNECT", ":protocol", "websocket", ":authority", "10.0.0.2:80"), EndHeaders: true})
		f.connect(5, "reviews:9080", true)
	})
	add(func(f *frames) { // a header block split over CONTINUATION frames, then trailers
		f.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20}, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
		b := f.block(":method", "CONNECT", ":authority", "10.0.0.2:8080", "forwarded", "for=10.0.0.1")
		f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:3]})
		f.fr.WriteContinuation(1, false, b[3:6])
		f.fr.WriteContinuation(1, true, b[6:])
		f.fr.WriteData(1, false, bytes.Repeat([]byte("x"), 1000))
		f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: f.block("x-trailer", "1"), EndHeaders: true, EndStream: true})
	})
	add(func(f *frames) { // a closed send window, opened by SETTINGS and WINDOW_UPDATE
		f.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		f.connect(1, "10.0.0.2:8080", false)
		f.fr.WriteData(1, false, []byte("echo me"))
		f.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 3})
		f.fr.WriteWindowUpdate(1, 2)
		f.fr.WriteSettingsAck()
		f.fr.WritePriority(1, http2.PriorityParam{StreamDep: 0, Weight: 7})
		f.fr.WriteRawFrame(0xfa, 0, 0, []byte("unknown frame type"))
	})
	add(func(f *frames) { // protocol errors: DATA on a stream never opened, an even stream, push
		f.fr.WriteSettings()
		f.fr.WriteData(7, false, []byte("?"))
		f.connect(2, "10.0.0.2:8080", false)
		f.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: f.block(":method", "GET"), EndHeaders: true})
	})
	return seeds
}

// FuzzServer feeds the HBONE server (after TLS, which is not what is being tested) the client's side of a
// connection: the HTTP/2 preface, then arbitrary bytes. Streams are echoed by the handler. The server must
// not panic, must end the connection and every stream handler once the client's bytes end, and must only
// ever write well-formed HTTP/2 that respects the flow-control windows the client granted.
func FuzzServer(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	peer := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/sleep")
	f.Fuzz(func(t *testing.T, script []byte) {
		conn := &scriptConn{r: bytes.NewReader(append([]byte(http2.ClientPreface), script...))}
		// Before the client goes away, the handlers get a moment to answer, so that responses, echoed DATA
		// and END_STREAM are interleaved with what the client sent.
		var active atomic.Int32
		conn.drain = func() {
			deadline := time.Now().Add(10 * time.Millisecond)
			for time.Sleep(100 * time.Microsecond); active.Load() > 0 && time.Now().Before(deadline); {
				time.Sleep(100 * time.Microsecond)
			}
		}
		s := &Server{Handler: HandlerFunc(func(st *Stream) {
			active.Add(1)
			defer active.Add(-1)
			io.Copy(st, st)
		})}
		served := make(chan *h2conn, 1)
		go func() {
			hc := s.serveH2(conn, peer, nil, conn.RemoteAddr(), time.Second)
			conn.Close() // as ServeConn does
			served <- hc
		}()
		var hc *h2conn
		select {
		case hc = <-served:
		case <-time.After(10 * time.Second):
			t.Fatal("the server still serves a connection whose client is gone")
		}
		if hc == nil {
			t.Fatal("the server refused the client preface")
		}
		finished := make(chan struct{})
		go func() {
			hc.handlers.Wait()
			close(finished)
		}()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Fatal("a stream handler still runs after its connection ended")
		}
		checkServerOutput(t, script, conn.written())
	})
}

// checkServerOutput parses what the server wrote and checks it against the client's script: frames are
// well-formed, the first is SETTINGS, and no stream (nor the connection) got more DATA than the largest
// window the client could have granted it.
func checkServerOutput(t *testing.T, script, out []byte) {
	t.Helper()
	streamBudget, connBudget, perStream := grantedWindows(script)
	fr := http2.NewFramer(io.Discard, bytes.NewReader(out))
	fr.SetMaxReadFrameSize(1<<24 - 1)
	sent := map[uint32]int64{}
	var total int64
	for i := 0; ; i++ {
		f, err := fr.ReadFrame()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("server frame %d is malformed: %v", i, err)
		}
		if i == 0 {
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				t.Fatalf("server's first frame is %v, want SETTINGS", f.Header().Type)
			}
		}
		df, ok := f.(*http2.DataFrame)
		if !ok {
			continue
		}
		if df.StreamID%2 == 0 {
			t.Fatalf("server sent DATA on stream %d, which a client cannot have opened", df.StreamID)
		}
		sent[df.StreamID] += int64(df.Length)
		total += int64(df.Length)
		if budget := streamBudget + perStream[df.StreamID]; sent[df.StreamID] > budget {
			t.Fatalf("server sent %d bytes on stream %d, the client granted at most %d", sent[df.StreamID], df.StreamID, budget)
		}
		if total > connBudget {
			t.Fatalf("server sent %d bytes on the connection, the client granted at most %d", total, connBudget)
		}
	}
}

// grantedWindows reads the client's script as the server's framer does and returns upper bounds on what
// it granted: the largest initial stream window it set, the connection window, and each stream's
// WINDOW_UPDATE total.
func grantedWindows(script []byte) (initial, conn int64, perStream map[uint32]int64) {
	initial, conn, perStream = 65535, 65535, map[uint32]int64{}
	fr := http2.NewFramer(io.Discard, bytes.NewReader(script))
	fr.SetMaxReadFrameSize(maxFrameSize)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				continue
			}
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
				initial = max(initial, int64(v))
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				conn += int64(f.Increment)
			} else {
				perStream[f.StreamID] += int64(f.Increment)
			}
		}
	}
}
