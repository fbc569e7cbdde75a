package l7

import (
	"context"
	"fmt"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// breaker is a cluster's circuit breaker (circuit_breakers, DEFAULT priority): it bounds the requests in
// flight to the cluster, the requests waiting for an upstream connection and the retries in flight. Unset
// thresholds are Envoy's defaults (1024, 1024, 1024 and 3 retries); Istio writes 2^32-1 to lift them.
//
// HTTP/1.1 carries one request per connection, so with an HTTP/1.1 upstream meshlab counts a request in
// flight as a connection: past max_connections a request waits (pending) for one to finish, and past
// max_pending_requests it overflows. Past max_requests a request overflows at once, whatever the protocol.
// An overflow is answered as Envoy answers it: 503 with x-envoy-overloaded. A TCP cluster's connections
// (tcp_proxy) are bounded by max_connections and refused past it.
type breaker struct {
	maxConnections, maxPending, maxRequests, maxRetries int64

	mu      sync.Mutex
	active  int64         // requests in flight
	pending int64         // requests waiting for a connection
	retries int64         // retries in flight
	tcp     int64         // TCP connections (tcp_proxy), bounded by max_connections
	freed   chan struct{} // closed and replaced when a request finishes, to wake the pending ones
}

func newBreaker() *breaker {
	return &breaker{maxConnections: 1024, maxPending: 1024, maxRequests: 1024, maxRetries: 3, freed: make(chan struct{})}
}

func compileBreaker(cb *clusterv3.CircuitBreakers) (*breaker, error) {
	b := newBreaker()
	if cb == nil {
		return b, nil
	}
	if err := checkFields(cb, "thresholds"); err != nil {
		return nil, err
	}
	for i, t := range cb.GetThresholds() {
		if err := checkFields(t, "priority", "max_connections", "max_pending_requests", "max_requests", "max_retries", "track_remaining"); err != nil {
			return nil, fmt.Errorf("thresholds %d: %w", i, err)
		}
		if t.GetPriority() != corev3.RoutingPriority_DEFAULT {
			continue // meshlab routes everything at DEFAULT priority
		}
		set := func(dst *int64, v interface{ GetValue() uint32 }, isSet bool) {
			if isSet {
				*dst = int64(v.GetValue())
			}
		}
		set(&b.maxConnections, t.GetMaxConnections(), t.MaxConnections != nil)
		set(&b.maxPending, t.GetMaxPendingRequests(), t.MaxPendingRequests != nil)
		set(&b.maxRequests, t.GetMaxRequests(), t.MaxRequests != nil)
		set(&b.maxRetries, t.GetMaxRetries(), t.MaxRetries != nil)
	}
	return b, nil
}

// acquire admits a request to the cluster, waiting while it is pending. It is false on overflow (or when
// ctx ends while pending); otherwise release must be called once the request is done.
func (b *breaker) acquire(ctx context.Context, http1 bool) bool {
	b.mu.Lock()
	if b.active >= b.maxRequests {
		b.mu.Unlock()
		return false
	}
	if http1 && b.active >= b.maxConnections {
		if b.pending >= b.maxPending {
			b.mu.Unlock()
			return false
		}
		b.pending++
		for b.active >= b.maxConnections || b.active >= b.maxRequests {
			freed := b.freed
			b.mu.Unlock()
			select {
			case <-freed:
			case <-ctx.Done():
				b.mu.Lock()
				b.pending--
				b.mu.Unlock()
				return false
			}
			b.mu.Lock()
		}
		b.pending--
	}
	b.active++
	b.mu.Unlock()
	return true
}

// release ends a request acquire admitted, waking the pending ones (if any: the common path allocates
// nothing).
func (b *breaker) release() {
	b.mu.Lock()
	b.active--
	if b.pending > 0 {
		close(b.freed)
		b.freed = make(chan struct{})
	}
	b.mu.Unlock()
}

// connection admits one TCP connection to the cluster (tcp_proxy); false past max_connections. release
// must be called when the connection ends.
func (b *breaker) connection() (release func(), ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tcp >= b.maxConnections {
		return nil, false
	}
	b.tcp++
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.tcp--
			b.mu.Unlock()
		})
	}, true
}

// retry admits one retry; false when max_retries retries are already in flight (Envoy's retry overflow:
// the last answer stands). done must be called when the retried attempt ends.
func (b *breaker) retry() (done func(), ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.retries >= b.maxRetries {
		return nil, false
	}
	b.retries++
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.retries--
			b.mu.Unlock()
		})
	}, true
}
