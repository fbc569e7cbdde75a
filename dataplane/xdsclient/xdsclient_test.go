package xdsclient

import (
	"context"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	mongov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/mongo_proxy/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/dataplane/l7"
	"github.com/meshlab/meshlab/dataplane/l7/l7test"
	"github.com/meshlab/meshlab/dataplane/xdsclient/xdstest"
)

func config(port uint32, hosts ...string) l7test.Config {
	svc := l7test.Service{FQDN: "reviews.default.svc.cluster.local", VIP: "10.96.0.10", Port: port}
	return l7test.Waypoint([]l7test.Service{svc}, nil, map[string][]string{svc.Name(""): hosts}, nil)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSubscribeAckNackReconnect(t *testing.T) {
	srv := xdstest.Start(t, "")
	node := NewNode("waypoint", "default", "waypoint", []string{"10.244.0.9"}, "test")
	srv.Set(t, node.Id, "v1", config(9080, "10.244.0.5:9080"))

	var applied []Snapshot
	c, err := New(Options{Address: srv.Addr, Node: node, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Apply: func(s Snapshot) error {
			if err := l7.Validate(l7.Config{Listeners: s.Listeners, Routes: s.Routes, Clusters: s.Clusters, Endpoints: s.Endpoints}); err != nil {
				return err
			}
			applied = append(applied, s)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)

	// LDS and CDS first, then RDS and EDS for the names they reference.
	waitFor(t, "all four types at v1", func() bool {
		s := c.Snapshot()
		return len(s.Listeners) == 3 && len(s.Routes) == 1 && len(s.Clusters) == 1 && len(s.Endpoints) == 1 &&
			s.Versions[xdstype.Route] == "v1" && s.Versions[xdstype.Endpoint] == "v1"
	})
	st := c.Status()
	if got := strings.Join(st["rds"].Names, ","); got != "inbound-vip|9080|http|reviews.default.svc.cluster.local" {
		t.Errorf("RDS subscription = %q", got)
	}
	if st["eds"].Names[0] != "inbound-vip|9080|http|reviews.default.svc.cluster.local" {
		t.Errorf("EDS subscription = %v", st["eds"].Names)
	}
	reqs := srv.Requests()
	if reqs[0].GetNode().GetId() != "waypoint/default/waypoint" || reqs[0].GetNode().GetMetadata().GetFields()["INSTANCE_IPS"].GetStringValue() != "10.244.0.9" {
		t.Errorf("first request node = %v", reqs[0].GetNode())
	}

	// An unsupported filter is NACKed with the validation error; the previous config stays.
	bad := config(9080, "10.244.0.5:9080")
	bad.Listeners[2].FilterChains[0].Filters = []*listenerv3.Filter{l7test.NetworkFilter("envoy.filters.network.mongo_proxy", &mongov3.MongoProxy{StatPrefix: "m"})}
	srv.Set(t, node.Id, "v2", bad)
	tctx, tcancel := context.WithTimeout(ctx, 5*time.Second)
	defer tcancel()
	nack, err := srv.WaitFor(tctx, func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == xdstype.Listener && r.GetErrorDetail() != nil
	})
	if err != nil {
		t.Fatalf("no NACK: %v", err)
	}
	want := "listener main_internal: filter chain 0: unsupported filter envoy.filters.network.mongo_proxy"
	if nack.GetErrorDetail().GetMessage() != want || nack.GetVersionInfo() != "v1" {
		t.Errorf("NACK = version %q, %q; want version v1, %q", nack.GetVersionInfo(), nack.GetErrorDetail().GetMessage(), want)
	}
	if s := c.Snapshot(); s.Versions[xdstype.Listener] != "v1" || c.Status()["lds"].LastError != want {
		t.Errorf("after NACK: lds version %q, last error %q", s.Versions[xdstype.Listener], c.Status()["lds"].LastError)
	}

	// Reconnect: the server goes away and comes back on the same address with new endpoints.
	addr := srv.Addr
	srv.Stop()
	waitFor(t, "disconnect", func() bool { return !c.Connected() })
	srv2 := xdstest.Start(t, addr)
	srv2.Set(t, node.Id, "v3", config(9080, "10.244.0.5:9080", "10.244.0.6:9080"))
	waitFor(t, "v3 after reconnect", func() bool {
		s := c.Snapshot()
		return s.Versions[xdstype.Endpoint] == "v3" && len(s.Endpoints) == 1 && len(s.Endpoints[0].GetEndpoints()[0].GetLbEndpoints()) == 2
	})
}

// Initialized follows Envoy's init manager: not after the first response, only once CDS, LDS and the
// EDS and RDS names they referenced have all been answered.
func TestInitializedWaitsForWarming(t *testing.T) {
	srv := xdstest.Start(t, "")
	node := NewNode("waypoint", "default", "waypoint", nil, "test")
	srv.Hold(xdstype.Listener, xdstype.Route)
	srv.Set(t, node.Id, "v1", config(9080, "10.244.0.5:9080"))
	c, err := New(Options{Address: srv.Addr, Node: node, Apply: func(Snapshot) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)

	waitFor(t, "CDS and EDS at v1", func() bool {
		st := c.Status()
		return st["cds"].Version == "v1" && st["eds"].Version == "v1"
	})
	if !c.Applied() || c.Initialized() {
		t.Fatalf("with clusters and endpoints only: applied %v, initialized %v; want applied and not initialized", c.Applied(), c.Initialized())
	}
	srv.Release(xdstype.Listener)
	waitFor(t, "LDS at v1 and an RDS subscription", func() bool {
		st := c.Status()
		return st["lds"].Version == "v1" && len(st["rds"].Names) == 1
	})
	if c.Initialized() {
		t.Fatal("initialized while the listeners' route configuration is still warming")
	}
	srv.Release(xdstype.Route)
	waitFor(t, "initialized", c.Initialized)

	// Per-resource metadata: a push that changes only endpoints leaves the cluster at v1.
	s1 := c.Snapshot()
	cl := s1.Clusters[0].GetName()
	m1 := s1.Meta[xdstype.Cluster][cl]
	if m1.Version != "v1" || m1.LastUpdated.IsZero() {
		t.Fatalf("cluster meta = %+v", m1)
	}
	srv.Set(t, node.Id, "v2", config(9080, "10.244.0.5:9080", "10.244.0.6:9080"))
	waitFor(t, "EDS at v2", func() bool { return c.Status()["eds"].Version == "v2" && c.Status()["cds"].Version == "v2" })
	s2 := c.Snapshot()
	if got := s2.Meta[xdstype.Cluster][cl]; got != m1 {
		t.Errorf("unchanged cluster meta = %+v, want %+v", got, m1)
	}
	if got := s2.Meta[xdstype.Endpoint][s2.Endpoints[0].GetClusterName()]; got.Version != "v2" || !got.LastUpdated.After(m1.LastUpdated) {
		t.Errorf("changed endpoints meta = %+v", got)
	}
	if !c.Initialized() {
		t.Error("Initialized went back to false")
	}
}
