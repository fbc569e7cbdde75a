package l7

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// h1Client sends HTTP/1.1 requests upstream over kept-alive connections, in the goroutine that asks.
//
// net/http's Transport gives every connection a reader and a writer goroutine and passes each request and
// its response between them and the caller: four goroutine hand-offs per request. On a proxy that idles
// between requests each hand-off wakes a thread, and those wake-ups cost the waypoint more CPU than the
// proxying (docs/benchmarks.md). Here the caller writes the request and reads the response itself; only a
// request body of unknown length streaming from downstream is written from a second goroutine, so that an
// early answer from the server is not stuck behind it.
type h1Client struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	idleTimeout time.Duration
	maxIdle     int // kept-alive connections per address
	// limits, if set, gives a request's connection pool (connections are kept per pool and address) and
	// that pool's limits: requests per connection (0: unlimited) and idle timeout (0: idleTimeout). The
	// engine pools per cluster, with the cluster's HTTP protocol options, as Envoy does.
	limits func(ctx context.Context) (pool string, maxRequests int, idle time.Duration)

	mu     sync.Mutex
	idle   map[string][]*h1Conn
	closed bool
}

// aLongTimeAgo is a deadline in the past: setting it makes blocked reads and writes return at once.
var aLongTimeAgo = time.Unix(1, 0)

func newH1Client(dial func(ctx context.Context, network, addr string) (net.Conn, error), maxIdle int, idleTimeout time.Duration) *h1Client {
	return &h1Client{dial: dial, maxIdle: maxIdle, idleTimeout: idleTimeout, idle: map[string][]*h1Conn{}}
}

// h1Conn is one upstream connection; it carries one request at a time.
type h1Conn struct {
	c   *h1Client
	key string
	nc  net.Conn
	br  *bufio.Reader
	bw  *bufio.Writer
	// Bytes read from and written to nc, to tell a connection the server had closed while it idled (the
	// request failed before any answer) from a failed request.
	read, written int64
	timer         *time.Timer // closes the connection once it has idled for idleTimeout
	probe         [1]byte     // alive's read buffer
	// requests counts the requests served; after maxRequests (if > 0) the connection is closed rather
	// than kept. idle, if > 0, replaces the client's idle timeout.
	requests, maxRequests int
	idle                  time.Duration
}

// Read counts what the bufio.Reader takes from the connection.
func (hc *h1Conn) Read(p []byte) (int, error) {
	n, err := hc.nc.Read(p)
	hc.read += int64(n)
	return n, err
}

// Write counts what the bufio.Writer gives the connection.
func (hc *h1Conn) Write(p []byte) (int, error) {
	n, err := hc.nc.Write(p)
	hc.written += int64(n)
	return n, err
}

// RoundTrip sends req on a pooled or new connection and returns the response, whose Body gives the
// connection back to the pool once read to the end (or closes it when closed earlier).
func (c *h1Client) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	for {
		key, maxRequests, idle := req.URL.Host, 0, time.Duration(0)
		if c.limits != nil {
			var pool string
			pool, maxRequests, idle = c.limits(ctx)
			key = pool + "|" + key
		}
		hc, reused, err := c.get(ctx, key, req.URL.Host)
		if err != nil {
			return nil, err
		}
		if !reused {
			hc.maxRequests, hc.idle = maxRequests, idle
		}
		read, written := hc.read, hc.written
		resp, err := hc.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		// A kept-alive connection that the server closed while it was idle fails before anything comes
		// back. Like net/http, send again on a new connection when that cannot run the request twice:
		// nothing of it was written, or it is idempotent. (A streaming body is not sent again, and its
		// writer goroutine may still be counting.)
		if streamsBody(req) || !replayable(req) || !reused || hc.read != read || ctx.Err() != nil ||
			(hc.written != written && !idempotent(req)) {
			return nil, err
		}
		if req.GetBody != nil {
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// streamsBody says whether req's body has no known length, so that it is written while the answer is read.
func streamsBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody && req.ContentLength < 0
}

func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func idempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// get returns an idle connection of pool key, or dials addr.
func (c *h1Client) get(ctx context.Context, key, addr string) (hc *h1Conn, reused bool, err error) {
	c.mu.Lock()
	for n := len(c.idle[key]); n > 0 && hc == nil; n = len(c.idle[key]) {
		hc = c.idle[key][n-1]
		c.idle[key] = c.idle[key][:n-1]
		if !hc.timer.Stop() { // expired while we looked: expire no longer finds it, so close it here
			hc.nc.Close()
			hc = nil
		}
	}
	c.mu.Unlock()
	if hc != nil && !hc.alive() {
		hc.nc.Close()
		return c.get(ctx, key, addr)
	}
	if hc != nil {
		reused = true
	} else {
		nc, err := c.dial(ctx, "tcp", addr)
		if err != nil {
			return nil, false, err
		}
		hc = &h1Conn{c: c, key: key, nc: nc}
		hc.br = bufio.NewReader(hc)
		hc.bw = bufio.NewWriter(hc)
	}
	if t := httptrace.ContextClientTrace(ctx); t != nil && t.GotConn != nil {
		t.GotConn(httptrace.GotConnInfo{Conn: hc.nc, Reused: reused})
	}
	return hc, reused, nil
}

// alive reports whether an idle connection can carry a request: the server has neither closed it nor
// sent anything unasked. net/http's Transport learns that from the reader goroutine it keeps on every
// idle connection; here one read that must not block answers it, so that a request that may not be sent
// twice is not lost on a connection the server had closed.
func (hc *h1Conn) alive() bool {
	if hc.br.Buffered() > 0 {
		return false
	}
	if sc, ok := hc.nc.(syscall.Conn); ok {
		// A socket: peek without blocking. (A read with a deadline in the past would not even try: Go's
		// poller fails it before the system call.)
		rc, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		var peekErr error
		if err := rc.Read(func(fd uintptr) bool {
			_, _, peekErr = unix.Recvfrom(int(fd), hc.probe[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			return true
		}); err != nil {
			return false
		}
		return peekErr == unix.EAGAIN // else data nobody asked for, EOF (n == 0, nil) or an error
	}
	// An HBONE stream hands out what it holds, or its end, before it looks at the deadline.
	hc.nc.SetReadDeadline(aLongTimeAgo)
	n, err := hc.nc.Read(hc.probe[:])
	hc.nc.SetReadDeadline(time.Time{})
	var ne net.Error
	return n == 0 && errors.As(err, &ne) && ne.Timeout()
}

// put keeps hc for the next request to its address, unless the pool is full or closed.
func (c *h1Client) put(hc *h1Conn) {
	hc.requests++
	c.mu.Lock()
	if c.closed || len(c.idle[hc.key]) >= c.maxIdle || (hc.maxRequests > 0 && hc.requests >= hc.maxRequests) {
		c.mu.Unlock()
		hc.nc.Close()
		return
	}
	idle := c.idleTimeout
	if hc.idle > 0 {
		idle = hc.idle
	}
	if hc.timer == nil {
		hc.timer = time.AfterFunc(idle, func() { c.expire(hc) })
	} else {
		hc.timer.Reset(idle)
	}
	c.idle[hc.key] = append(c.idle[hc.key], hc)
	c.mu.Unlock()
}

// expire closes hc if it is still idle.
func (c *h1Client) expire(hc *h1Conn) {
	c.mu.Lock()
	i := slices.Index(c.idle[hc.key], hc)
	if i >= 0 {
		c.idle[hc.key] = slices.Delete(c.idle[hc.key], i, i+1)
	}
	c.mu.Unlock()
	if i >= 0 {
		hc.nc.Close()
	}
}

// closeIdle closes every idle connection; connections in use are closed when their requests end.
func (c *h1Client) closeIdle() {
	c.mu.Lock()
	idle := c.idle
	c.idle, c.closed = map[string][]*h1Conn{}, true
	c.mu.Unlock()
	for _, list := range idle {
		for _, hc := range list {
			hc.timer.Stop()
			hc.nc.Close()
		}
	}
}

// roundTrip sends req and reads the response head. On error the connection is closed.
func (hc *h1Conn) roundTrip(req *http.Request) (*http.Response, error) {
	// Cancelling the request ends the connection, as with net/http: blocked reads and writes return.
	stop := context.AfterFunc(req.Context(), func() { hc.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		hc.nc.Close() // also ends a streaming body's writer, unless it waits on downstream, which ends it
		return nil, err
	}
	var writeErr chan error
	if streamsBody(req) {
		writeErr = make(chan error, 1)
		go func() { writeErr <- hc.writeRequest(req) }()
	} else if err := hc.writeRequest(req); err != nil {
		return fail(err)
	}
	resp, err := hc.readResponse(req)
	if err != nil {
		return fail(err)
	}
	// After a 101 the connection speaks another protocol: never hand it to the next request.
	reusable := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
	resp.Body = &h1Body{hc: hc, body: resp.Body, stop: stop, writeErr: writeErr, reusable: reusable}
	return resp, nil
}

func (hc *h1Conn) writeRequest(req *http.Request) error {
	if err := req.Write(hc.bw); err != nil {
		return err
	}
	return hc.bw.Flush()
}

// readResponse reads the final response head, skipping interim (1xx) responses other than 101.
func (hc *h1Conn) readResponse(req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(hc.br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
}

// h1Body is a response body that, read to its end, gives its connection back to the pool.
type h1Body struct {
	hc       *h1Conn
	body     io.ReadCloser
	stop     func() bool // stops the request's cancellation; false if it already ran
	writeErr chan error  // the streaming request body's writer, if any
	reusable bool
	done     bool
	eof      bool
}

var errBodyClosed = errors.New("l7: read on a closed upstream response body")

func (b *h1Body) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.done {
		return 0, errBodyClosed
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

// finish releases the connection: back to the pool after a whole response on a connection that may be
// kept, else closed.
func (b *h1Body) finish(eof bool) {
	b.done, b.eof = true, eof
	reuse := b.stop() && eof && b.reusable
	if b.writeErr != nil {
		select {
		case err := <-b.writeErr:
			reuse = reuse && err == nil
		default:
			reuse = false // the server answered before the request body ended; closing ends the writer
		}
	}
	if reuse {
		b.hc.c.put(b.hc)
	} else {
		b.hc.nc.Close()
	}
}
