package l7_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/dataplane/l7"
)

// sotw packs resources into the State-of-the-World response a proxy receives for their type.
func sotw(t testing.TB, msgs ...proto.Message) []byte {
	resp := &discovery.DiscoveryResponse{VersionInfo: "1", Nonce: "1"}
	for _, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		resp.TypeUrl = a.TypeUrl
		resp.Resources = append(resp.Resources, a)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func messages[T proto.Message](list []T) []proto.Message {
	out := make([]proto.Message, len(list))
	for i, m := range list {
		out[i] = m
	}
	return out
}

// unpack decodes a response's resources as T; ok is false for bytes an xDS client would NACK before the
// engine sees them.
func unpack[T proto.Message](b []byte, newT func() T) ([]T, bool) {
	resp := &discovery.DiscoveryResponse{}
	if err := proto.Unmarshal(b, resp); err != nil {
		return nil, false
	}
	var out []T
	for _, a := range resp.GetResources() {
		m := newT()
		if err := a.UnmarshalTo(m); err != nil {
			return nil, false
		}
		out = append(out, m)
	}
	return out, true
}

// FuzzBuild feeds the L7 engine the four xDS responses (LDS, RDS, CDS, EDS) a waypoint or sidecar receives,
// as bytes, seeded with what meshlab's generator emits for the bookinfo fixtures. Build must accept or
// reject with an error, never panic; an accepted config must survive a proto round trip, and the compiled
// table must answer every question the engine asks while serving (filter chain, route, RBAC, fault,
// weighted choice) without panicking.
func FuzzBuild(f *testing.F) {
	waypoint := model.Proxy{Kind: model.KindWaypoint, Namespace: "default", Name: "reviews-waypoint"}
	sidecar := model.Proxy{Kind: model.KindSidecar, Namespace: "default", Name: "productpage-v1-6b746f74dc-9stvs"}
	for _, tc := range []struct {
		fixtures []string
		proxy    model.Proxy
	}{
		{[]string{modeltest.Bookinfo, modeltest.ReviewsVS}, waypoint},
		{[]string{modeltest.Bookinfo, modeltest.ReviewsHTTPRouteFilters}, waypoint},
		{[]string{modeltest.Bookinfo, modeltest.ReviewsDRPolicy}, waypoint},
		{[]string{modeltest.Bookinfo, modeltest.ReviewsJWT}, waypoint},
		{[]string{modeltest.Bookinfo, modeltest.ReviewsVSFilters}, sidecar},
		{[]string{modeltest.Bookinfo, modeltest.ReviewsVSCORS}, sidecar},
		{[]string{modeltest.Bookinfo, modeltest.ReviewsVSMirror}, sidecar},
	} {
		cfg, err := configgen.Envoy(modeltest.Load(f, tc.fixtures...), tc.proxy)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sotw(f, messages(cfg.Listeners)...), sotw(f, messages(cfg.Routes)...), sotw(f, messages(cfg.Clusters)...), sotw(f, messages(cfg.Endpoints)...))
	}

	f.Fuzz(func(t *testing.T, lds, rds, cds, eds []byte) {
		var cfg l7.Config
		var ok [4]bool
		cfg.Listeners, ok[0] = unpack(lds, newListener)
		cfg.Routes, ok[1] = unpack(rds, newRouteConfiguration)
		cfg.Clusters, ok[2] = unpack(cds, newCluster)
		cfg.Endpoints, ok[3] = unpack(eds, newClusterLoadAssignment)
		if ok != [4]bool{true, true, true, true} {
			return
		}
		table, err := l7.Build(cfg)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("Build failed with an empty error")
			}
			return
		}
		if _, err := l7.Build(roundTrip(t, cfg)); err != nil {
			t.Fatalf("Build accepted a config and refused it after a proto round trip: %v", err)
		}
		exercise(table)
	})
}

// exercise asks table what serving asks: for each listener and a few destinations, the filter chain and,
// for requests of a few shapes, the full HTTP decision and the weighted choices.
func exercise(table *l7.Table) {
	dsts := []netip.AddrPort{
		netip.MustParseAddrPort("10.96.0.2:9080"), netip.MustParseAddrPort("10.0.0.2:9080"),
		netip.MustParseAddrPort("[fd00::2]:80"), netip.MustParseAddrPort("0.0.0.0:0"),
	}
	reqs := []*http.Request{
		httptest.NewRequest(http.MethodGet, "http://reviews:9080/reviews/0", nil),
		httptest.NewRequest(http.MethodPost, "http://x/admin?a=b", nil),
	}
	reqs[1].Header.Set("end-user", "jason")
	reqs[1].Header.Set("Origin", "http://example.com")
	for name := range table.Listeners {
		for _, dst := range dsts {
			d := l7.Downstream{Listener: name, Peer: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
				Source: netip.MustParseAddrPort("10.0.0.1:40000"), Destination: dst}
			if chain := table.Chain(name, dst); chain != nil && chain.TCP != nil {
				table.TCPChoices(chain.TCP)
			}
			for _, r := range reqs {
				if dec := table.Explain(r, d); dec.Route != nil {
					table.Choices(dec.Route)
				}
			}
		}
	}
}

// roundTrip marshals and unmarshals every resource, as a config dump and a reconnect would.
func roundTrip(t *testing.T, cfg l7.Config) l7.Config {
	t.Helper()
	return l7.Config{
		Listeners: cloneAll(t, cfg.Listeners, newListener),
		Routes:    cloneAll(t, cfg.Routes, newRouteConfiguration),
		Clusters:  cloneAll(t, cfg.Clusters, newCluster),
		Endpoints: cloneAll(t, cfg.Endpoints, newClusterLoadAssignment),
	}
}

func cloneAll[T proto.Message](t *testing.T, list []T, newT func() T) []T {
	out := make([]T, len(list))
	for i, m := range list {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatalf("marshalling an accepted resource: %v", err)
		}
		out[i] = newT()
		if err := proto.Unmarshal(b, out[i]); err != nil {
			t.Fatalf("unmarshalling an accepted resource: %v", err)
		}
	}
	return out
}

func newListener() *listenerv3.Listener                  { return &listenerv3.Listener{} }
func newRouteConfiguration() *routev3.RouteConfiguration { return &routev3.RouteConfiguration{} }
func newCluster() *clusterv3.Cluster                     { return &clusterv3.Cluster{} }
func newClusterLoadAssignment() *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{}
}
