package hbone

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 parameters meshlab advertises. The windows are large so that flow control never paces a stream on
// a local network; data is only buffered when the destination socket is full, so the windows bound memory
// per stream, they do not preallocate it.
const (
	streamWindow     = 4 << 20
	connWindow       = 32 << 20
	maxFrameSize     = 16 << 10 // the HTTP/2 default; larger frames would be split into TLS records anyway
	maxHeaderList    = 64 << 10
	serverMaxStreams = 1000
	// defaultPeerMaxStreams applies until the peer's SETTINGS say otherwise.
	defaultPeerMaxStreams = 100
)

// h2conn is one HTTP/2 connection carrying CONNECT streams, the client's or the server's end. It is built to
// move bytes with as few goroutine hand-offs as possible, because on a lightly loaded proxy waking a
// goroutine on another thread costs more than the proxying itself (docs/benchmarks.md):
//   - a writer frames its bytes and writes them to TLS in its own goroutine, under wmu;
//   - the read loop hands DATA straight to the stream's destination socket with a non-blocking write when
//     it can (see stream.deliver), and only buffers when that socket is full.
//
// x/net/http2's Transport and Server move every frame through two or three goroutines; only its Framer
// and HPACK codec are used here.
type h2conn struct {
	nc       net.Conn // the TLS connection
	isClient bool
	fr       *http2.Framer
	bw       *bufio.Writer

	// wmu serializes frame writes. The read loop never blocks on it: its control frames (SETTINGS ACK,
	// PING ACK, WINDOW_UPDATE, RST_STREAM) go through queueControl, and whoever holds wmu writes them
	// before releasing it. This keeps two peers whose writers are both blocked on full sockets from
	// deadlocking: their read loops keep reading.
	wmu     sync.Mutex
	henc    *hpack.Encoder
	hbuf    bytes.Buffer
	ctlMu   sync.Mutex
	ctl     []func(*http2.Framer) error
	ctlHave atomic.Bool

	mu             sync.Mutex
	windowCond     *sync.Cond // broadcast when send windows grow or the connection fails
	streams        map[uint32]*stream
	nextID         uint32 // client: the next stream ID to open
	lastPeerID     uint32 // server: the highest stream ID the peer opened
	reserved       int    // client: slots promised to Connect calls not yet opened
	sendWindow     int64  // connection-level window the peer granted
	peerInitWindow int64
	peerMaxFrame   int
	peerMaxStreams int
	recvWindow     int64 // connection-level window this side granted and the peer has not used
	recvUnacked    int64 // connection-level bytes consumed but not yet credited back
	goAway         bool  // no new streams (either side sent or received GOAWAY)
	err            error // set once the connection failed; every stream fails with it
	closed         chan struct{}
	idle           *time.Timer // client: closes the connection after IdleTimeout without streams
	health         *time.Timer // the keepalive (watchHealth); stopped when the connection fails
	idleTimeout    time.Duration

	peer       spiffeid.ID       // the verified identity at the other end
	peerCert   *x509.Certificate // its leaf certificate (server side: for X-Forwarded-Client-Cert)
	framesRead atomic.Uint64     // for the health check
	onStream   func(*stream)     // server: called in a new goroutine for each stream the peer opens
	handlers   sync.WaitGroup    // server: onStream calls still running
	logf       func(string, ...any)
}

func newH2Conn(nc net.Conn, r io.Reader, isClient bool) *h2conn {
	c := &h2conn{
		nc:             nc,
		isClient:       isClient,
		bw:             bufio.NewWriterSize(nc, 4*(maxFrameSize+9)),
		streams:        map[uint32]*stream{},
		sendWindow:     65535,
		peerInitWindow: 65535,
		peerMaxFrame:   16 << 10,
		peerMaxStreams: defaultPeerMaxStreams,
		recvWindow:     connWindow,
		closed:         make(chan struct{}),
	}
	if isClient {
		c.nextID = 1
	}
	c.windowCond = sync.NewCond(&c.mu)
	c.fr = http2.NewFramer(c.bw, r)
	c.fr.SetMaxReadFrameSize(maxFrameSize)
	c.fr.MaxHeaderListSize = maxHeaderList
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.SetReuseFrames()
	c.henc = hpack.NewEncoder(&c.hbuf)
	return c
}

// writePreface sends what each side says first: the client's connection preface, then SETTINGS and a
// connection WINDOW_UPDATE from both sides.
func (c *h2conn) writePreface() error {
	c.wmu.Lock()
	defer c.unlockWrite()
	if c.isClient {
		if _, err := c.bw.WriteString(http2.ClientPreface); err != nil {
			return err
		}
	}
	settings := []http2.Setting{
		{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderList},
	}
	if c.isClient {
		settings = append(settings, http2.Setting{ID: http2.SettingEnablePush, Val: 0})
	} else {
		settings = append(settings, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: serverMaxStreams})
	}
	if err := c.fr.WriteSettings(settings...); err != nil {
		return err
	}
	if err := c.fr.WriteWindowUpdate(0, connWindow-65535); err != nil {
		return err
	}
	return c.bw.Flush()
}

// readPeerSettings reads the peer's first frame, which must be SETTINGS, and applies it. The client calls it
// before the read loop starts so that a TLS alert sent after the handshake (a refused certificate) is
// reported by the dial, as what it is.
func (c *h2conn) readPeerSettings() error {
	f, err := c.fr.ReadFrame()
	if err != nil {
		return err
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		return connError{http2.ErrCodeProtocol, fmt.Sprintf("first HTTP/2 frame is %v, want SETTINGS", f.Header().Type)}
	}
	return c.handle(sf)
}

// start runs the read loop (and, with healthEvery > 0, the keepalive) until the connection fails.
func (c *h2conn) start(healthEvery, pingTimeout time.Duration) {
	if healthEvery > 0 {
		c.watchHealth(healthEvery, pingTimeout)
	}
	go c.readLoop()
}

func (c *h2conn) readLoop() {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.resetStream(se.StreamID, se.Code, fmt.Errorf("HTTP/2 stream error: %v", se))
				continue
			}
			if code, ok := connErrorCode(err); ok {
				c.goAwayAndClose(code, fmt.Errorf("HTTP/2 protocol error from peer: %v", err))
				return
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			c.fail(fmt.Errorf("HBONE connection lost: %w", err))
			return
		}
		c.framesRead.Add(1)
		if err := c.handle(f); err != nil {
			code, ok := connErrorCode(err)
			if !ok {
				code = http2.ErrCodeProtocol
			}
			c.goAwayAndClose(code, err)
			return
		}
	}
}

// handle processes one frame; an error is a connection error.
func (c *h2conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.DataFrame:
		return c.handleData(f)
	case *http2.MetaHeadersFrame:
		return c.handleHeaders(f)
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		if err := c.handleSettings(f); err != nil {
			return err
		}
		c.queueControl(func(fr *http2.Framer) error { return fr.WriteSettingsAck() })
	case *http2.WindowUpdateFrame:
		c.mu.Lock()
		defer c.mu.Unlock()
		if f.StreamID == 0 {
			c.sendWindow += int64(f.Increment)
		} else if s := c.streams[f.StreamID]; s != nil {
			s.sendWindow += int64(f.Increment)
		}
		c.windowCond.Broadcast()
	case *http2.PingFrame:
		if !f.IsAck() {
			data := f.Data
			c.queueControl(func(fr *http2.Framer) error { return fr.WritePing(true, data) })
		}
	case *http2.RSTStreamFrame:
		c.mu.Lock()
		s := c.streams[f.StreamID]
		c.mu.Unlock()
		if s != nil {
			s.peerReset(f.ErrCode)
		}
	case *http2.GoAwayFrame:
		c.handleGoAway(f)
	case *http2.PushPromiseFrame:
		return connError{http2.ErrCodeProtocol, "PUSH_PROMISE received, but push is disabled"}
	}
	// PRIORITY and unknown frame types are ignored, as RFC 9113 requires.
	return nil
}

func (c *h2conn) handleSettings(f *http2.SettingsFrame) error {
	tableSize := int64(-1)
	c.mu.Lock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.peerInitWindow
			c.peerInitWindow = int64(s.Val)
			for _, st := range c.streams {
				st.sendWindow += delta
			}
			c.windowCond.Broadcast()
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame = int(s.Val)
		case http2.SettingMaxConcurrentStreams:
			c.peerMaxStreams = int(s.Val)
		case http2.SettingHeaderTableSize:
			tableSize = int64(s.Val)
		}
		return nil
	})
	c.mu.Unlock()
	if tableSize >= 0 {
		// The encoder belongs to the writers: change its limit under wmu.
		c.queueControl(func(*http2.Framer) error { c.henc.SetMaxDynamicTableSizeLimit(uint32(tableSize)); return nil })
	}
	return err
}

func (c *h2conn) handleData(f *http2.DataFrame) error {
	n := int64(f.Length)
	id := f.StreamID
	c.mu.Lock()
	s := c.streams[id]
	c.recvWindow -= n // data for a stream that is gone still counts against the connection's window
	connOverflow := c.recvWindow < 0
	streamOverflow := false
	if s != nil {
		s.recvWindow -= n
		streamOverflow = s.recvWindow < 0
	}
	known := id < c.nextID || (c.isPeerStream(id) && id <= c.lastPeerID)
	c.mu.Unlock()
	if connOverflow {
		return connError{http2.ErrCodeFlowControl, "peer sent more DATA than the connection window allows"}
	}
	data := f.Data()
	if s == nil {
		// A stream already reset or finished here: discard, as RFC 9113 asks after RST_STREAM.
		c.credit(nil, n)
		if !known {
			return connError{http2.ErrCodeProtocol, fmt.Sprintf("DATA on stream %d, which was never opened", id)}
		}
		return nil
	}
	if streamOverflow {
		c.credit(nil, n)
		c.resetStream(id, http2.ErrCodeFlowControl, errors.New("HBONE peer overran the stream's flow-control window"))
		return nil
	}
	if padding := n - int64(len(data)); padding > 0 {
		c.credit(s, padding)
	}
	s.deliver(data, f.StreamEnded())
	return nil
}

// connErrorCode says whether err, from reading or handling a frame, is an HTTP/2 connection error, and its
// code for the GOAWAY. A frame above the advertised SETTINGS_MAX_FRAME_SIZE is one (FRAME_SIZE_ERROR, RFC
// 9113 section 4.2), though the framer reports it as a plain error.
func connErrorCode(err error) (http2.ErrCode, bool) {
	var ce http2.ConnectionError
	var own connError
	switch {
	case errors.As(err, &ce):
		return http2.ErrCode(ce), true
	case errors.As(err, &own):
		return own.code, true
	case errors.Is(err, http2.ErrFrameTooLarge):
		return http2.ErrCodeFrameSize, true
	}
	return 0, false
}

// connError is a connection error: the connection ends with GOAWAY carrying code.
type connError struct {
	code http2.ErrCode
	msg  string
}

func (e connError) Error() string { return fmt.Sprintf("HTTP/2 %v: %s", e.code, e.msg) }

func (c *h2conn) isPeerStream(id uint32) bool { return c.isClient == (id%2 == 0) }

func (c *h2conn) handleHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	c.mu.Lock()
	s := c.streams[id]
	if s != nil {
		c.mu.Unlock()
		s.headers(f)
		return nil
	}
	if c.isClient || id%2 == 0 {
		c.mu.Unlock()
		if c.isClient {
			// A response for a stream this side already forgot (it was reset): nothing to do.
			return nil
		}
		return connError{http2.ErrCodeProtocol, fmt.Sprintf("HEADERS on even stream %d from a client", id)}
	}
	if id <= c.lastPeerID {
		c.mu.Unlock()
		return connError{http2.ErrCodeStreamClosed, fmt.Sprintf("HEADERS reopening closed stream %d", id)}
	}
	c.lastPeerID = id
	if c.goAway || c.err != nil || len(c.streams) >= serverMaxStreams {
		c.mu.Unlock()
		c.queueControl(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, http2.ErrCodeRefusedStream) })
		return nil
	}
	s = c.newStreamLocked(id)
	c.mu.Unlock()
	s.headers(f)
	c.handlers.Add(1)
	go func() {
		defer c.handlers.Done()
		c.onStream(s)
	}()
	return nil
}

func (c *h2conn) handleGoAway(f *http2.GoAwayFrame) {
	c.mu.Lock()
	c.goAway = true
	var refused []*stream
	for id, s := range c.streams {
		if !c.isPeerStream(id) && id > f.LastStreamID {
			refused = append(refused, s)
		}
	}
	c.mu.Unlock()
	for _, s := range refused {
		s.fail(&unprocessedError{fmt.Errorf("HBONE stream refused: peer is going away (%v)", f.ErrCode)})
	}
	c.closeIfIdle()
}

// stopNewStreams keeps new streams off the connection, which closes once its last stream ends: the
// client's answer to a REFUSED_STREAM.
func (c *h2conn) stopNewStreams() {
	c.mu.Lock()
	c.goAway = true
	c.mu.Unlock()
}

// unprocessedError is why a client stream failed when the peer provably did not process it (RFC 9113,
// section 8.7): it was never sent, it was refused with REFUSED_STREAM, or its ID is above a GOAWAY's last
// stream ID. Nothing reached the target, so Connect opens it again.
type unprocessedError struct{ err error }

func (e *unprocessedError) Error() string { return e.err.Error() }
func (e *unprocessedError) Unwrap() error { return e.err }

// newStreamLocked registers a stream; c.mu is held.
func (c *h2conn) newStreamLocked(id uint32) *stream {
	s := &stream{c: c, id: id, sendWindow: c.peerInitWindow, recvWindow: streamWindow, notify: make(chan struct{}, 1)}
	if !c.isClient {
		s.ctx, s.cancel = context.WithCancel(context.Background())
	}
	c.streams[id] = s
	if c.idle != nil {
		c.idle.Stop()
	}
	return s
}

// removeStream forgets a finished stream, freeing its concurrency slot.
func (c *h2conn) removeStream(s *stream) {
	c.mu.Lock()
	if c.streams[s.id] == s {
		delete(c.streams, s.id)
	}
	empty := len(c.streams) == 0 && c.reserved == 0
	goAway := c.goAway
	if empty && c.idle != nil && !goAway {
		c.idle.Reset(c.idleTimeout)
	}
	c.mu.Unlock()
	if empty && goAway {
		c.close()
	}
}

// reserve promises a Connect call a stream slot on this connection.
func (c *h2conn) reserve() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.goAway || len(c.streams)+c.reserved >= c.peerMaxStreams || c.nextID >= 1<<31-1 {
		return false
	}
	c.reserved++
	if c.idle != nil {
		c.idle.Stop()
	}
	return true
}

// usable says whether new streams can be opened (it does not reserve one).
func (c *h2conn) usable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil && !c.goAway
}

// openStream (client) allocates the next stream ID under a reservation and sends the CONNECT HEADERS.
// IDs must reach the wire in increasing order, so both happen under wmu.
func (c *h2conn) openStream(authority string, h http.Header) (*stream, error) {
	c.wmu.Lock()
	defer c.unlockWrite()
	c.mu.Lock()
	c.reserved--
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, &unprocessedError{err} // the connection failed before the stream was sent
	}
	id := c.nextID
	c.nextID += 2
	s := c.newStreamLocked(id)
	c.mu.Unlock()
	c.hbuf.Reset()
	c.encode(":method", http.MethodConnect)
	c.encode(":authority", authority)
	c.encodeFields(h)
	if err := c.writeHeaderBlockLocked(id, false); err != nil {
		c.fail(err)
		return nil, err
	}
	return s, nil
}

// respond (server) sends the response HEADERS for stream s.
func (c *h2conn) respond(s *stream, status int, h http.Header, endStream bool) error {
	c.wmu.Lock()
	defer c.unlockWrite()
	c.hbuf.Reset()
	c.encode(":status", fmt.Sprint(status))
	c.encodeFields(h)
	return c.writeHeaderBlockLocked(s.id, endStream)
}

func (c *h2conn) encode(name, value string) {
	c.henc.WriteField(hpack.HeaderField{Name: name, Value: value})
}

// encodeFields adds h's fields, lower-cased as HTTP/2 requires, leaving out what it forbids.
func (c *h2conn) encodeFields(h http.Header) {
	for k, vs := range h {
		lk := strings.ToLower(k)
		if !validHeaderName(lk) {
			continue
		}
		for _, v := range vs {
			c.encode(lk, v)
		}
	}
}

// validHeaderName drops what HTTP/2 forbids (connection-specific headers) and anything malformed.
func validHeaderName(k string) bool {
	switch k {
	case "", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host":
		return false
	}
	return !strings.HasPrefix(k, ":")
}

// writeHeaderBlockLocked writes c.hbuf as HEADERS plus CONTINUATION frames; wmu is held.
func (c *h2conn) writeHeaderBlockLocked(id uint32, endStream bool) error {
	block := c.hbuf.Bytes()
	c.mu.Lock()
	max := c.peerMaxFrame
	c.mu.Unlock()
	first := true
	for first || len(block) > 0 {
		chunk := block[:min(len(block), max)]
		block = block[len(chunk):]
		var err error
		if first {
			err = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: chunk, EndStream: endStream, EndHeaders: len(block) == 0})
		} else {
			err = c.fr.WriteContinuation(id, len(block) == 0, chunk)
		}
		if err != nil {
			return err
		}
		first = false
	}
	return c.bw.Flush()
}

// writeData sends p on stream s as DATA frames within the flow-control windows, blocking while they are
// closed. With end, the last frame carries END_STREAM (p may be empty).
func (c *h2conn) writeData(s *stream, p []byte, end bool) (int, error) {
	written := 0
	for {
		c.mu.Lock()
		for len(p) > 0 && (s.sendWindow <= 0 || c.sendWindow <= 0) {
			if err := s.writeErrLocked(); err != nil {
				c.mu.Unlock()
				return written, err
			}
			c.windowCond.Wait()
		}
		if err := s.writeErrLocked(); err != nil {
			c.mu.Unlock()
			return written, err
		}
		n := int64(0)
		if len(p) > 0 { // an empty END_STREAM frame needs no window, even when a SETTINGS change made it negative
			n = min(int64(len(p)), s.sendWindow, c.sendWindow, int64(c.peerMaxFrame))
		}
		s.sendWindow -= n
		c.sendWindow -= n
		c.mu.Unlock()

		last := int(n) == len(p)
		c.wmu.Lock()
		err := c.fr.WriteData(s.id, end && last, p[:n])
		if err == nil {
			err = c.bw.Flush()
		}
		c.unlockWrite()
		if err != nil {
			c.fail(fmt.Errorf("writing to HBONE peer: %w", err))
			return written, err
		}
		written += int(n)
		p = p[n:]
		if last {
			return written, nil
		}
	}
}

// sendEnd sends an empty DATA frame with END_STREAM; it never waits for flow-control window.
func (c *h2conn) sendEnd(s *stream) error {
	c.wmu.Lock()
	err := c.fr.WriteData(s.id, true, nil)
	if err == nil {
		err = c.bw.Flush()
	}
	c.unlockWrite()
	return err
}

// queueControl sends a frame from the read loop without ever blocking it on wmu: if a writer holds wmu,
// that writer sends the frame before it releases the lock.
func (c *h2conn) queueControl(write func(*http2.Framer) error) {
	c.ctlMu.Lock()
	c.ctl = append(c.ctl, write)
	c.ctlHave.Store(true)
	c.ctlMu.Unlock()
	c.flushControl()
}

func (c *h2conn) flushControl() {
	for c.ctlHave.Load() {
		if !c.wmu.TryLock() {
			return // the holder flushes on unlockWrite
		}
		c.unlockWrite()
	}
}

// unlockWrite writes queued control frames, then releases wmu. A frame queued between the check and the
// release is picked up by the loop in flushControl (its TryLock either wins now or fails against a writer
// that will run this again).
func (c *h2conn) unlockWrite() {
	if c.ctlHave.Load() {
		c.ctlMu.Lock()
		ctl := c.ctl
		c.ctl = nil
		c.ctlHave.Store(false)
		c.ctlMu.Unlock()
		var err error
		for _, write := range ctl {
			if err == nil {
				err = write(c.fr)
			}
		}
		if err == nil {
			err = c.bw.Flush()
		}
		if err != nil {
			c.nc.Close() // the read loop fails the connection
		}
	}
	c.wmu.Unlock()
	if c.ctlHave.Load() {
		c.flushControl()
	}
}

// credit returns consumed receive window to the peer: the connection's always, the stream's (s may be nil)
// while it can still receive. Updates are batched to half a window.
func (c *h2conn) credit(s *stream, n int64) {
	if n <= 0 {
		return
	}
	var connInc, streamInc int64
	c.mu.Lock()
	c.recvUnacked += n
	if c.recvUnacked >= connWindow/2 {
		connInc, c.recvUnacked = c.recvUnacked, 0
		c.recvWindow += connInc
	}
	if s != nil {
		s.recvUnacked += n
		if s.recvUnacked >= streamWindow/2 && s.receiving() {
			streamInc, s.recvUnacked = s.recvUnacked, 0
			s.recvWindow += streamInc
		}
	}
	c.mu.Unlock()
	if connInc == 0 && streamInc == 0 {
		return
	}
	var id uint32
	if s != nil {
		id = s.id
	}
	c.queueControl(func(fr *http2.Framer) error {
		if connInc > 0 {
			if err := fr.WriteWindowUpdate(0, uint32(connInc)); err != nil {
				return err
			}
		}
		if streamInc > 0 {
			return fr.WriteWindowUpdate(id, uint32(streamInc))
		}
		return nil
	})
}

// resetStream sends RST_STREAM and fails the stream locally.
func (c *h2conn) resetStream(id uint32, code http2.ErrCode, err error) {
	c.queueControl(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) })
	c.mu.Lock()
	s := c.streams[id]
	c.mu.Unlock()
	if s != nil {
		s.fail(err)
		c.removeStream(s)
	}
}

// fail ends the connection: every stream fails with err.
func (c *h2conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	streams := make([]*stream, 0, len(c.streams))
	for _, s := range c.streams {
		streams = append(streams, s)
	}
	if c.idle != nil {
		c.idle.Stop()
	}
	if c.health != nil {
		// An armed keepalive would keep the connection and its buffers reachable for readIdleTimeout.
		c.health.Stop()
	}
	c.windowCond.Broadcast()
	close(c.closed)
	c.mu.Unlock()
	c.nc.Close()
	for _, s := range streams {
		s.fail(err)
	}
}

func (c *h2conn) goAwayAndClose(code http2.ErrCode, err error) {
	c.mu.Lock()
	last := c.lastPeerID
	c.mu.Unlock()
	if c.wmu.TryLock() {
		c.fr.WriteGoAway(last, code, nil)
		c.bw.Flush()
		c.wmu.Unlock()
	}
	if c.logf != nil && code != http2.ErrCodeNo {
		c.logf("HBONE connection with %s closed: %v", c.nc.RemoteAddr(), err)
	}
	c.fail(err)
}

// close ends the connection gracefully: GOAWAY, then the TCP connection.
func (c *h2conn) close() {
	select {
	case <-c.closed:
		return
	default:
	}
	c.goAwayAndClose(http2.ErrCodeNo, errors.New("HBONE connection closed"))
}

func (c *h2conn) closeIfIdle() {
	c.mu.Lock()
	idle := len(c.streams) == 0 && c.reserved == 0
	c.mu.Unlock()
	if idle {
		c.close()
	}
}

// watchHealth pings a connection that received nothing for every, and closes it if the ping is not
// answered within timeout (a peer that vanished without a FIN).
func (c *h2conn) watchHealth(every, timeout time.Duration) {
	var seen uint64
	var pinged bool
	var t *time.Timer
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	t = time.AfterFunc(every, func() {
		select {
		case <-c.closed:
			return
		default:
		}
		now := c.framesRead.Load()
		switch {
		case now != seen:
			seen, pinged = now, false
			t.Reset(every)
		case pinged:
			c.fail(errors.New("HBONE peer did not answer a keepalive PING"))
		default:
			pinged = true
			c.queueControl(func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{'m', 'e', 's', 'h', 'l', 'a', 'b'}) })
			t.Reset(timeout)
		}
	})
	c.health = t
}
