// Package hbonetest runs HBONE servers for tests: a pod's inbound side, as its ztunnel serves it.
package hbonetest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/meshlab/meshlab/dataplane/hbone"
	"github.com/meshlab/meshlab/identity/ca"
)

// Forwarder starts an HBONE server on loopback presenting a mesh certificate of ns/sa, issued by
// authority, that forwards each stream to its CONNECT target, as a pod's ztunnel does inbound. It returns
// the server's address; the server stops when the test ends.
func Forwarder(t testing.TB, authority *ca.CA, ns, sa string) string {
	t.Helper()
	id, err := authority.WorkloadID(ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := authority.Issue(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv := &hbone.Server{
		TLSConfig: hbone.ServerTLSConfig(svid, authority.Bundle(), tlsconfig.AuthorizeAny()),
		Handler: hbone.HandlerFunc(func(s *hbone.Stream) {
			c, err := net.Dial("tcp", s.Target.String())
			if err != nil {
				return
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); io.Copy(c, s); c.(*net.TCPConn).CloseWrite() }()
			io.Copy(s, c)
			c.Close()
			wg.Wait()
		}),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}
