package l7

import (
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
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlab/meshlab/dataplane/l7/l7test"
)

// policyFixture serves one service whose cluster is changed by edit, with backends named b0, b1...
// answering with their name; hook, if set, answers first.
func policyFixture(t *testing.T, backends int, edit func(c *clusterv3.Cluster, r *routev3.Route), hook func(name string, w http.ResponseWriter, r *http.Request) bool) (*engineFixture, []string) {
	t.Helper()
	var addrs []string
	for i := 0; i < backends; i++ {
		name := fmt.Sprintf("b%d", i)
		addrs = append(addrs, echoServer(t, name, func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("X-Backend", name)
			return hook != nil && hook(name, w, r)
		}))
	}
	svc := l7test.Service{FQDN: "reviews.default.svc.cluster.local", VIP: "10.96.0.10", Port: 9080}
	name := svc.Name("")
	route := l7test.PrefixRoute("default", "/", name)
	svc.Routes = []*routev3.Route{route}
	cfg := Config(l7test.Waypoint([]l7test.Service{svc}, nil, map[string][]string{name: addrs}, nil))
	edit(cfg.Clusters[0], route)
	return newEngineFixture(t, cfg, netip.MustParseAddrPort("10.96.0.10:9080")), addrs
}

func getFrom(t *testing.T, addr, path string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = "reviews:9080"
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestConsistentHashBalancers: RING_HASH and MAGLEV send one hash key to one host, spread keys over the
// hosts, and move a key off a host only when that host is unhealthy.
func TestConsistentHashBalancers(t *testing.T) {
	for _, lb := range []clusterv3.Cluster_LbPolicy{clusterv3.Cluster_RING_HASH, clusterv3.Cluster_MAGLEV} {
		t.Run(lb.String(), func(t *testing.T) {
			f, _ := policyFixture(t, 4, func(c *clusterv3.Cluster, r *routev3.Route) {
				c.LbPolicy = lb
				r.GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
					QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: "user"},
				}}}
			}, nil)
			hosts := map[string]bool{}
			for k := 0; k < 16; k++ {
				first := ""
				for i := 0; i < 4; i++ {
					resp, _ := getFrom(t, f.addr, fmt.Sprintf("/x?user=u%d", k), nil)
					got := resp.Header.Get("X-Backend")
					if first == "" {
						first = got
					} else if got != first {
						t.Fatalf("user u%d reached %s then %s", k, first, got)
					}
				}
				hosts[first] = true
			}
			if len(hosts) < 3 {
				t.Errorf("16 keys reached only %v of 4 hosts", hosts)
			}
		})
	}
}

// TestRetryOverflow: max_retries 0 lets no retry through: the 503 the route would retry stands, and
// the overflow is counted.
func TestRetryOverflow(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	f, _ := policyFixture(t, 1, func(c *clusterv3.Cluster, r *routev3.Route) {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxRetries: wrapperspb.UInt32(0)}}}
	}, func(_ string, w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		calls++
		mu.Unlock()
		w.WriteHeader(503)
		return true
	})
	resp, _ := getFrom(t, f.addr, "/flaky", nil)
	if resp.StatusCode != 503 || calls != 1 {
		t.Errorf("status %d after %d attempts, want the first 503 (no retry past max_retries 0)", resp.StatusCode, calls)
	}
}

// TestOutlierGatewayErrors: consecutive_gateway_failure 1 ejects a host on its first 502/503/504 (a 500
// does not count), for base_ejection_time.
func TestOutlierGatewayErrors(t *testing.T) {
	f, _ := policyFixture(t, 2, func(c *clusterv3.Cluster, r *routev3.Route) {
		r.GetRoute().RetryPolicy = nil
		c.OutlierDetection = &clusterv3.OutlierDetection{
			Consecutive_5Xx: wrapperspb.UInt32(0), ConsecutiveGatewayFailure: wrapperspb.UInt32(1),
			EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100), BaseEjectionTime: durationpb.New(time.Hour),
			MaxEjectionPercent: wrapperspb.UInt32(100),
		}
	}, func(name string, w http.ResponseWriter, r *http.Request) bool {
		if name == "b0" && strings.HasPrefix(r.URL.Path, "/fail") {
			code := 500
			if r.URL.Path == "/fail/gateway" {
				code = 502
			}
			w.WriteHeader(code)
			return true
		}
		return false
	})
	count := func(path string) map[string]int {
		got := map[string]int{}
		for i := 0; i < 8; i++ {
			resp, _ := getFrom(t, f.addr, path, nil)
			got[resp.Header.Get("X-Backend")]++
		}
		return got
	}
	if got := count("/fail/plain"); got["b0"] == 0 {
		t.Fatalf("500s ejected b0 (round robin gave it none of 8: %v); only gateway errors should", got)
	}
	count("/fail/gateway")
	if got := count("/after"); got["b0"] != 0 || got["b1"] != 8 {
		t.Errorf("after a 502 from b0: %v, want every request on b1", got)
	}
}

// TestIdleTimeoutAndRequestsPerConnection: the cluster's HTTP protocol options close an upstream
// connection after max_requests_per_connection requests, and when it has idled for idle_timeout.
func TestIdleTimeoutAndRequestsPerConnection(t *testing.T) {
	var mu sync.Mutex
	var conns []string
	f, _ := policyFixture(t, 1, func(c *clusterv3.Cluster, r *routev3.Route) {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": l7test.MustAny(&httpv3.HttpProtocolOptions{
				CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(200 * time.Millisecond), MaxRequestsPerConnection: wrapperspb.UInt32(3)},
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{},
				}},
			}),
		}
	}, func(_ string, w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		if len(conns) == 0 || conns[len(conns)-1] != r.RemoteAddr {
			conns = append(conns, r.RemoteAddr)
		}
		mu.Unlock()
		return false
	})
	for i := 0; i < 6; i++ {
		getFrom(t, f.addr, "/", nil)
	}
	mu.Lock()
	if len(conns) != 2 {
		t.Errorf("6 requests with max_requests_per_connection 3 used %d connections, want 2", len(conns))
	}
	mu.Unlock()
	getFrom(t, f.addr, "/", nil) // a third connection, then idle past the timeout
	time.Sleep(500 * time.Millisecond)
	getFrom(t, f.addr, "/", nil)
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 4 {
		t.Errorf("a request after the idle timeout reused a connection: %d connections, want 4", len(conns))
	}
}

// TestTCPMaxConnections: a TCP cluster's max_connections refuses connections past it (tcp_proxy has no
// pending queue), and admits again once one closes.
func TestTCPMaxConnections(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	svc := l7test.Service{FQDN: "db.default.svc.cluster.local", VIP: "10.96.0.20", Port: 5432, TCP: true}
	name := svc.Name("")
	cfg := Config(l7test.Waypoint([]l7test.Service{svc}, nil, map[string][]string{name: {l.Addr().String()}}, nil))
	cfg.Clusters[0].CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxConnections: wrapperspb.UInt32(1)}}}
	f := newEngineFixture(t, cfg, netip.MustParseAddrPort("10.96.0.20:5432"))

	echo := func(c net.Conn, msg string) error {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c, msg); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		_, err := io.ReadFull(c, buf)
		return err
	}
	first, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := echo(first, "one"); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	second, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := echo(second, "two"); err == nil {
		t.Errorf("a second connection past max_connections 1 was proxied")
	}
	second.Close()
	first.Close()
	time.Sleep(100 * time.Millisecond)
	third, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if err := echo(third, "three"); err != nil {
		t.Errorf("after the first closed, a new connection failed: %v", err)
	}
}
