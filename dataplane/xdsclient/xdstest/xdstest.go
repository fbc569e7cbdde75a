// Package xdstest runs a small state-of-the-world ADS server for data-plane tests on a loopback gRPC
// listener: it serves one config snapshot per node, pushes when the snapshot changes, and records every
// request so tests can see ACKs and NACKs. The control plane's own server lives in controlplane/xds;
// this one only stands in for it.
package xdstest

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/dataplane/l7/l7test"
)

// Server is a test ADS server.
type Server struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	Addr string
	grpc *grpc.Server

	mu       sync.Mutex
	snaps    map[string]*snapshot // by node id
	changed  chan struct{}        // closed and replaced on every Set
	requests []*discoveryv3.DiscoveryRequest
	notify   chan struct{}
	held     map[string]bool // types whose responses are withheld
}

type snapshot struct {
	version   string
	resources map[string]map[string]proto.Message // type -> name -> resource
}

// Start serves on addr ("" picks a loopback port) until the test ends.
func Start(t testing.TB, addr string) *Server {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: l.Addr().String(), snaps: map[string]*snapshot{}, changed: make(chan struct{}), notify: make(chan struct{}, 1)}
	s.grpc = grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(s.grpc, s)
	go s.grpc.Serve(l)
	t.Cleanup(s.Stop)
	return s
}

// Stop ends the server and every stream.
func (s *Server) Stop() { s.grpc.Stop() }

// Set publishes cfg as version for node and pushes it to the node's streams.
func (s *Server) Set(t testing.TB, node, version string, cfg l7test.Config) {
	t.Helper()
	snap := &snapshot{version: version, resources: map[string]map[string]proto.Message{
		xdstype.Listener: {}, xdstype.Route: {}, xdstype.Cluster: {}, xdstype.Endpoint: {}}}
	for _, r := range cfg.Listeners {
		snap.resources[xdstype.Listener][r.GetName()] = r
	}
	for _, r := range cfg.Routes {
		snap.resources[xdstype.Route][r.GetName()] = r
	}
	for _, r := range cfg.Clusters {
		snap.resources[xdstype.Cluster][r.GetName()] = r
	}
	for _, r := range cfg.Endpoints {
		snap.resources[xdstype.Endpoint][r.GetClusterName()] = r
	}
	s.mu.Lock()
	s.snaps[node] = snap
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Hold withholds responses of the given types until Release, to see a client between the types of
// one config (Envoy's warming).
func (s *Server) Hold(types ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = map[string]bool{}
	}
	for _, t := range types {
		s.held[t] = true
	}
}

// Release sends what Hold withheld.
func (s *Server) Release(types ...string) {
	s.mu.Lock()
	for _, t := range types {
		delete(s.held, t)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Requests returns the requests received so far.
func (s *Server) Requests() []*discoveryv3.DiscoveryRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*discoveryv3.DiscoveryRequest(nil), s.requests...)
}

// WaitFor blocks until a received request satisfies ok, or ctx ends.
func (s *Server) WaitFor(ctx context.Context, ok func(*discoveryv3.DiscoveryRequest) bool) (*discoveryv3.DiscoveryRequest, error) {
	for {
		for _, r := range s.Requests() {
			if ok(r) {
				return r, nil
			}
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// watch is one type on one stream: what the client asked for and what it was last sent.
type watch struct {
	names    []string
	sent     string // version sent
	sentKeys []string
}

// StreamAggregatedResources serves one SotW stream.
func (s *Server) StreamAggregatedResources(stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	reqs := make(chan *discoveryv3.DiscoveryRequest)
	errc := make(chan error, 1)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			reqs <- r
		}
	}()
	node := ""
	watches := map[string]*watch{}
	nonce := 0
	push := func() error {
		s.mu.Lock()
		snap := s.snaps[node]
		held := maps.Clone(s.held)
		s.mu.Unlock()
		if snap == nil {
			return nil
		}
		for _, t := range []string{xdstype.Cluster, xdstype.Endpoint, xdstype.Listener, xdstype.Route} {
			w := watches[t]
			if w == nil || held[t] {
				continue
			}
			wildcard := (t == xdstype.Listener || t == xdstype.Cluster) && len(w.names) == 0
			var keys []string
			for name := range snap.resources[t] {
				if wildcard || slices.Contains(w.names, name) {
					keys = append(keys, name)
				}
			}
			slices.Sort(keys)
			if w.sent == snap.version && slices.Equal(keys, w.sentKeys) {
				continue
			}
			resp := &discoveryv3.DiscoveryResponse{TypeUrl: t, VersionInfo: snap.version}
			for _, k := range keys {
				a, err := anypb.New(snap.resources[t][k])
				if err != nil {
					return err
				}
				resp.Resources = append(resp.Resources, a)
			}
			nonce++
			resp.Nonce = fmt.Sprint(nonce)
			if err := stream.Send(resp); err != nil {
				return err
			}
			w.sent, w.sentKeys = snap.version, keys
		}
		return nil
	}
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		select {
		case err := <-errc:
			return err
		case <-stream.Context().Done():
			return stream.Context().Err()
		case r := <-reqs:
			s.mu.Lock()
			s.requests = append(s.requests, proto.Clone(r).(*discoveryv3.DiscoveryRequest))
			s.mu.Unlock()
			select {
			case s.notify <- struct{}{}:
			default:
			}
			if r.GetNode() != nil {
				node = r.GetNode().GetId()
			}
			w := watches[r.GetTypeUrl()]
			if w == nil {
				w = &watch{sent: r.GetVersionInfo()}
				watches[r.GetTypeUrl()] = w
			}
			w.names = r.GetResourceNames()
			if r.GetErrorDetail() != nil {
				continue // NACK: wait for a new version
			}
			if err := push(); err != nil {
				return err
			}
		case <-changed:
			if err := push(); err != nil {
				return err
			}
		}
	}
}
