package hbone_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"golang.org/x/net/http2"

	"github.com/meshlab/meshlab/dataplane/hbone"
	"github.com/meshlab/meshlab/identity/ca"
)

var (
	serverID = spiffeid.RequireFromString("spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews")
	clientID = spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/sleep")
)

type fixture struct {
	ca     *ca.CA
	addr   string
	accept atomic.Int32 // TCP connections the server accepted
	server *hbone.Server
}

// countingListener counts accepted connections, to prove streams share one.
type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func issue(t *testing.T, authority *ca.CA, id spiffeid.ID) *x509svid.SVID {
	t.Helper()
	svid, err := authority.Issue(id, time.Hour)
	if err != nil {
		t.Fatalf("Issue(%s) = %v", id, err)
	}
	return svid
}

// newServer starts an HBONE server on loopback presenting serverID.
func newServer(t *testing.T, h hbone.HandlerFunc, authorize func(spiffeid.ID, netip.AddrPort, http.Header) error) *fixture {
	t.Helper()
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ca: authority}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	f.server = &hbone.Server{
		TLSConfig: hbone.ServerTLSConfig(issue(t, authority, serverID), authority.Bundle(), tlsconfig.AuthorizeAny()),
		Handler:   h,
		Authorize: authorize,
		Logf:      t.Logf,
	}
	go f.server.Serve(countingListener{l, &f.accept})
	t.Cleanup(func() { f.server.Close() })
	return f
}

func (f *fixture) clientTLS(t *testing.T, id spiffeid.ID) *tls.Config {
	return hbone.ClientTLSConfig(issue(t, f.ca, id), f.ca.Bundle(), tlsconfig.AuthorizeID(serverID))
}

// echo copies the stream back, then reports who and where on a last line.
func echo(s *hbone.Stream) {
	io.Copy(s, s)
	fmt.Fprintf(s, "\npeer=%s target=%s forwarded=%s", s.Peer, s.Target, s.Header.Get(hbone.HeaderForwarded))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestBytesBothWaysAndIdentity(t *testing.T) {
	f := newServer(t, echo, nil)
	client := &hbone.Client{}
	defer client.Close()
	conn, err := client.Connect(ctx(t), hbone.Request{
		ProxyAddr: f.addr, Target: "10.244.0.9:9080", TLS: f.clientTLS(t, clientID),
		Header: http.Header{hbone.HeaderForwarded: {"for=10.244.0.5"}},
	})
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	defer conn.Close()
	if conn.PeerID() != serverID {
		t.Errorf("PeerID() = %s, want %s", conn.PeerID(), serverID)
	}
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64*1024) // 1 MiB, beyond flow-control windows
	go func() {
		conn.Write(payload)
		conn.CloseWrite()
	}()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("ReadAll() = %v", err)
	}
	if !bytes.HasPrefix(got, payload) {
		t.Fatalf("echoed %d bytes, want the %d sent first", len(got), len(payload))
	}
	want := fmt.Sprintf("\npeer=%s target=10.244.0.9:9080 forwarded=for=10.244.0.5", clientID)
	if tail := string(got[len(payload):]); tail != want {
		t.Errorf("trailer = %q, want %q", tail, want)
	}
}

func TestHalfClose(t *testing.T) {
	f := newServer(t, func(s *hbone.Stream) {
		req, err := io.ReadAll(s) // returns at the client's END_STREAM
		if err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond) // reply well after the client stopped sending
		fmt.Fprintf(s, "got %q after EOF", req)
	}, nil)
	conn, err := hbone.Dial(ctx(t), f.addr, "10.244.0.9:9080", f.clientTLS(t, clientID))
	if err != nil {
		t.Fatalf("Dial() = %v", err)
	}
	defer conn.Close()
	io.WriteString(conn, "ping")
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite() = %v", err)
	}
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("ReadAll() = %v", err)
	}
	if want := `got "ping" after EOF`; string(got) != want {
		t.Errorf("reply = %q, want %q", got, want)
	}
}

func TestConcurrentStreamsShareOneConnection(t *testing.T) {
	f := newServer(t, echo, nil)
	client := &hbone.Client{}
	defer client.Close()
	cfg := f.clientTLS(t, clientID)
	const streams = 64
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := client.Dial(ctx(t), f.addr, fmt.Sprintf("10.244.0.9:%d", 8000+i), cfg)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			msg := fmt.Sprintf("stream %d", i)
			io.WriteString(conn, msg)
			conn.(*hbone.Conn).CloseWrite()
			got, err := io.ReadAll(conn)
			if err != nil {
				errs <- err
				return
			}
			if want := fmt.Sprintf("%s\npeer=%s target=10.244.0.9:%d forwarded=", msg, clientID, 8000+i); string(got) != want {
				errs <- fmt.Errorf("stream %d got %q, want %q", i, got, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := f.accept.Load(); n != 1 {
		t.Errorf("server accepted %d TCP connections for %d streams, want 1", n, streams)
	}
	if n := client.PoolSize(f.addr); n != 1 {
		t.Errorf("PoolSize() = %d, want 1", n)
	}
	// A different identity gets its own connection.
	other := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/other")
	conn, err := client.Dial(ctx(t), f.addr, "10.244.0.9:80", f.clientTLS(t, other))
	if err != nil {
		t.Fatalf("Dial() as %s = %v", other, err)
	}
	conn.Close()
	if n := f.accept.Load(); n != 2 {
		t.Errorf("server accepted %d connections after a second identity, want 2", n)
	}
}

func TestRejectsUnauthenticatedClients(t *testing.T) {
	f := newServer(t, echo, nil)
	foreign, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	noCert := &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"},
		InsecureSkipVerify: true, // this client does not check the server; the server must still refuse it
	}
	for name, cfg := range map[string]*tls.Config{
		"no certificate":              noCert,
		"certificate from other root": hbone.ClientTLSConfig(issue(t, foreign, clientID), f.ca.Bundle(), tlsconfig.AuthorizeID(serverID)),
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := (&hbone.Client{}).Dial(ctx(t), f.addr, "10.244.0.9:9080", cfg)
			if err == nil {
				// TLS 1.3 clients finish their handshake before the server checks the certificate: the
				// refusal shows on first use.
				_, err = io.ReadAll(conn)
				conn.Close()
			}
			if err == nil {
				t.Fatal("stream opened without a valid client certificate")
			}
			t.Logf("refused: %v", err)
		})
	}
}

func TestClientRejectsWrongServerIdentity(t *testing.T) {
	f := newServer(t, echo, nil)
	want := spiffeid.RequireFromString("spiffe://cluster.local/ns/bookinfo/sa/bookinfo-details")
	cfg := hbone.ClientTLSConfig(issue(t, f.ca, clientID), f.ca.Bundle(), tlsconfig.AuthorizeID(want))
	if _, err := hbone.Dial(ctx(t), f.addr, "10.244.0.9:9080", cfg); err == nil {
		t.Fatal("client accepted a server with the wrong SPIFFE ID")
	}
}

func TestAuthorizerRejectsWrongIdentity(t *testing.T) {
	allowed := clientID
	f := newServer(t, echo, func(peer spiffeid.ID, target netip.AddrPort, _ http.Header) error {
		if peer != allowed {
			return fmt.Errorf("%s may not reach %s", peer, target)
		}
		return nil
	})
	client := &hbone.Client{}
	defer client.Close()
	conn, err := client.Dial(ctx(t), f.addr, "10.244.0.9:9080", f.clientTLS(t, clientID))
	if err != nil {
		t.Fatalf("allowed identity refused: %v", err)
	}
	conn.Close()
	intruder := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/intruder")
	_, err = client.Dial(ctx(t), f.addr, "10.244.0.9:9080", f.clientTLS(t, intruder))
	var se *hbone.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusForbidden {
		t.Fatalf("Dial() as %s = %v, want a 403 StatusError", intruder, err)
	}
	if !strings.Contains(se.Reason, intruder.String()) {
		t.Errorf("reason %q does not name the peer", se.Reason)
	}
}

// TestRejectsNonConnect speaks HTTP/2 to the server directly, as a confused or hostile client would.
func TestRejectsNonConnect(t *testing.T) {
	f := newServer(t, echo, nil)
	tr := &http2.Transport{TLSClientConfig: f.clientTLS(t, clientID)}
	defer tr.CloseIdleConnections()
	for _, tc := range []struct {
		method, host string
		want         int
	}{
		{http.MethodGet, f.addr, http.StatusMethodNotAllowed},
		{http.MethodPost, f.addr, http.StatusMethodNotAllowed},
		{http.MethodConnect, "reviews.bookinfo:9080", http.StatusBadRequest},
	} {
		req, _ := http.NewRequestWithContext(ctx(t), tc.method, "https://"+f.addr+"/", nil)
		req.Host = tc.host
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.host, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.host, resp.StatusCode, tc.want)
		}
	}
}
