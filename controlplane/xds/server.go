package xds

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// Defaults, as istiod's.
const (
	DefaultDebounceQuiet = 100 * time.Millisecond
	DefaultDebounceMax   = 10 * time.Second
	DefaultConcurrency   = 100
)

// Server serves ADS (state of the world and delta) from a Generator and pushes config changes.
type Server struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer

	gen         Generator
	cache       *Cache
	logf        func(format string, args ...any)
	id          string
	quiet, max  time.Duration
	concurrency int
	incremental map[string]bool
	registry    *prometheus.Registry
	metrics     *metrics
	debugAuth   DebugAuthorizer

	updates chan *PushRequest
	queue   *pushQueue

	mu    sync.RWMutex
	conns map[*connection]struct{}

	snapMu      sync.Mutex
	snapshot    any
	snapshotSeq uint64
	prepared    bool

	connSeq  atomic.Uint64
	nonceSeq atomic.Uint64

	// onAck, when set (tests, benchmarks), is called on every ACK with the start of the oldest change it
	// acknowledges.
	onAck func(proxyID, typeURL string, changeStart time.Time)
}

// Option configures a Server.
type Option func(*Server)

// WithDebounce sets the quiet window (flush once no change came for this long; 0 disables debouncing)
// and the max window (flush at the latest this long after the first unflushed change).
func WithDebounce(quiet, max time.Duration) Option {
	return func(s *Server) { s.quiet, s.max = quiet, max }
}

// WithConcurrency limits how many proxies are being pushed at once.
func WithConcurrency(n int) Option {
	return func(s *Server) {
		if n > 0 {
			s.concurrency = n
		}
	}
}

// WithCache gives the server the generators' cache, so that it can invalidate it as changes arrive.
func WithCache(c *Cache) Option { return func(s *Server) { s.cache = c } }

// WithLogf sends the server's log lines to logf (default: discarded).
func WithLogf(logf func(format string, args ...any)) Option { return func(s *Server) { s.logf = logf } }

// WithID names this control plane instance (proxy-status's ISTIOD column), e.g. its pod name.
func WithID(id string) Option { return func(s *Server) { s.id = id } }

// WithRegistry registers the server's metrics in reg instead of a registry of its own.
func WithRegistry(reg *prometheus.Registry) Option { return func(s *Server) { s.registry = reg } }

// WithIncrementalTypes sets the types an endpoint-only (non-Full) push regenerates; the default is EDS and
// workload addresses.
func WithIncrementalTypes(typeURLs ...string) Option {
	return func(s *Server) {
		s.incremental = map[string]bool{}
		for _, t := range typeURLs {
			s.incremental[t] = true
		}
	}
}

// NewServer returns a server generating config with gen. Call Start before serving, then Register it on a
// grpc.Server.
func NewServer(gen Generator, opts ...Option) *Server {
	s := &Server{
		gen:         gen,
		logf:        func(string, ...any) {},
		id:          "istiod",
		quiet:       DefaultDebounceQuiet,
		max:         DefaultDebounceMax,
		concurrency: DefaultConcurrency,
		incremental: map[string]bool{xdstype.Endpoint: true, xdstype.Address: true},
		updates:     make(chan *PushRequest, 1024),
		queue:       newPushQueue(),
		conns:       map[*connection]struct{}{},
	}
	for _, o := range opts {
		o(s)
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	// Nonces start from the clock so that a restarted server never reuses one a client still holds.
	s.nonceSeq.Store(uint64(time.Now().UnixNano()))
	s.metrics = newMetrics(s.registry, func() float64 { return float64(s.queue.Pending()) })
	return s
}

// Register serves the aggregated discovery service on g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, s)
}

// Cache returns the cache given with WithCache, or nil.
func (s *Server) Cache() *Cache { return s.cache }

// Registry returns the registry holding the server's metrics.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Start runs the push pipeline (debounce, then the push queue) until ctx ends.
func (s *Server) Start(ctx context.Context) {
	go debounce(ctx, s.updates, s.quiet, s.max, s.push)
	go s.sendPushes(ctx)
	go func() {
		<-ctx.Done()
		s.queue.Close()
	}()
}

// ConfigUpdate asks for a push. Safe to call from any goroutine; it blocks only if over a thousand
// requests are waiting for the debouncer.
func (s *Server) ConfigUpdate(req *PushRequest) {
	if req.Start.IsZero() {
		req.Start = time.Now()
	}
	for r := range req.Reason {
		s.metrics.triggers.WithLabelValues(r).Inc()
	}
	s.updates <- req
}

// push runs once per debounced request: invalidate the cache, prepare the snapshot, and queue a push for
// every affected proxy.
func (s *Server) push(req *PushRequest, events int) {
	s.metrics.debounced.Inc()
	if s.cache != nil {
		if req.everything() {
			s.cache.ClearAll()
		} else {
			s.cache.Clear(req.ConfigsUpdated)
		}
	}
	if err := s.prepare(req); err != nil {
		s.logf("xds: preparing push (%d changes merged): %v; proxies keep their config", events, err)
		return
	}
	s.mu.RLock()
	conns := make([]*connection, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.RUnlock()
	affected := 0
	for _, c := range conns {
		if s.gen.Affects(c.proxy, req) {
			s.queue.Enqueue(c, req)
			affected++
		}
	}
	s.logf("xds: push full=%t configs=%d reasons=%v merged=%d affected=%d/%d", req.Full, len(req.ConfigsUpdated), req.Reason, events, affected, len(conns))
}

// prepare sets req.Snapshot: a new one from the Preparer on a full push, the current one otherwise.
func (s *Server) prepare(req *PushRequest) error {
	p, ok := s.gen.(Preparer)
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	if ok && (req.Full || !s.prepared) {
		snap, err := p.Prepare(req)
		if err != nil {
			return err
		}
		s.snapshot, s.prepared = snap, true
		s.snapshotSeq++
	}
	req.Snapshot, req.snapshotSeq = s.snapshot, s.snapshotSeq
	return nil
}

// initialRequest is the request a proxy's first subscription to a type is generated with.
func (s *Server) initialRequest() (*PushRequest, error) {
	req := &PushRequest{Full: true, Reason: map[string]int{"proxy-request": 1}, Start: time.Now()}
	s.snapMu.Lock()
	prepared := s.prepared
	s.snapMu.Unlock()
	if !prepared {
		if err := s.prepare(req); err != nil {
			return nil, err
		}
		return req, nil
	}
	s.snapMu.Lock()
	req.Snapshot, req.snapshotSeq = s.snapshot, s.snapshotSeq
	s.snapMu.Unlock()
	return req, nil
}

// sendPushes hands queued pushes to their connections, at most s.concurrency at a time.
func (s *Server) sendPushes(ctx context.Context) {
	sem := make(chan struct{}, s.concurrency)
	for {
		c, req, ok := s.queue.Dequeue()
		if !ok {
			return
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		ev := &pushEvent{req: req}
		ev.done = func() {
			ev.once.Do(func() {
				<-sem
				s.queue.MarkDone(c)
			})
		}
		go func() {
			select {
			case c.pushCh <- ev:
			case <-c.closed:
				ev.done()
			}
		}()
	}
}

// pushEvent is one push handed to a connection; done must be called once it is sent (or dropped).
type pushEvent struct {
	req  *PushRequest
	done func()
	once sync.Once
}

// connect registers a new stream's connection.
func (s *Server) connect(node *core.Node, delta bool) (*connection, error) {
	if node.GetId() == "" {
		return nil, fmt.Errorf("first request carries no node id")
	}
	p := NewProxy(node)
	c := &connection{
		id:          fmt.Sprintf("%s-%d", p.ID, s.connSeq.Add(1)),
		proxy:       p,
		s:           s,
		delta:       delta,
		connectedAt: time.Now(),
		pushCh:      make(chan *pushEvent),
		closed:      make(chan struct{}),
		types:       map[string]*typeState{},
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.metrics.connected.Inc()
	s.logf("xds: %s connected (%s, delta=%t)", p.ID, p.Kind, delta)
	return c, nil
}

func (s *Server) disconnect(c *connection) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.queue.Remove(c)
	close(c.closed)
	s.metrics.connected.Dec()
	s.logf("xds: %s disconnected", c.proxy.ID)
}

// connections returns the live connections.
func (s *Server) connections() []*connection {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*connection, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// ConnectedProxies returns how many streams are open.
func (s *Server) ConnectedProxies() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.conns)
}

func (s *Server) nextNonce() string {
	return fmt.Sprintf("%x", s.nonceSeq.Add(1))
}
