package xds

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	sotw "github.com/envoyproxy/go-control-plane/pkg/client/sotw/v3"
	"github.com/meshlab/meshlab/api/xdstype"
	"google.golang.org/protobuf/proto"
)

// fetch runs the go-control-plane client's blocking Fetch with a timeout.
func fetch(t *testing.T, c sotw.ADSClient, wait time.Duration) (*sotw.Response, bool) {
	t.Helper()
	type result struct {
		r   *sotw.Response
		err error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := c.Fetch()
		ch <- result{r, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("Fetch() = %v", res.err)
		}
		return res.r, true
	case <-time.After(wait):
		return nil, false
	}
}

func clusterNames(t *testing.T, r *sotw.Response) []string {
	t.Helper()
	var names []string
	for _, a := range r.Resources {
		c := &cluster.Cluster{}
		if err := a.UnmarshalTo(c); err != nil {
			t.Fatalf("UnmarshalTo() = %v", err)
		}
		names = append(names, c.Name)
	}
	return names
}

func TestSotWSubscribeAndAck(t *testing.T) {
	gen := newTestGen()
	gen.setCluster("default", "reviews", "v1", "10.0.0.1")
	gen.setCluster("default", "ratings", "v1", "10.0.0.2")
	gen.setCluster("other", "elsewhere", "v1", "10.0.0.3")
	s := NewServer(gen, WithDebounce(0, 0))
	cc := dial(t, startServer(t, s))

	const id = "waypoint/default/waypoint"
	client := sotw.NewADSClient(context.Background(), node(id), xdstype.Cluster)
	if err := client.InitConnect(cc); err != nil {
		t.Fatalf("InitConnect() = %v", err)
	}
	resp, ok := fetch(t, client, 5*time.Second)
	if !ok {
		t.Fatal("no CDS response")
	}
	if got, want := clusterNames(t, resp), []string{"ratings", "reviews"}; !slices.Equal(got, want) {
		t.Errorf("clusters = %v, want %v (only the proxy's namespace)", got, want)
	}
	if err := client.Ack(); err != nil {
		t.Fatalf("Ack() = %v", err)
	}
	waitFor(t, "CDS acked in syncz", func() bool {
		st, ok := typeStatus(s, id, xdstype.Cluster)
		return ok && st.Synced() && st.AckedVersion == st.SentVersion && st.Resources == 2
	})

	// A change is pushed to the subscribed client, with the whole set (state of the world).
	gen.setCluster("default", "details", "v1", "10.0.0.4")
	s.ConfigUpdate(NewPushRequest(true, "config", ConfigKey{"Cluster", "default", "details"}))
	resp, ok = fetch(t, client, 5*time.Second)
	if !ok {
		t.Fatal("no CDS push after the change")
	}
	if got, want := clusterNames(t, resp), []string{"details", "ratings", "reviews"}; !slices.Equal(got, want) {
		t.Errorf("clusters after the change = %v, want %v", got, want)
	}
}

func TestDeltaSubscribeAckAddRemove(t *testing.T) {
	gen := newTestGen()
	gen.setCluster("default", "reviews", "v1", "10.0.0.1")
	gen.setCluster("default", "ratings", "v1", "10.0.0.2")
	s := NewServer(gen, WithDebounce(0, 0))
	d := newDeltaClient(t, dial(t, startServer(t, s)), "ztunnel/default/node1")

	d.subscribe(xdstype.Cluster)
	r := d.recv()
	if got, want := resourceNames(r.Resources), []string{"ratings", "reviews"}; !slices.Equal(got, want) {
		t.Fatalf("initial resources = %v, want %v", got, want)
	}
	d.ack(r)
	waitFor(t, "ack", func() bool { st, _ := typeStatus(s, "ztunnel/default/node1", xdstype.Cluster); return st.Synced() })

	// Add details, remove ratings, leave reviews alone: the response carries only the difference.
	gen.setCluster("default", "details", "v1", "10.0.0.3")
	gen.deleteCluster("default", "ratings")
	s.ConfigUpdate(NewPushRequest(true, "config", ConfigKey{"Cluster", "default", "details"}, ConfigKey{"Cluster", "default", "ratings"}))
	r = d.recv()
	if got, want := resourceNames(r.Resources), []string{"details"}; !slices.Equal(got, want) {
		t.Errorf("changed resources = %v, want %v", got, want)
	}
	if got, want := r.RemovedResources, []string{"ratings"}; !slices.Equal(got, want) {
		t.Errorf("removed = %v, want %v", got, want)
	}
	d.ack(r)
	waitFor(t, "second ack", func() bool {
		st, _ := typeStatus(s, "ztunnel/default/node1", xdstype.Cluster)
		return st.Synced() && st.AckedNonce == r.Nonce && st.Resources == 2
	})

	// A full push that changes nothing for this proxy sends nothing.
	s.ConfigUpdate(NewPushRequest(true, "config", ConfigKey{"Cluster", "default", "unrelated"}))
	d.expectNone(200 * time.Millisecond)

	// Unsubscribing and subscribing again to one name sends it again.
	d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: xdstype.Cluster, ResourceNamesUnsubscribe: []string{"*"}, ResourceNamesSubscribe: []string{"reviews"}})
	d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: xdstype.Cluster, ResourceNamesUnsubscribe: []string{"reviews"}})
	d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: xdstype.Cluster, ResourceNamesSubscribe: []string{"reviews"}})
	r = d.recv()
	if got, want := resourceNames(r.Resources), []string{"reviews"}; !slices.Equal(got, want) {
		t.Errorf("resubscribed resources = %v, want %v", got, want)
	}
}

func TestNackIsRecordedAndServingContinues(t *testing.T) {
	gen := newTestGen()
	gen.setCluster("default", "reviews", "v1", "10.0.0.1")
	s := NewServer(gen, WithDebounce(0, 0))
	cc := dial(t, startServer(t, s))
	const id = "sidecar/default/productpage-1"
	client := sotw.NewADSClient(context.Background(), node(id), xdstype.Cluster)
	if err := client.InitConnect(cc); err != nil {
		t.Fatalf("InitConnect() = %v", err)
	}
	if _, ok := fetch(t, client, 5*time.Second); !ok {
		t.Fatal("no CDS response")
	}
	if err := client.Ack(); err != nil {
		t.Fatalf("Ack() = %v", err)
	}
	waitFor(t, "ack", func() bool { st, _ := typeStatus(s, id, xdstype.Cluster); return st.Synced() })
	good, _ := typeStatus(s, id, xdstype.Cluster)

	gen.setCluster("default", "reviews", "v2-bad", "10.0.0.1")
	s.ConfigUpdate(NewPushRequest(true, "config", ConfigKey{"Cluster", "default", "reviews"}))
	if _, ok := fetch(t, client, 5*time.Second); !ok {
		t.Fatal("no push of the bad config")
	}
	const reason = "cluster reviews: invalid alt_stat_name v2-bad"
	if err := client.Nack(reason); err != nil {
		t.Fatalf("Nack() = %v", err)
	}
	waitFor(t, "NACK in syncz", func() bool { st, _ := typeStatus(s, id, xdstype.Cluster); return st.NackError == reason })
	st, _ := typeStatus(s, id, xdstype.Cluster)
	if st.AckedVersion != good.AckedVersion || st.Synced() {
		t.Errorf("after NACK: acked %q synced=%t, want acked %q (the last good version) and not synced", st.AckedVersion, st.Synced(), good.AckedVersion)
	}
	// The server does not resend the rejected config in a loop.
	if r, ok := fetch(t, client, 300*time.Millisecond); ok {
		t.Fatalf("server resent after NACK: %v", clusterNames(t, r))
	}
	// It keeps serving: the next change is pushed and its ACK clears the error.
	gen.setCluster("default", "reviews", "v3", "10.0.0.1")
	s.ConfigUpdate(NewPushRequest(true, "config", ConfigKey{"Cluster", "default", "reviews"}))
	// The client has one Fetch still running from the timeout above; it receives this push.
	waitFor(t, "push after NACK", func() bool { st, _ := typeStatus(s, id, xdstype.Cluster); return st.SentVersion != st.NackVersion })
	if err := client.Ack(); err != nil {
		t.Fatalf("Ack() = %v", err)
	}
	waitFor(t, "ACK clears the NACK", func() bool {
		st, _ := typeStatus(s, id, xdstype.Cluster)
		return st.Synced() && st.NackError == ""
	})
	if got := testutilCounter(t, s, "pilot_total_xds_rejects"); got != 1 {
		t.Errorf("pilot_total_xds_rejects = %v, want 1", got)
	}
}

func TestDebounceMergesBurst(t *testing.T) {
	gen := newTestGen()
	gen.setCluster("default", "reviews", "v0", "10.0.0.1")
	s := NewServer(gen, WithDebounce(200*time.Millisecond, 5*time.Second)) // wide enough for a loaded machine
	d := newDeltaClient(t, dial(t, startServer(t, s)), "waypoint/default/waypoint")
	d.subscribe(xdstype.Cluster)
	d.ack(d.recv())

	var want []ConfigKey
	for i := range 50 {
		name := fmt.Sprintf("svc-%02d", i)
		gen.setCluster("default", name, "v1", "10.0.1.1")
		want = append(want, ConfigKey{"Cluster", "default", name})
		s.ConfigUpdate(NewPushRequest(true, "config", want[i]))
	}
	r := d.recv()
	if len(r.Resources) != 50 {
		t.Errorf("push carried %d resources, want 50", len(r.Resources))
	}
	d.ack(r)
	d.expectNone(300 * time.Millisecond)
	calls := gen.callsFor("waypoint/default/waypoint", xdstype.Cluster)
	if len(calls) != 1 {
		t.Fatalf("generations after the burst = %d, want 1 (one merged push)", len(calls))
	}
	req := calls[0].req
	for _, k := range want {
		if !req.IsUpdated(k) {
			t.Errorf("merged request lacks %v", k)
		}
	}
	if req.Reason["config"] != 50 {
		t.Errorf("merged reasons = %v, want config:50", req.Reason)
	}
}

func TestQueueMergesPushesForBusyProxy(t *testing.T) {
	gen := newTestGen()
	gen.setCluster("default", "reviews", "v0", "10.0.0.1")
	blocked := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	gen.gate = func(p *Proxy, typeURL string, req *PushRequest) {
		if req.Reason["config"] > 0 {
			once.Do(func() {
				close(blocked)
				<-release
			})
		}
	}
	s := NewServer(gen, WithDebounce(0, 0))
	const id = "waypoint/default/waypoint"
	d := newDeltaClient(t, dial(t, startServer(t, s)), id)
	d.subscribe(xdstype.Cluster)
	d.ack(d.recv())

	update := func(i int) ConfigKey {
		k := ConfigKey{"Cluster", "default", fmt.Sprintf("svc-%d", i)}
		gen.setCluster("default", k.Name, "v1", "10.0.1.1")
		s.ConfigUpdate(NewPushRequest(true, "config", k))
		return k
	}
	update(0)
	<-blocked // the proxy is being pushed right now
	var later []ConfigKey
	for i := 1; i <= 4; i++ {
		later = append(later, update(i))
	}
	// Wait until all four are held as the proxy's one pending push.
	waitFor(t, "four updates merged behind the busy push", func() bool {
		s.queue.mu.Lock()
		defer s.queue.mu.Unlock()
		for c, r := range s.queue.processing {
			if c.proxy.ID == id && r != nil && len(r.ConfigsUpdated) == 4 {
				return true
			}
		}
		return false
	})
	close(release)
	// The busy generation reads the config after all five changes, so it already carries them; the
	// merged push regenerates, finds nothing new for this proxy and sends nothing.
	r := d.recv()
	if len(r.Resources) != 5 {
		t.Errorf("first push carried %v, want the five new clusters", resourceNames(r.Resources))
	}
	d.ack(r)
	d.expectNone(200 * time.Millisecond)

	calls := gen.callsFor(id, xdstype.Cluster)
	if len(calls) != 2 {
		t.Fatalf("generations = %d, want 2 (the busy one and one merged)", len(calls))
	}
	for _, k := range later {
		if !calls[1].req.IsUpdated(k) {
			t.Errorf("merged push lacks %v", k)
		}
	}
}

func TestOnlyAffectedProxiesArePushed(t *testing.T) {
	gen := newTestGen()
	gen.setCluster("ns1", "a", "v1", "10.0.0.1")
	gen.setCluster("ns2", "b", "v1", "10.0.0.2")
	s := NewServer(gen, WithDebounce(0, 0))
	cc := dial(t, startServer(t, s))
	p1 := newDeltaClient(t, cc, "waypoint/ns1/waypoint")
	p2 := newDeltaClient(t, cc, "waypoint/ns2/waypoint")
	for _, p := range []*deltaClient{p1, p2} {
		p.subscribe(xdstype.Cluster)
		p.ack(p.recv())
	}
	gen.setCluster("ns1", "a", "v2", "10.0.0.1")
	s.ConfigUpdate(NewPushRequest(true, "config", ConfigKey{"Cluster", "ns1", "a"}))
	r := p1.recv()
	if got := resourceNames(r.Resources); !slices.Equal(got, []string{"a"}) {
		t.Errorf("ns1 waypoint got %v, want [a]", got)
	}
	p2.expectNone(200 * time.Millisecond)
	if n := len(gen.callsFor("waypoint/ns2/waypoint", xdstype.Cluster)); n != 0 {
		t.Errorf("the unaffected proxy was generated for %d times, want 0", n)
	}
}

// TestEndpointOnlyUpdateSendsOnlyEDS checks the fast path: an endpoint change regenerates and sends only
// EDS, and only the changed ClusterLoadAssignment, over both protocols.
func TestEndpointOnlyUpdateSendsOnlyEDS(t *testing.T) {
	gen := newTestGen()
	gen.setCluster("default", "reviews", "v1", "10.0.0.1")
	gen.setCluster("default", "ratings", "v1", "10.0.0.2")
	s := NewServer(gen, WithDebounce(0, 0))
	cc := dial(t, startServer(t, s))
	change := func(ip string) {
		gen.setEndpoint("default", "reviews", ip)
		s.ConfigUpdate(NewPushRequest(false, "endpoint", ConfigKey{"Endpoints", "default", "reviews"}))
	}
	claAddr := func(t *testing.T, b []byte) string {
		cla := &endpoint.ClusterLoadAssignment{}
		if err := proto.Unmarshal(b, cla); err != nil {
			t.Fatalf("Unmarshal() = %v", err)
		}
		return cla.ClusterName + "=" + cla.Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress().Address
	}

	t.Run("sotw", func(t *testing.T) {
		c := newSotwClient(t, cc, "sidecar/default/sotw")
		for _, typ := range []string{xdstype.Cluster, xdstype.Listener} {
			c.send(&discovery.DiscoveryRequest{TypeUrl: typ})
			c.ack(c.recv())
		}
		c.send(&discovery.DiscoveryRequest{TypeUrl: xdstype.Endpoint, ResourceNames: []string{"ratings", "reviews"}})
		r := c.recv()
		if len(r.Resources) != 2 {
			t.Fatalf("initial EDS has %d resources, want 2", len(r.Resources))
		}
		c.ack(r, "ratings", "reviews")
		change("10.0.9.1")
		r = c.recv()
		if r.TypeUrl != xdstype.Endpoint || len(r.Resources) != 1 || claAddr(t, r.Resources[0].Value) != "reviews=10.0.9.1" {
			t.Fatalf("got %s with %d resources, want EDS with reviews=10.0.9.1 alone", xdstype.Short(r.TypeUrl), len(r.Resources))
		}
		c.ack(r, "ratings", "reviews")
		c.expectNone(200 * time.Millisecond) // no CDS or LDS
	})
	t.Run("delta", func(t *testing.T) {
		d := newDeltaClient(t, cc, "sidecar/default/delta")
		for _, typ := range []string{xdstype.Cluster, xdstype.Endpoint, xdstype.Listener} {
			d.subscribe(typ)
			d.ack(d.recv())
		}
		change("10.0.9.2")
		r := d.recv()
		if r.TypeUrl != xdstype.Endpoint || len(r.Resources) != 1 || claAddr(t, r.Resources[0].Resource.Value) != "reviews=10.0.9.2" {
			t.Fatalf("got %s %v, want EDS with reviews=10.0.9.2 alone", xdstype.Short(r.TypeUrl), resourceNames(r.Resources))
		}
		if len(r.RemovedResources) != 0 {
			t.Errorf("partial EDS removed %v, want nothing", r.RemovedResources)
		}
		d.ack(r)
		d.expectNone(200 * time.Millisecond)
	})
	if n := len(gen.callsFor("sidecar/default/delta", xdstype.Cluster)); n != 0 {
		t.Errorf("CDS generated %d times on endpoint updates, want 0", n)
	}
}

// TestCacheInvalidationThroughServer checks that a change rebuilds only the cache entries that depend on
// it, and that proxies share entries.
func TestCacheInvalidationThroughServer(t *testing.T) {
	gen := newTestGen()
	gen.cache = NewCache(WithAssertions(func(err error) { t.Error(err) }))
	gen.setCluster("default", "reviews", "v1", "10.0.0.1")
	gen.setCluster("default", "ratings", "v1", "10.0.0.2")
	s := NewServer(gen, WithDebounce(0, 0), WithCache(gen.cache))
	cc := dial(t, startServer(t, s))
	var clients []*deltaClient
	for i := range 3 {
		d := newDeltaClient(t, cc, fmt.Sprintf("sidecar/default/p%d", i))
		d.subscribe(xdstype.Cluster)
		d.ack(d.recv())
		clients = append(clients, d)
	}
	if got := gen.builds["cds/Cluster/default/reviews/v1"]; got != 1 {
		t.Errorf("reviews built %d times for three proxies, want 1 (shared)", got)
	}
	// Change ratings: only its entry is dropped; reviews stays cached.
	gen.setCluster("default", "ratings", "v2", "10.0.0.2")
	s.ConfigUpdate(NewPushRequest(true, "config", ConfigKey{"Cluster", "default", "ratings"}))
	for _, d := range clients {
		r := d.recv()
		if got := resourceNames(r.Resources); !slices.Equal(got, []string{"ratings"}) {
			t.Errorf("pushed %v, want [ratings]", got)
		}
		d.ack(r)
	}
	if got := gen.builds["cds/Cluster/default/reviews/v1"]; got != 1 {
		t.Errorf("reviews rebuilt: built %d times, want 1", got)
	}
	if got := gen.builds["cds/Cluster/default/ratings/v2"]; got != 1 {
		t.Errorf("ratings v2 built %d times, want 1", got)
	}
	if _, ok := gen.cache.Get("cds/Cluster/default/ratings/v1"); ok {
		t.Error("the stale ratings entry is still cached")
	}
}

// testutilCounter sums a counter family from the server's registry.
func testutilCounter(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatalf("Gather() = %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// TestGeneratorErrorKeepsLastConfig checks that a failing generator leaves the proxy on what it has.
func TestGeneratorErrorKeepsLastConfig(t *testing.T) {
	var fail atomic.Bool
	gen := newTestGen()
	gen.setCluster("default", "reviews", "v1", "10.0.0.1")
	g := GeneratorFuncs{GenerateFunc: func(p *Proxy, typeURL string, req *PushRequest) (Result, error) {
		if fail.Load() {
			return Result{}, errors.New("model is broken")
		}
		return gen.Generate(p, typeURL, req)
	}}
	s := NewServer(g, WithDebounce(0, 0))
	d := newDeltaClient(t, dial(t, startServer(t, s)), "waypoint/default/w")
	d.subscribe(xdstype.Cluster)
	d.ack(d.recv())
	fail.Store(true)
	s.ConfigUpdate(NewPushRequest(true, "config"))
	d.expectNone(200 * time.Millisecond)
	waitFor(t, "error counted", func() bool { return testutilCounter(t, s, "pilot_xds_generate_errors_total") == 1 })
	st, _ := typeStatus(s, "waypoint/default/w", xdstype.Cluster)
	if !st.Synced() || st.Resources != 1 {
		t.Errorf("status after a failed generation = %+v, want synced with 1 resource", st)
	}
}

// TestSotWSubscriptionChangeOnAck follows Envoy: an ACK that names more endpoints (for clusters it just
// received) is answered with them; an ACK with the same names is not answered.
func TestSotWSubscriptionChangeOnAck(t *testing.T) {
	gen := newTestGen()
	gen.setCluster("default", "reviews", "v1", "10.0.0.1")
	gen.setCluster("default", "ratings", "v1", "10.0.0.2")
	s := NewServer(gen, WithDebounce(0, 0))
	c := newSotwClient(t, dial(t, startServer(t, s)), "sidecar/default/p")
	c.send(&discovery.DiscoveryRequest{TypeUrl: xdstype.Endpoint, ResourceNames: []string{"reviews"}})
	r := c.recv()
	if len(r.Resources) != 1 {
		t.Fatalf("EDS for [reviews] has %d resources, want 1", len(r.Resources))
	}
	c.ack(r, "reviews")
	c.expectNone(100 * time.Millisecond)
	c.ack(r, "ratings", "reviews")
	r = c.recv()
	if len(r.Resources) != 2 {
		t.Fatalf("EDS after asking for [ratings reviews] has %d resources, want 2", len(r.Resources))
	}
	c.ack(r, "ratings", "reviews")
	waitFor(t, "ack", func() bool {
		st, _ := typeStatus(s, "sidecar/default/p", xdstype.Endpoint)
		return st.Synced() && st.Resources == 2
	})
}

// TestConcurrencyLimit: with a limit of one, a second proxy's push waits until the first one's is done.
func TestConcurrencyLimit(t *testing.T) {
	gen := newTestGen()
	gen.setCluster("default", "reviews", "v0", "10.0.0.1")
	var inFlight, peak atomic.Int32
	gen.gate = func(p *Proxy, typeURL string, req *PushRequest) {
		if req.Reason["config"] == 0 {
			return
		}
		n := inFlight.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
	}
	s := NewServer(gen, WithDebounce(0, 0), WithConcurrency(1))
	cc := dial(t, startServer(t, s))
	var clients []*deltaClient
	for i := range 4 {
		d := newDeltaClient(t, cc, fmt.Sprintf("sidecar/default/p%d", i))
		d.subscribe(xdstype.Cluster)
		d.ack(d.recv())
		clients = append(clients, d)
	}
	gen.setCluster("default", "reviews", "v1", "10.0.0.1")
	s.ConfigUpdate(NewPushRequest(true, "config", ConfigKey{"Cluster", "default", "reviews"}))
	for _, d := range clients {
		d.ack(d.recv())
	}
	if got := peak.Load(); got != 1 {
		t.Errorf("peak concurrent pushes = %d, want 1", got)
	}
}
