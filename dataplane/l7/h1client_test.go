package l7

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// h1Server is a real net/http server on loopback that counts the TCP connections it accepted and has
// seen closed.
type h1Server struct {
	*httptest.Server
	opened, closed atomic.Int32
}

func newH1Server(t *testing.T, h http.HandlerFunc, configure ...func(*http.Server)) *h1Server {
	t.Helper()
	s := &h1Server{Server: httptest.NewUnstartedServer(h)}
	for _, f := range configure {
		f(s.Config)
	}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.opened.Add(1)
		case http.StateClosed:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func newTestH1Client(t *testing.T, maxIdle int, idle time.Duration) *h1Client {
	c := newH1Client((&net.Dialer{}).DialContext, maxIdle, idle)
	t.Cleanup(c.closeIdle)
	return c
}

func (s *h1Server) addr() string { return strings.TrimPrefix(s.URL, "http://") }

// do sends one request and reads the whole answer.
func do(t *testing.T, c *h1Client, method, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, string(b)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestH1ClientKeepsConnectionsAlive(t *testing.T) {
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/head", "/nocontent":
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(map[string]int{"/head": 200, "/nocontent": 204}[r.URL.Path])
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "part1,")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2")
			w.Header().Set("X-Sum", "ok")
		default:
			b, _ := io.ReadAll(r.Body)
			io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(b))
		}
	})
	c := newTestH1Client(t, 4, time.Minute)
	reused := 0
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if i.Reused {
			reused++
		}
	}}
	for i := range 10 {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", s.URL+"/x", nil)
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "GET /x " {
			t.Fatalf("request %d: body %q", i, b)
		}
	}
	if _, body := do(t, c, "POST", s.URL+"/p", strings.NewReader("payload")); body != "POST /p payload" {
		t.Errorf("POST body = %q", body)
	}
	if resp, body := do(t, c, "HEAD", s.URL+"/head", nil); resp.StatusCode != 200 || body != "" {
		t.Errorf("HEAD = %d %q", resp.StatusCode, body)
	}
	if resp, body := do(t, c, "GET", s.URL+"/nocontent", nil); resp.StatusCode != 204 || body != "" {
		t.Errorf("204 = %d %q", resp.StatusCode, body)
	}
	resp, body := do(t, c, "GET", s.URL+"/chunked", nil)
	if body != "part1,part2" || resp.Trailer.Get("X-Sum") != "ok" {
		t.Errorf("chunked = %q, trailer %v", body, resp.Trailer)
	}
	if n := s.opened.Load(); n != 1 {
		t.Errorf("server saw %d connections for 14 sequential requests, want 1", n)
	}
	if reused != 9 {
		t.Errorf("GotConn reported %d reused connections for 10 requests, want 9", reused)
	}
}

// A kept-alive connection the server closed while idle is not used: a POST, which may not be sent twice,
// goes through on a new connection.
func TestH1ClientSkipsConnectionsTheServerClosed(t *testing.T) {
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}, func(s *http.Server) { s.IdleTimeout = 20 * time.Millisecond })
	c := newTestH1Client(t, 4, time.Minute)
	do(t, c, "GET", s.URL, nil)
	eventually(t, "the server to close the idle connection", func() bool { return s.closed.Load() == 1 })
	if _, body := do(t, c, "POST", s.URL, strings.NewReader("once")); body != "once" {
		t.Errorf("POST after the server closed the idle connection = %q", body)
	}
	if n := s.opened.Load(); n != 2 {
		t.Errorf("server saw %d connections, want 2", n)
	}
}

func TestH1ClientDoesNotReuseClosedOrUnfinishedConnections(t *testing.T) {
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, strings.Repeat("x", 64<<10))
	})
	c := newTestH1Client(t, 4, time.Minute)
	do(t, c, "GET", s.URL+"/close", nil) // the server ends the connection
	// A body closed half-read leaves the connection in the middle of a response.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", s.URL+"/", nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 10))
	resp.Body.Close()
	do(t, c, "GET", s.URL+"/", nil)
	if n := s.opened.Load(); n != 3 {
		t.Errorf("server saw %d connections, want 3 (none reusable)", n)
	}
}

func TestH1ClientCancelEndsTheRequest(t *testing.T) {
	release := make(chan struct{})
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush() // headers now, body never
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c := newTestH1Client(t, 4, time.Minute)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL, nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip() = %v, want the headers", err)
	}
	_, err = io.ReadAll(resp.Body)
	if err == nil || ctx.Err() == nil {
		t.Fatalf("reading a body that never comes: %v (ctx %v), want an error after the deadline", err, ctx.Err())
	}
	resp.Body.Close()
	eventually(t, "the server to see the connection closed", func() bool { return s.closed.Load() == 1 })
}

// A request body of unknown length streams from its own goroutine, so an answer that comes before the
// body ends is read, and the unfinished connection is not reused.
func TestH1ClientReadsAnEarlyAnswerWhileTheBodyStreams(t *testing.T) {
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		// Full duplex: net/http's server would otherwise read the rest of the body before answering.
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		buf := make([]byte, 5)
		io.ReadFull(r.Body, buf)
		w.Header().Set("Content-Length", "9")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, "got "+string(buf))
		rc.Flush()
		io.Copy(io.Discard, r.Body) // ends when the client closes the connection
	})
	c := newTestH1Client(t, 4, time.Minute)
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("first")) // and then nothing: the body never ends
	req, _ := http.NewRequestWithContext(t.Context(), "POST", s.URL, pr)
	req.ContentLength = -1
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip() = %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || string(b) != "got first" {
		t.Fatalf("answer = %d %q", resp.StatusCode, b)
	}
	do(t, c, "GET", s.URL, strings.NewReader("12345"))
	if n := s.opened.Load(); n != 2 {
		t.Errorf("server saw %d connections, want 2 (the streaming one not reused)", n)
	}
}

func TestH1ClientSkipsInterimResponses(t *testing.T) {
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		b, _ := io.ReadAll(r.Body) // sends 100 Continue first
		io.WriteString(w, "final "+string(b))
	})
	c := newTestH1Client(t, 4, time.Minute)
	req, _ := http.NewRequestWithContext(t.Context(), "PUT", s.URL, strings.NewReader("body"))
	req.Header.Set("Expect", "100-continue")
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "final body" {
		t.Errorf("answer = %d %q, want 200 \"final body\"", resp.StatusCode, b)
	}
}

func TestH1ClientPoolLimitsAndIdleTimeout(t *testing.T) {
	gate := make(chan struct{})
	var inFlight sync.WaitGroup
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			inFlight.Done()
			<-gate
		}
		io.WriteString(w, "ok")
	})
	c := newTestH1Client(t, 1, 100*time.Millisecond)
	var wg sync.WaitGroup
	inFlight.Add(2)
	for range 2 {
		wg.Go(func() { do(t, c, "GET", s.URL+"/wait", nil) })
	}
	inFlight.Wait() // both on their own connection
	close(gate)
	wg.Wait()
	eventually(t, "the connection beyond the pool's limit to be closed", func() bool { return s.closed.Load() == 1 })
	eventually(t, "the idle connection to time out", func() bool { return s.closed.Load() == 2 })
	c.mu.Lock()
	left := len(c.idle[s.addr()])
	c.mu.Unlock()
	if left != 0 {
		t.Errorf("%d connections still pooled after the idle timeout", left)
	}
	// And the client still works.
	if _, body := do(t, c, "GET", s.URL, nil); body != "ok" {
		t.Errorf("after the timeout: %q", body)
	}
}

func TestH1ClientDialErrorIsReported(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	c := newTestH1Client(t, 4, time.Minute)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+addr+"/", nil)
	_, err := c.RoundTrip(req)
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" {
		t.Errorf("RoundTrip() to a closed port = %v, want the dial error", err)
	}
}
