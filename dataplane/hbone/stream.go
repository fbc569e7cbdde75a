package hbone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
)

// stream is one CONNECT stream, the state both ends share; Conn (client) and Stream (server) wrap it.
type stream struct {
	c      *h2conn
	id     uint32
	notify chan struct{} // capacity 1: something a reader waits for changed

	// Under c.mu.
	sendWindow    int64
	recvWindow    int64
	recvUnacked   int64
	writeDeadline time.Time

	mu       sync.Mutex
	buf      []byte // received, not yet read: buf[off:]
	off      int
	recvEnd  bool  // the peer sent END_STREAM
	sentEnd  bool  // this side sent END_STREAM
	err      error // reset, closed or connection lost; reads fail once buf is drained
	finished bool  // removed from the connection
	// sink is the socket the read loop writes received data into directly (see deliver), set while
	// WriteTo runs with a destination that has a file descriptor.
	sink      syscall.RawConn
	sinkErr   error
	flushing  bool  // WriteTo is writing buffered data to the sink outside mu: the read loop must append
	delivered int64 // bytes WriteTo and the read loop wrote to sinks
	count     *atomic.Int64

	// Response (client) or request (server) head.
	status            int
	method, authority string
	protocol          string
	header            http.Header
	truncated         bool // server: the request's fields exceeded maxHeaderList and some were dropped

	wmu    sync.Mutex // one writer at a time, so that concurrent Writes do not interleave their frames
	readDL deadline
	ctx    context.Context
	cancel context.CancelFunc
}

// deliver takes DATA from the read loop. When a WriteTo is running, nothing is buffered and nothing is
// being flushed, the bytes go straight into the destination socket with a non-blocking write, in the read
// loop's goroutine: no goroutine is woken. Whatever the socket does not take is buffered for WriteTo.
func (s *stream) deliver(data []byte, end bool) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		s.c.credit(nil, int64(len(data)))
		return
	}
	direct := 0
	wake := end
	if len(data) > 0 && s.sink != nil && !s.flushing && s.off == len(s.buf) && s.sinkErr == nil {
		// Count before writing (and take back what the socket refused): the destination may answer, and
		// its peer look at the counter, before this goroutine runs again.
		s.count.Add(int64(len(data)))
		n, err := tryWrite(s.sink, data)
		s.count.Add(int64(n - len(data)))
		direct = n
		s.delivered += int64(n)
		data = data[n:]
		if err != nil {
			s.sinkErr, wake = err, true
			direct += len(data) // nobody will read what the sink refused
			data = nil
		}
	}
	if len(data) > 0 {
		s.buf = append(s.buf, data...)
		wake = true
	}
	if end {
		s.recvEnd = true
	}
	done := end && s.sentEnd
	s.mu.Unlock()
	if wake {
		s.wake()
	}
	if direct > 0 {
		s.c.credit(s, int64(direct))
	}
	if done {
		s.finish()
	}
}

func (s *stream) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// headers takes a HEADERS frame: the request (server) or the response (client), or trailers.
func (s *stream) headers(f *http2.MetaHeadersFrame) {
	s.mu.Lock()
	switch {
	case s.c.isClient && s.status == 0:
		code, err := strconv.Atoi(f.PseudoValue("status"))
		if err != nil || code < 100 {
			s.mu.Unlock()
			s.c.resetStream(s.id, http2.ErrCodeProtocol, fmt.Errorf("HBONE response with malformed :status %q", f.PseudoValue("status")))
			return
		}
		if code >= 200 { // 1xx responses are informational: wait for the final one
			s.status = code
			s.header = regularFields(f)
		}
	case !s.c.isClient && s.method == "":
		s.method = f.PseudoValue("method")
		s.authority = f.PseudoValue("authority")
		s.protocol = f.PseudoValue("protocol")
		s.header = regularFields(f)
		s.truncated = f.Truncated
	}
	s.mu.Unlock()
	if f.StreamEnded() {
		s.deliver(nil, true)
		return
	}
	s.wake()
}

func regularFields(f *http2.MetaHeadersFrame) http.Header {
	h := make(http.Header, len(f.Fields))
	for _, hf := range f.RegularFields() {
		k := http.CanonicalHeaderKey(hf.Name)
		h[k] = append(h[k], hf.Value)
	}
	return h
}

// Read reads received bytes; io.EOF after the peer's END_STREAM.
func (s *stream) Read(p []byte) (int, error) {
	s.mu.Lock()
	for {
		if s.off < len(s.buf) {
			n := copy(p, s.buf[s.off:])
			s.consumedLocked(n)
			s.mu.Unlock()
			s.c.credit(s, int64(n))
			return n, nil
		}
		if s.recvEnd {
			s.mu.Unlock()
			return 0, io.EOF
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return 0, err
		}
		if err := s.waitLocked(); err != nil {
			return 0, err
		}
	}
}

// waitLocked waits, with mu held on entry and on a nil return, for the read loop or the read deadline.
func (s *stream) waitLocked() error {
	s.mu.Unlock()
	select {
	case <-s.notify:
	case <-s.readDL.expired():
		return os.ErrDeadlineExceeded
	}
	s.mu.Lock()
	return nil
}

func (s *stream) consumedLocked(n int) {
	s.off += n
	if s.off == len(s.buf) {
		s.off = 0
		if cap(s.buf) > 256<<10 {
			s.buf = nil // a burst is over: do not keep its buffer for the life of the stream
		} else {
			s.buf = s.buf[:0]
		}
	}
}

// WriteTo copies received bytes into w until the peer's END_STREAM; io.Copy uses it. When w is a socket,
// the read loop writes into it directly (see deliver).
func (s *stream) WriteTo(w io.Writer) (int64, error) { return s.WriteToCounting(w, nil) }

// WriteToCounting is WriteTo that also adds every byte written to w to count as it goes, for live
// connection tables.
func (s *stream) WriteToCounting(w io.Writer, count *atomic.Int64) (int64, error) {
	if count == nil {
		count = new(atomic.Int64)
	}
	var rc syscall.RawConn
	if sc, ok := w.(syscall.Conn); ok && directDelivery {
		rc, _ = sc.SyscallConn()
	}
	s.mu.Lock()
	start := s.delivered
	s.sink, s.count, s.sinkErr = rc, count, nil
	defer func() {
		s.sink, s.count = nil, nil
		s.mu.Unlock()
	}()
	for {
		total := s.delivered - start
		if s.sinkErr != nil {
			return total, s.sinkErr
		}
		if s.off < len(s.buf) {
			// Write outside mu; deliver appends meanwhile instead of writing around us.
			chunk := s.buf[s.off:]
			s.flushing = true
			s.mu.Unlock()
			count.Add(int64(len(chunk))) // before writing, as in deliver
			n, err := w.Write(chunk)
			count.Add(int64(n - len(chunk)))
			s.c.credit(s, int64(n))
			s.mu.Lock()
			s.flushing = false
			s.consumedLocked(n)
			s.delivered += int64(n)
			if err != nil {
				return s.delivered - start, err
			}
			continue
		}
		if s.recvEnd {
			return total, nil
		}
		if s.err != nil {
			return total, s.err
		}
		if err := s.waitLocked(); err != nil {
			s.mu.Lock() // for the deferred unlock
			return s.delivered - start, err
		}
	}
}

// Write sends p as DATA, waiting for flow-control window when the peer is slow.
func (s *stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	sent := s.sentEnd
	s.mu.Unlock()
	if sent {
		return 0, net.ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	return s.c.writeData(s, p, false)
}

// CloseWrite sends END_STREAM: the peer reads EOF and may keep sending.
func (s *stream) CloseWrite() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.sentEnd {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	if _, err := s.c.writeData(s, nil, true); err != nil {
		return err
	}
	s.mu.Lock()
	s.sentEnd = true
	done := s.recvEnd
	s.mu.Unlock()
	if done {
		s.finish()
	}
	return nil
}

// receiving says whether the peer may still send on s (so that crediting window back is worth a frame).
func (s *stream) receiving() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.recvEnd && s.err == nil
}

// writeErrLocked says why s cannot send (c.mu is held).
func (s *stream) writeErrLocked() error {
	if s.c.err != nil {
		return s.c.err
	}
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if !s.writeDeadline.IsZero() && !time.Now().Before(s.writeDeadline) {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// Close ends both directions, like closing a socket: it first sends END_STREAM, so the peer reads a clean
// EOF after what was sent, unless a Write is blocked (then there is no clean end); whatever is unfinished
// is then reset (NO_ERROR when this side had finished sending, else CANCEL).
func (s *stream) Close() error {
	if s.wmu.TryLock() {
		s.mu.Lock()
		pending := !s.sentEnd && s.err == nil
		s.mu.Unlock()
		if pending && s.c.sendEnd(s) == nil {
			s.mu.Lock()
			s.sentEnd = true
			s.mu.Unlock()
		}
		s.wmu.Unlock()
	}
	s.mu.Lock()
	clean := s.sentEnd && s.recvEnd
	failed := s.err != nil
	if s.err == nil {
		s.err = net.ErrClosed
	}
	code := http2.ErrCodeCancel
	if s.sentEnd {
		code = http2.ErrCodeNo
	}
	s.mu.Unlock()
	s.wake()
	s.c.mu.Lock()
	s.c.windowCond.Broadcast()
	s.c.mu.Unlock()
	if !clean && !failed {
		id := s.id
		s.c.queueControl(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) })
	}
	s.finish()
	return nil
}

// peerReset handles the peer's RST_STREAM.
func (s *stream) peerReset(code http2.ErrCode) {
	if code == http2.ErrCodeRefusedStream && s.c.isClient {
		s.c.stopNewStreams()
		s.fail(&unprocessedError{errors.New("HBONE stream refused by peer (REFUSED_STREAM)")})
	} else if code == http2.ErrCodeNo {
		s.fail(errors.New("HBONE stream closed by peer"))
	} else {
		s.fail(fmt.Errorf("HBONE stream reset by peer: %v", code))
	}
	s.finish()
}

// fail records why the stream ended (the first reason wins) and wakes everything waiting on it. It must
// not be called with c.mu held.
func (s *stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.wake()
	s.c.mu.Lock()
	s.c.windowCond.Broadcast()
	s.c.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
	}
}

// finish removes the stream from its connection once, freeing the slot.
func (s *stream) finish() {
	s.mu.Lock()
	already := s.finished
	s.finished = true
	s.mu.Unlock()
	if already {
		return
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.c.removeStream(s)
}

// SetReadDeadline bounds Read and WriteTo; a time in the past interrupts them.
func (s *stream) SetReadDeadline(t time.Time) error {
	s.readDL.set(t)
	return nil
}

// SetWriteDeadline bounds the wait for flow-control window in Write.
func (s *stream) SetWriteDeadline(t time.Time) error {
	s.c.mu.Lock()
	s.writeDeadline = t
	s.c.mu.Unlock()
	if !t.IsZero() {
		time.AfterFunc(time.Until(t), func() {
			s.c.mu.Lock()
			s.c.windowCond.Broadcast()
			s.c.mu.Unlock()
		})
	}
	return nil
}

// SetDeadline sets both deadlines.
func (s *stream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// deadline is a resettable deadline whose expiry is a closed channel, so that a wait can select on it.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	ch    chan struct{} // closed once the deadline passed; replaced only after that
}

func (d *deadline) expired() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil {
		d.ch = make(chan struct{})
	}
	return d.ch
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if d.ch == nil || isClosed(d.ch) {
		d.ch = make(chan struct{})
	}
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		close(d.ch)
		return
	}
	ch := d.ch
	d.timer = time.AfterFunc(wait, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.ch == ch && !isClosed(ch) {
			close(ch)
		}
	})
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
