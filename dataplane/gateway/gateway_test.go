package gateway_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/dataplane/gateway"
	"github.com/meshlab/meshlab/dataplane/l7/l7test"
	"github.com/meshlab/meshlab/dataplane/l7xds"
	"github.com/meshlab/meshlab/dataplane/xdsclient/xdstest"
	"github.com/meshlab/meshlab/identity/ca"
)

const cluster = "outbound|9080||b.shop.svc.cluster.local"

// listener is a gateway listener on 0.0.0.0:PORT taking route configuration http.PORT.
func listener(port uint32) *listenerv3.Listener {
	name := gateway.ListenerName(uint16(port))
	return &listenerv3.Listener{
		Name:         name,
		Address:      &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{l7test.HCM("outbound_"+name, "http.80")}}},
	}
}

// config is listeners on ports, all routing everything to a plain-text backend at backend.
func config(backend string, ports ...uint32) l7test.Config {
	cfg := l7test.Config{
		Routes:   []*routev3.RouteConfiguration{l7test.RouteConfig("http.80", l7test.PrefixRoute("default", "/", cluster))},
		Clusters: []*clusterv3.Cluster{l7test.EDSCluster(cluster)},
	}
	host, port, _ := net.SplitHostPort(backend)
	p := netip.MustParseAddrPort(net.JoinHostPort(host, port)).Port()
	cfg.Endpoints = []*endpointv3.ClusterLoadAssignment{{ClusterName: cluster, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}}},
	}}}}}}
	for _, port := range ports {
		cfg.Listeners = append(cfg.Listeners, listener(port))
	}
	return cfg
}

// TestGatewayListenersFollowConfig: the gateway binds the listeners it is sent and serves them with the
// engine, refuses (NACKs) an update whose listener it cannot bind while the old one keeps serving, and
// closes a listener the config drops.
func TestGatewayListenersFollowConfig(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "backend "+r.URL.Path) })}
	go srv.Serve(backend)
	defer srv.Close()
	taken, err := net.Listen("tcp", "127.0.0.1:0") // where listener 0.0.0.0_81 is told to bind: in use
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := authority.WorkloadID("shop", "gw-istio")
	svid, err := authority.Issue(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	xs := xdstest.Start(t, "")
	const node = "gateway/shop/gw"
	xs.Set(t, node, "v1", config(backend.Addr().String(), 80))
	g, err := gateway.New(gateway.Options{
		RouterOptions: l7xds.RouterOptions{XDSAddress: xs.Addr, Namespace: "shop", Name: "gw", SVID: svid, Bundle: authority.Bundle(),
			AdminAddress: "off", HealthAddress: "off", Logf: t.Logf},
		ListenAddress: func(a netip.AddrPort) string {
			if a.Port() == 81 {
				return taken.Addr().String()
			}
			return "127.0.0.1:0"
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	waitFor(t, "listener 0.0.0.0_80 open", func() bool { return g.Ready() && g.Addr("0.0.0.0_80") != nil })
	addr := g.Addr("0.0.0.0_80").String()
	if code, body := get(addr, "/x"); code != 200 || body != "backend /x" {
		t.Fatalf("GET through 0.0.0.0_80 = %d %q", code, body)
	}

	xs.Set(t, node, "v2", config(backend.Addr().String(), 80, 81))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nack, err := xs.WaitFor(ctx, func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == xdstype.Listener && r.GetErrorDetail() != nil
	})
	if err != nil {
		t.Fatalf("no NACK for a listener that cannot bind: %v", err)
	}
	if msg := nack.GetErrorDetail().GetMessage(); !strings.Contains(msg, "0.0.0.0_81") || !strings.Contains(msg, "binding") {
		t.Errorf("NACK = %q, want it to name listener 0.0.0.0_81 and the bind", msg)
	}
	if code, _ := get(addr, "/still"); code != 200 || g.Addr("0.0.0.0_81") != nil {
		t.Errorf("after the NACK: GET = %d, 0.0.0.0_81 open = %v; want the old config serving, 81 closed", code, g.Addr("0.0.0.0_81"))
	}

	xs.Set(t, node, "v3", config(backend.Addr().String()))
	waitFor(t, "listener 0.0.0.0_80 closed", func() bool { return g.Addr("0.0.0.0_80") == nil })
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after its listener was removed", addr)
	}
}

func get(addr, path string) (int, string) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
