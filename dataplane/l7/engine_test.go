package l7

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshlab/meshlab/dataplane/l7/l7test"
)

// engineFixture serves the engine on a loopback TCP listener; every accepted connection is treated as
// a tunnel to vip, and upstream endpoints are dialled as plain TCP.
type engineFixture struct {
	e    *Engine
	addr string
	log  *strings.Builder
}

func newEngineFixture(t testing.TB, cfg Config, vip netip.AddrPort) *engineFixture {
	t.Helper()
	log := &syncBuilder{}
	e, err := NewEngine(Options{
		Dial: func(ctx context.Context, ep *Endpoint) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", ep.Address)
		},
		AccessLog: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(cfg); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				src := netip.MustParseAddrPort(c.RemoteAddr().String())
				if err := e.ServeConn(context.Background(), c, Downstream{Listener: "main_internal", Peer: "spiffe://cluster.local/ns/default/sa/sleep", Source: src, Destination: vip}); err != nil {
					c.Close()
				}
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); e.Close() })
	return &engineFixture{e: e, addr: l.Addr().String(), log: &log.b}
}

type syncBuilder struct {
	b strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) { return s.b.Write(p) }

func echoServer(t *testing.T, name string, handler func(w http.ResponseWriter, r *http.Request) bool) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if handler != nil && handler(w, r) {
			return
		}
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "%s %s request-id=%s", name, r.URL.Path, r.Header.Get("X-Request-Id"))
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestEngineHTTP(t *testing.T) {
	var flaky atomic.Int32
	a := echoServer(t, "a", func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case "/flaky":
			if flaky.Add(1) == 1 {
				w.WriteHeader(503)
				return true
			}
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		}
		return false
	})
	svc := l7test.Service{FQDN: "reviews.default.svc.cluster.local", VIP: "10.96.0.10", Port: 9080}
	name := svc.Name("")
	slow := l7test.PrefixRoute("slow", "/slow", name)
	slow.GetRoute().Timeout = durationpb.New(100 * time.Millisecond)
	svc.Routes = []*routev3.Route{
		slow,
		{Name: "direct", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/direct"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418}}},
		l7test.PrefixRoute("default", "/", name),
	}
	cfg := Config(l7test.Waypoint([]l7test.Service{svc}, nil, map[string][]string{name: {a}}, nil))
	cfg.Routes[0].VirtualHosts[0].Domains = []string{"*"}
	cfg.Routes[0].VirtualHosts[0].Routes = append(cfg.Routes[0].VirtualHosts[0].Routes[:2], cfg.Routes[0].VirtualHosts[0].Routes[2])
	cfg.Routes[0].VirtualHosts[0].Routes[2].Match.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	f := newEngineFixture(t, cfg, netip.MustParseAddrPort("10.96.0.10:9080"))

	// HTTP/1.1 with keep-alive: several requests on one connection.
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	get := func(path string, hdr string) *http.Response {
		t.Helper()
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: reviews:9080\r\n%s\r\n", path, hdr)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp
	}
	body := func(r *http.Response) string {
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		return string(b)
	}
	r := get("/ok", "")
	if b := body(r); r.StatusCode != 200 || !strings.HasPrefix(b, "a /ok request-id=") || len(b) < len("a /ok request-id=")+36 {
		t.Errorf("GET /ok = %d %q, want 200 from a with a generated x-request-id", r.StatusCode, b)
	}
	if r.Header.Get("X-Envoy-Upstream-Service-Time") == "" {
		t.Errorf("no x-envoy-upstream-service-time on the response")
	}
	r = get("/ok", "X-Request-Id: keep-me\r\n")
	if b := body(r); b != "a /ok request-id=keep-me" {
		t.Errorf("GET /ok with x-request-id = %q, want it kept", b)
	}
	r = get("/flaky", "")
	if b := body(r); r.StatusCode != 200 {
		t.Errorf("GET /flaky = %d %q, want 200 after one retry", r.StatusCode, b)
	}
	r = get("/direct", "")
	if body(r); r.StatusCode != 418 {
		t.Errorf("GET /direct = %d, want 418", r.StatusCode)
	}
	start := time.Now()
	r = get("/slow", "")
	if b := body(r); r.StatusCode != 504 || b != bodyTimeout || time.Since(start) > 250*time.Millisecond {
		t.Errorf("GET /slow = %d %q after %v, want 504 %q after ~100ms", r.StatusCode, b, time.Since(start), bodyTimeout)
	}

	// h2c with prior knowledge on the same listener.
	h2 := &http.Client{Transport: &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, _, _ string, _ *tls.Config) (net.Conn, error) {
		return net.Dial("tcp", f.addr)
	}}}
	resp, err := h2.Get("http://reviews:9080/h2")
	if err != nil {
		t.Fatalf("h2c GET: %v", err)
	}
	if b := body(resp); resp.ProtoMajor != 2 || !strings.HasPrefix(b, "a /h2") {
		t.Errorf("h2c GET = %s %q", resp.Proto, b)
	}
	if !strings.Contains(f.log.String(), `"GET /flaky HTTP/1.1" 200 - `) || !strings.Contains(f.log.String(), "attempts=2") {
		t.Errorf("access log lacks the retried request:\n%s", f.log.String())
	}
}

func TestEngineTCPProxy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	svc := l7test.Service{FQDN: "mongo.default.svc.cluster.local", VIP: "10.96.0.20", Port: 27017, TCP: true}
	cfg := Config(l7test.Waypoint([]l7test.Service{svc}, nil, map[string][]string{svc.Name(""): {l.Addr().String()}}, nil))
	f := newEngineFixture(t, cfg, netip.MustParseAddrPort("10.96.0.20:27017"))
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "ping")
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(c)
	if string(got) != "ping" {
		t.Errorf("echo through tcp_proxy = %q, want ping", got)
	}
}
