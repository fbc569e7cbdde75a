package xds

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/meshlab/meshlab/api/xdstype"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

// testGen is the in-test generator: a small config world of clusters (each with one endpoint address)
// and one listener, per namespace. Config keys: {Cluster ns name} for a cluster, {Endpoints ns name} for
// its endpoints. A proxy gets the clusters of its own namespace; Affects says so.
type testGen struct {
	mu        sync.RWMutex
	clusters  map[ConfigKey]string // cluster -> content (AltStatName, so a change changes the bytes)
	endpoints map[ConfigKey]string // cluster -> endpoint IP
	cache     *Cache
	calls     []genCall
	keys      map[ConfigKey]cacheInput
	buildMu   sync.Mutex
	builds    map[string]int // cache key -> times built (cache misses)
	// gate, when set, is called before each generation (it may block); reject, when set, makes
	// generation fail.
	gate func(p *Proxy, typeURL string, req *PushRequest)
	// noRecord skips recording calls (benchmarks: the record would keep every request alive).
	noRecord bool
}

type genCall struct {
	proxy   string
	typeURL string
	req     *PushRequest
}

func newTestGen() *testGen {
	return &testGen{clusters: map[ConfigKey]string{}, endpoints: map[ConfigKey]string{}, keys: map[ConfigKey]cacheInput{}, builds: map[string]int{}}
}

func (g *testGen) setCluster(ns, name, content, ip string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := ConfigKey{"Cluster", ns, name}
	g.clusters[k] = content
	g.endpoints[k] = ip
	g.keys[k] = cacheInput{key: "cds/" + k.String() + "/" + content, deps: []ConfigKey{k}}
}

// cacheInput is a cluster's cache key (its name and content version) and dependencies, computed when the
// cluster changes, as a model snapshot would.
type cacheInput struct {
	key  string
	deps []ConfigKey
}

func (g *testGen) deleteCluster(ns, name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.keys, ConfigKey{"Cluster", ns, name})
	delete(g.clusters, ConfigKey{"Cluster", ns, name})
	delete(g.endpoints, ConfigKey{"Cluster", ns, name})
}

func (g *testGen) setEndpoint(ns, name, ip string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.endpoints[ConfigKey{"Cluster", ns, name}] = ip
}

// callsFor returns the generations for one proxy and type, excluding initial subscriptions.
func (g *testGen) callsFor(proxy, typeURL string) []genCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []genCall
	for _, c := range g.calls {
		if c.proxy == proxy && c.typeURL == typeURL && c.req.Reason["proxy-request"] == 0 {
			out = append(out, c)
		}
	}
	return out
}

func (g *testGen) Affects(p *Proxy, req *PushRequest) bool {
	if req.everything() {
		return true
	}
	for k := range req.ConfigsUpdated {
		if k.Namespace == p.Namespace {
			return true
		}
	}
	return false
}

func (g *testGen) Generate(p *Proxy, typeURL string, req *PushRequest) (Result, error) {
	if g.gate != nil {
		g.gate(p, typeURL, req)
	}
	if !g.noRecord {
		g.mu.Lock()
		g.calls = append(g.calls, genCall{p.ID, typeURL, req})
		g.mu.Unlock()
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	clusters, endpoints := g.clusters, g.endpoints

	var names []ConfigKey
	for k := range clusters {
		if k.Namespace == p.Namespace {
			names = append(names, k)
		}
	}
	slices.SortFunc(names, func(a, b ConfigKey) int { return strings.Compare(a.Name, b.Name) })
	var res Result
	switch typeURL {
	case xdstype.Cluster:
		for _, k := range names {
			in := g.keys[k]
			r, err := g.cached(in.key, in.deps, req, k, clusters[k])
			if err != nil {
				return Result{}, err
			}
			res.Resources = append(res.Resources, r)
		}
	case xdstype.Endpoint:
		// An endpoint-only push sends just the clusters whose endpoints changed (partial EDS).
		res.Incremental = !req.Full
		for _, k := range names {
			ek := ConfigKey{"Endpoints", k.Namespace, k.Name}
			if res.Incremental && !req.IsUpdated(ek) {
				continue
			}
			cla := &endpoint.ClusterLoadAssignment{ClusterName: k.Name, Endpoints: []*endpoint.LocalityLbEndpoints{{
				LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
					Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
						Address: endpoints[k], PortSpecifier: &core.SocketAddress_PortValue{PortValue: 9080}}}}}}}},
			}}}
			r, err := Marshal(k.Name, cla)
			if err != nil {
				return Result{}, err
			}
			res.Resources = append(res.Resources, r)
		}
	case xdstype.Listener:
		r, err := Marshal("main_internal", &listener.Listener{Name: "main_internal", StatPrefix: fmt.Sprint(len(names))})
		if err != nil {
			return Result{}, err
		}
		res.Resources = append(res.Resources, r)
	}
	return res, nil
}

func (g *testGen) cached(key string, deps []ConfigKey, req *PushRequest, k ConfigKey, content string) (*discovery.Resource, error) {
	if g.cache != nil {
		if r, ok := g.cache.Get(key); ok {
			return r, nil
		}
	}
	r, err := Marshal(k.Name, &cluster.Cluster{Name: k.Name, AltStatName: content,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS}})
	if err != nil {
		return nil, err
	}
	g.buildMu.Lock()
	g.builds[key]++
	g.buildMu.Unlock()
	if g.cache != nil {
		g.cache.Add(key, deps, req.CacheToken, r)
	}
	return r, nil
}

// startServer serves s over real gRPC on a loopback port and returns the address.
func startServer(t testing.TB, s *Server) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s.Start(ctx)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen() = %v", err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(func() {
		cancel()
		g.Stop()
	})
	return lis.Addr().String()
}

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient(%s) = %v", addr, err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func node(id string) *core.Node {
	md, _ := structpb.NewStruct(map[string]any{MetaVersion: "test"})
	return &core.Node{Id: id, Cluster: "Kubernetes", Metadata: md}
}

// deltaClient is a raw delta ADS stream; responses are read on a goroutine into a channel so that tests
// can wait with a timeout and also assert that nothing arrives.
type deltaClient struct {
	t      testing.TB
	stream grpc.BidiStreamingClient[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]
	node   *core.Node
	resps  chan *discovery.DeltaDiscoveryResponse
}

func newDeltaClient(t testing.TB, cc *grpc.ClientConn, id string) *deltaClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("DeltaAggregatedResources() = %v", err)
	}
	d := &deltaClient{t: t, stream: stream, node: node(id), resps: make(chan *discovery.DeltaDiscoveryResponse, 100)}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				close(d.resps)
				return
			}
			d.resps <- r
		}
	}()
	return d
}

func (d *deltaClient) send(req *discovery.DeltaDiscoveryRequest) {
	d.t.Helper()
	if req.Node == nil {
		req.Node = d.node
	}
	if err := d.stream.Send(req); err != nil {
		d.t.Fatalf("Send() = %v", err)
	}
}

func (d *deltaClient) subscribe(typeURL string, names ...string) {
	d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: names})
}

func (d *deltaClient) ack(r *discovery.DeltaDiscoveryResponse) {
	d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce})
}

func (d *deltaClient) recv() *discovery.DeltaDiscoveryResponse {
	d.t.Helper()
	select {
	case r, ok := <-d.resps:
		if !ok {
			d.t.Fatalf("delta stream closed")
		}
		return r
	case <-time.After(5 * time.Second):
		d.t.Fatalf("no delta response within 5s")
	}
	return nil
}

// expectNone fails if a response arrives within wait.
func (d *deltaClient) expectNone(wait time.Duration) {
	d.t.Helper()
	select {
	case r := <-d.resps:
		d.t.Fatalf("unexpected response %s: %d resources, removed %v", xdstype.Short(r.GetTypeUrl()), len(r.GetResources()), r.GetRemovedResources())
	case <-time.After(wait):
	}
}

// sotwClient is a raw state-of-the-world stream for tests that need several types on one stream (the
// go-control-plane client handles one type).
type sotwClient struct {
	t      testing.TB
	stream grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse]
	node   *core.Node
	resps  chan *discovery.DiscoveryResponse
}

func newSotwClient(t testing.TB, cc *grpc.ClientConn, id string) *sotwClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("StreamAggregatedResources() = %v", err)
	}
	c := &sotwClient{t: t, stream: stream, node: node(id), resps: make(chan *discovery.DiscoveryResponse, 100)}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				close(c.resps)
				return
			}
			c.resps <- r
		}
	}()
	return c
}

func (c *sotwClient) send(req *discovery.DiscoveryRequest) {
	c.t.Helper()
	req.Node = c.node
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("Send() = %v", err)
	}
}

func (c *sotwClient) ack(r *discovery.DiscoveryResponse, names ...string) {
	c.send(&discovery.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce, ResourceNames: names})
}

func (c *sotwClient) recv() *discovery.DiscoveryResponse {
	c.t.Helper()
	select {
	case r, ok := <-c.resps:
		if !ok {
			c.t.Fatalf("sotw stream closed")
		}
		return r
	case <-time.After(5 * time.Second):
		c.t.Fatalf("no sotw response within 5s")
	}
	return nil
}

func (c *sotwClient) expectNone(wait time.Duration) {
	c.t.Helper()
	select {
	case r := <-c.resps:
		c.t.Fatalf("unexpected response %s with %d resources", xdstype.Short(r.GetTypeUrl()), len(r.GetResources()))
	case <-time.After(wait):
	}
}

// waitFor polls cond until it holds or 5s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// typeStatus returns the syncz entry of one proxy and type.
func typeStatus(s *Server, proxyID, typeURL string) (TypeStatus, bool) {
	for _, p := range s.SyncStatus().Proxies {
		if p.ID == proxyID {
			return p.Type(typeURL)
		}
	}
	return TypeStatus{}, false
}

func resourceNames(rs []*discovery.Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}
