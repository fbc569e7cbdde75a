package l7

import (
	"net"
	"os"
	"sync"
	"time"
)

// deadlineConn gives a stream that cannot interrupt its reads (an HBONE stream: setting a read deadline
// in the past resets it) the read deadlines net/http relies on to abort its background read between
// keep-alive requests. A goroutine reads the stream; Read waits for its chunks or the deadline.
type deadlineConn struct {
	net.Conn
	chunks    chan chunk
	closed    chan struct{}
	closeOnce sync.Once
	startOnce sync.Once

	pending []byte
	buf     *[]byte
	rerr    error

	mu       sync.Mutex
	timer    *time.Timer
	deadline chan struct{} // closed when the read deadline passes
}

type chunk struct {
	buf *[]byte
	n   int
	err error
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func newDeadlineConn(c net.Conn) *deadlineConn {
	return &deadlineConn{Conn: c, chunks: make(chan chunk), closed: make(chan struct{}), deadline: make(chan struct{})}
}

func (c *deadlineConn) readLoop() {
	for {
		b := bufPool.Get().(*[]byte)
		n, err := c.Conn.Read(*b)
		select {
		case c.chunks <- chunk{b, n, err}:
		case <-c.closed:
			bufPool.Put(b)
			return
		}
		if err != nil {
			return
		}
	}
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	c.startOnce.Do(func() { go c.readLoop() })
	if len(c.pending) == 0 && c.rerr == nil {
		c.mu.Lock()
		dl := c.deadline
		c.mu.Unlock()
		select {
		case ch := <-c.chunks:
			c.pending, c.buf, c.rerr = (*ch.buf)[:ch.n], ch.buf, ch.err
		case <-dl:
			return 0, os.ErrDeadlineExceeded
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 && c.buf != nil {
			bufPool.Put(c.buf)
			c.buf = nil
		}
		return n, nil
	}
	return 0, c.rerr
}

// SetReadDeadline arms or clears the read deadline; a time in the past interrupts a blocked Read.
func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	select {
	case <-c.deadline:
		c.deadline = make(chan struct{}) // expired before: start a fresh one
	default:
	}
	if t.IsZero() {
		return nil
	}
	d := time.Until(t)
	if d <= 0 {
		close(c.deadline)
		return nil
	}
	ch := c.deadline
	c.timer = time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.deadline == ch {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
	})
	return nil
}

// SetWriteDeadline is not supported by the stream; the engine sets no write timeouts.
func (c *deadlineConn) SetWriteDeadline(time.Time) error { return nil }

func (c *deadlineConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *deadlineConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
