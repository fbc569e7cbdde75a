package l7xds

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// HTTPServers runs a proxy's plain HTTP endpoints (admin, /healthz/ready) and stops them together; the
// waypoint and the ingress gateway serve theirs the same way.
type HTTPServers struct {
	mu      sync.Mutex
	servers []*http.Server
	wg      sync.WaitGroup
}

// Serve listens on addr and serves h there until Close. addr "off" serves nothing and returns a nil
// listener.
func (s *HTTPServers) Serve(addr string, h http.Handler) (net.Listener, error) {
	if addr == "off" {
		return nil, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		srv.Serve(l)
	}()
	return l, nil
}

// Close closes every server and waits until they have returned.
func (s *HTTPServers) Close() {
	s.mu.Lock()
	for _, srv := range s.servers {
		srv.Close()
	}
	s.servers = nil
	s.mu.Unlock()
	s.wg.Wait()
}
