package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/meshlab/meshlab/dataplane/gateway"
	"github.com/meshlab/meshlab/dataplane/hbone/hbonetest"
	"github.com/meshlab/meshlab/dataplane/l7/l7test"
	"github.com/meshlab/meshlab/dataplane/l7xds"
	"github.com/meshlab/meshlab/dataplane/xdsclient/xdstest"
	"github.com/meshlab/meshlab/identity/ca"
)

// syncLog collects Logf lines from several goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, format+"\n", args...)
}

func (l *syncLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestGatewayVerifiesEndpointIdentity: the ingress gateway reaches a mesh pod over HBONE and requires the
// identity its endpoint names (tunnel.identity). The pod's HBONE server holds a valid mesh certificate of
// shop/sa/a: an endpoint naming shop/sa/b is refused (503, a log line with both identities), one naming
// shop/sa/a is served.
func TestGatewayVerifiesEndpointIdentity(t *testing.T) {
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pod a") })}
	appL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Serve(appL)
	defer app.Close()
	tunnel := hbonetest.Forwarder(t, authority, "shop", "a")

	config := func(identity string) l7test.Config {
		cfg := l7test.Config{
			Listeners: []*listenerv3.Listener{listener(80)},
			Routes:    []*routev3.RouteConfiguration{l7test.RouteConfig("http.80", l7test.PrefixRoute("default", "/", cluster))},
			Clusters:  []*clusterv3.Cluster{l7test.EDSCluster(cluster)},
			Endpoints: []*endpointv3.ClusterLoadAssignment{l7test.Endpoints(cluster, []string{appL.Addr().String()}, []string{tunnel})},
		}
		return l7test.WithIdentities(cfg, map[string]string{appL.Addr().String(): identity})
	}
	id, _ := authority.WorkloadID("shop", "gw-istio")
	svid, err := authority.Issue(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	events := &syncLog{}
	xs := xdstest.Start(t, "")
	const node = "gateway/shop/gw"
	xs.Set(t, node, "impostor", config("spiffe://cluster.local/ns/shop/sa/b"))
	g, err := gateway.New(gateway.Options{
		RouterOptions: l7xds.RouterOptions{XDSAddress: xs.Addr, Namespace: "shop", Name: "gw", SVID: svid, Bundle: authority.Bundle(),
			AdminAddress: "off", HealthAddress: "off", Logf: events.logf},
		ListenAddress: func(netip.AddrPort) string { return "127.0.0.1:0" },
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

	if code, body := get(addr, "/"); code != http.StatusServiceUnavailable || !strings.Contains(body, "connection failure") {
		t.Errorf("GET to an impostor = %d %q, want 503 connection failure", code, body)
	}
	want := "identity verification error: peer did not present the expected SAN (spiffe://cluster.local/ns/shop/sa/b), got spiffe://cluster.local/ns/shop/sa/a"
	if !strings.Contains(events.String(), want) {
		t.Errorf("gateway log lacks %q:\n%s", want, events.String())
	}

	xs.Set(t, node, "right", config("spiffe://cluster.local/ns/shop/sa/a"))
	waitFor(t, "the right identity", func() bool {
		hosts := g.Engine().Table().Clusters[cluster].Hosts
		return len(hosts) == 1 && hosts[0].Identity == "spiffe://cluster.local/ns/shop/sa/a"
	})
	if code, body := get(addr, "/"); code != http.StatusOK || body != "pod a" {
		t.Errorf("GET with the right identity = %d %q", code, body)
	}
}
