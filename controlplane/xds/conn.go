package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/meshlab/meshlab/api/xdstype"
	"google.golang.org/protobuf/types/known/anypb"
)

// connection is one ADS stream. Its stream goroutine owns it: requests and pushes are handled one at a
// time there. mu guards types for the debug handlers, which read from other goroutines.
type connection struct {
	id          string
	proxy       *Proxy
	s           *Server
	delta       bool
	connectedAt time.Time
	pushCh      chan *pushEvent
	closed      chan struct{}

	sendSotW  func(*discovery.DiscoveryResponse) error
	sendDelta func(*discovery.DeltaDiscoveryResponse) error

	mu    sync.Mutex
	types map[string]*typeState
}

// typeState is what the server knows of one type on one connection.
type typeState struct {
	SentVersion  string
	SentNonce    string
	AckedVersion string
	AckedNonce   string
	NackError    string
	NackVersion  string
	LastPush     time.Time
	LastAck      time.Time
	LastNack     time.Time

	// sent is what the proxy has if it accepts the last response; acked what it had at the last ACK (it
	// keeps that after a NACK). Both map resource name to resource.
	sent, acked map[string]*discovery.Resource
	// changeStart is when the oldest change sent but not yet acknowledged was received.
	changeStart time.Time
}

// state returns the state of typeURL, creating it. Callers hold c.mu.
func (c *connection) state(typeURL string) *typeState {
	st := c.types[typeURL]
	if st == nil {
		st = &typeState{sent: map[string]*discovery.Resource{}, acked: map[string]*discovery.Resource{}}
		c.types[typeURL] = st
	}
	return st
}

// pushAll handles a push from the queue: regenerate the types req touches, send what changed.
func (c *connection) pushAll(req *PushRequest) error {
	if c.s.cache != nil {
		req = req.withToken(c.s.cache.Token())
	}
	for _, t := range c.proxy.WatchedTypes() {
		if !req.Full && !c.s.incremental[t] {
			continue
		}
		if err := c.pushType(t, req, false); err != nil {
			return err
		}
	}
	return nil
}

// pushType generates typeURL for the proxy and sends the difference from what it has. force sends a
// response even when nothing changed (a subscription must be answered). Only a failed send is returned:
// a generator error is logged and the proxy keeps what it has.
func (c *connection) pushType(typeURL string, req *PushRequest, force bool) error {
	start := time.Now()
	if req.CacheToken == 0 && c.s.cache != nil {
		req = req.withToken(c.s.cache.Token())
	}
	res, err := c.s.gen.Generate(c.proxy, typeURL, req)
	mt := metricType(typeURL)
	if err != nil {
		c.s.metrics.genErrors.WithLabelValues(mt).Inc()
		c.s.logf("xds: generating %s for %s: %v", xdstype.Short(typeURL), c.proxy.ID, err)
		return nil
	}

	c.mu.Lock()
	st := c.state(typeURL)
	// First find what changed without building anything: most pushes change nothing for most types.
	fresh := make([]*discovery.Resource, 0, len(res.Resources))
	var changed []*discovery.Resource
	for _, r := range res.Resources {
		if !c.proxy.Wants(typeURL, r.Name) {
			continue
		}
		if r.Version == "" { // copy: the generator may share r (from the cache) with other proxies
			r = &discovery.Resource{Name: r.Name, Resource: r.Resource, Version: contentHash(r.GetResource().GetValue())}
		}
		fresh = append(fresh, r)
		if old, ok := st.sent[r.Name]; !ok || old.Version != r.Version {
			changed = append(changed, r)
		}
	}
	var removed []string
	if res.Incremental {
		for _, n := range res.Removed {
			if _, ok := st.sent[n]; ok && c.proxy.Wants(typeURL, n) {
				removed = append(removed, n)
			}
		}
	} else if len(fresh)-len(changed) < len(st.sent) { // some of what the proxy has was not generated
		seen := make(map[string]bool, len(fresh))
		for _, r := range fresh {
			seen[r.Name] = true
		}
		for n := range st.sent {
			if !seen[n] {
				removed = append(removed, n)
			}
		}
	}
	if len(changed) == 0 && len(removed) == 0 && !force {
		c.mu.Unlock()
		return nil
	}
	var next map[string]*discovery.Resource
	if res.Incremental {
		next = maps.Clone(st.sent)
	} else {
		next = make(map[string]*discovery.Resource, len(fresh))
	}
	for _, r := range fresh {
		next[r.Name] = r
	}
	for _, n := range removed {
		delete(next, n)
	}
	c.mu.Unlock()
	slices.SortFunc(changed, func(a, b *discovery.Resource) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(removed)

	version := setVersion(next)
	nonce := c.s.nextNonce()
	size := 0
	if c.delta {
		resp := &discovery.DeltaDiscoveryResponse{TypeUrl: typeURL, SystemVersionInfo: version, Nonce: nonce, Resources: changed, RemovedResources: removed}
		for _, r := range changed {
			size += len(r.GetResource().GetValue())
		}
		err = c.sendDelta(resp)
	} else {
		// State of the world: the whole set, except that RDS and EDS may be sent partially on an
		// incremental push (the client keeps what is not mentioned).
		send := changed
		if !res.Incremental || !partialInSotW(typeURL) {
			send = slices.SortedFunc(maps.Values(next), func(a, b *discovery.Resource) int { return strings.Compare(a.Name, b.Name) })
		}
		anys := make([]*anypb.Any, len(send))
		for i, r := range send {
			anys[i] = r.Resource
			size += len(r.GetResource().GetValue())
		}
		err = c.sendSotW(&discovery.DiscoveryResponse{TypeUrl: typeURL, VersionInfo: version, Nonce: nonce, Resources: anys})
	}
	if err != nil {
		return fmt.Errorf("sending %s to %s: %w", xdstype.Short(typeURL), c.proxy.ID, err)
	}
	c.s.metrics.pushes.WithLabelValues(mt).Inc()
	c.s.metrics.configSize.WithLabelValues(mt).Observe(float64(size))
	c.s.metrics.pushTime.WithLabelValues(mt).Observe(time.Since(start).Seconds())

	c.mu.Lock()
	st.sent = next
	st.SentVersion, st.SentNonce, st.LastPush = version, nonce, time.Now()
	if st.changeStart.IsZero() || req.Start.Before(st.changeStart) {
		st.changeStart = req.Start
	}
	c.mu.Unlock()
	return nil
}

// ack records that the proxy accepted the response with nonce. It reports false for a stale nonce (an
// answer to an older response, superseded by one the proxy has not answered yet).
func (c *connection) ack(typeURL, nonce string) bool {
	c.mu.Lock()
	st := c.state(typeURL)
	if nonce != st.SentNonce {
		c.mu.Unlock()
		return false
	}
	st.AckedVersion, st.AckedNonce, st.LastAck = st.SentVersion, nonce, time.Now()
	st.NackError, st.NackVersion = "", ""
	st.acked = st.sent
	changeStart := st.changeStart
	st.changeStart = time.Time{}
	c.mu.Unlock()
	if !changeStart.IsZero() {
		c.s.metrics.convergence.Observe(time.Since(changeStart).Seconds())
		if c.s.onAck != nil {
			c.s.onAck(c.proxy.ID, typeURL, changeStart)
		}
	}
	return true
}

// nack records that the proxy rejected the response with nonce. The proxy keeps its last accepted
// config, so that is what the server assumes it has: the next change resends what differs from it, and
// nothing is resent until then.
func (c *connection) nack(typeURL, nonce, msg string) {
	c.mu.Lock()
	st := c.state(typeURL)
	stale := nonce != st.SentNonce
	if !stale {
		st.NackError, st.NackVersion, st.LastNack = msg, st.SentVersion, time.Now()
		st.sent = st.acked
		st.changeStart = time.Time{}
	}
	c.mu.Unlock()
	c.s.metrics.rejects.WithLabelValues(metricType(typeURL)).Inc()
	c.s.logf("xds: %s rejected %s (nonce %s, stale=%t): %s", c.proxy.ID, xdstype.Short(typeURL), nonce, stale, msg)
}

// forgetUnwanted drops resources the proxy no longer subscribes to: the client forgets them itself, and
// subscribing again must send them again.
func (c *connection) forgetUnwanted(typeURL string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state(typeURL)
	st.sent, st.acked = maps.Clone(st.sent), maps.Clone(st.acked)
	for n := range st.sent {
		if !c.proxy.Wants(typeURL, n) {
			delete(st.sent, n)
		}
	}
	for n := range st.acked {
		if !c.proxy.Wants(typeURL, n) {
			delete(st.acked, n)
		}
	}
}

// seed records resources a reconnecting delta client says it has, so unchanged ones are not resent.
func (c *connection) seed(typeURL string, versions map[string]string) {
	if len(versions) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state(typeURL)
	for n, v := range versions {
		r := &discovery.Resource{Name: n, Version: v}
		st.sent[n], st.acked[n] = r, r
	}
}

// setVersion is the version of a whole set of resources: equal sets get equal versions, on any proxy.
func setVersion(set map[string]*discovery.Resource) string {
	h := sha256.New()
	for _, n := range slices.Sorted(maps.Keys(set)) {
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write([]byte(set[n].Version))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
