package integration

import (
	"bufio"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/internal/stats"
)

// tcpEchoBackends starts one real TCP server per tcp-echo pod (v1, v2, v3): each connection is greeted with
// the pod's version on a line, then echoed. It returns pod IP -> server address.
func tcpEchoBackends(t *testing.T, snap *model.Snapshot) map[string]string {
	t.Helper()
	backends := map[string]string{}
	for _, wl := range snap.Workloads() {
		if wl.Labels["app"] != "tcp-echo" {
			continue
		}
		version := wl.Labels["version"]
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
				go func() {
					defer c.Close()
					io.WriteString(c, version+"\n")
					io.Copy(c, c)
				}()
			}
		}()
		backends[wl.IPs[0]] = l.Addr().String()
	}
	if len(backends) != 3 {
		t.Fatalf("tcp-echo pods: %v, want v1, v2 and v3", backends)
	}
	return backends
}

// tcpExchange opens a connection to addr, reads the backend's greeting and checks that a line comes back
// echoed; version is "" when the proxy closed the connection without reaching a backend.
func tcpExchange(t *testing.T, addr string) (version string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	greeting, err := r.ReadString('\n')
	if err != nil {
		if err == io.EOF && greeting == "" {
			return ""
		}
		t.Fatalf("reading the greeting: %q, %v", greeting, err)
	}
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatalf("writing through the proxy: %v", err)
	}
	if echo, err := r.ReadString('\n'); err != nil || echo != "ping\n" {
		t.Fatalf("echo through the proxy = %q, %v; want ping", echo, err)
	}
	return strings.TrimSpace(greeting)
}

// lockedRand is a seeded source the engine may call from several goroutines.
func lockedRand(seed uint64) func() uint64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Uint64()
	}
}

// TestGeneratedTCPRoute: real TCP connections to tcp-echo:9000 through the generated config, executed by
// the L7 engine, split as the TCPRoute weighs its backends (80/20, a chi-square goodness-of-fit test at
// alpha 0.001 over a sample sized for the smaller weight), and the weight-0 backend never gets one; bytes go
// both ways. The waypoint serving tcp-echo and productpage's sidecar both route it, and an ingress gateway's
// TCP listener routes its own TCPRoute (50/50). With every weight 0,
// each connection is closed before reaching any backend (Gateway API: rejected), as with Istio's
// zero-weight destination.
func TestGeneratedTCPRoute(t *testing.T) {
	snap := modeltest.Load(t, modeltest.Bookinfo, modeltest.EchoTCPRoute)
	if len(snap.Problems) != 0 {
		t.Fatalf("Problems = %v", snap.Problems)
	}
	echo := snap.Service("tcp-echo.default.svc.cluster.local")
	vip := netip.AddrPortFrom(netip.MustParseAddr(echo.VIPs[0]), 9000)
	backends := tcpEchoBackends(t, snap)
	weights := []float64{80, 20}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for _, p := range []struct {
		name     string
		proxy    model.Proxy
		listener string
	}{
		{"waypoint", model.Proxy{Kind: model.KindWaypoint, Namespace: "default", Name: "reviews-waypoint"}, configgen.ListenerMainInternal},
		{"sidecar", model.Proxy{Kind: model.KindSidecar, Namespace: "default", Name: "productpage-v1-6b746f74dc-9stvs"}, configgen.ListenerVirtualOutbound},
	} {
		t.Run(p.name, func(t *testing.T) {
			addr := serveProxy(t, snap, p.proxy, p.listener, vip, backends, lockedRand(seed))
			n := stats.SampleSize(weights, 50)
			counts := map[string]int{}
			for range n {
				counts[tcpExchange(t, addr)]++
			}
			t.Logf("%d connections: %v", n, counts)
			if counts["v3"] != 0 || counts[""] != 0 || counts["v1"]+counts["v2"] != n {
				t.Fatalf("connections reached %v; want only v1 and v2 (v3 has weight 0)", counts)
			}
			if err := stats.GoodnessOfFit([]int{counts["v1"], counts["v2"]}, weights, 0.001); err != nil {
				t.Error(err)
			}
		})
	}

	t.Run("ingress", func(t *testing.T) {
		snap := modeltest.Load(t, modeltest.Bookinfo, modeltest.EchoTCPRoute, modeltest.EchoTCPGateway)
		if len(snap.Problems) != 0 {
			t.Fatalf("Problems = %v", snap.Problems)
		}
		gw := model.Proxy{Kind: model.KindGateway, Namespace: "default", Name: "tcp-gateway"}
		addr := serveProxy(t, snap, gw, configgen.GatewayListenerName(9000), netip.MustParseAddrPort("10.96.200.1:9000"), backends, lockedRand(seed))
		weights := []float64{50, 50}
		n := stats.SampleSize(weights, 50)
		counts := map[string]int{}
		for range n {
			counts[tcpExchange(t, addr)]++
		}
		t.Logf("%d connections: %v", n, counts)
		if counts["v1"]+counts["v2"] != n {
			t.Fatalf("connections reached %v; want only v1 and v2", counts)
		}
		if err := stats.GoodnessOfFit([]int{counts["v1"], counts["v2"]}, weights, 0.001); err != nil {
			t.Error(err)
		}
	})

	t.Run("every weight 0", func(t *testing.T) {
		data, err := os.ReadFile(modeltest.Path(modeltest.EchoTCPRoute))
		if err != nil {
			t.Fatal(err)
		}
		zero := strings.NewReplacer("weight: 80", "weight: 0", "weight: 20", "weight: 0").Replace(string(data))
		file := filepath.Join(t.TempDir(), "zero.yaml")
		if err := os.WriteFile(file, []byte(zero), 0o644); err != nil {
			t.Fatal(err)
		}
		store, _, err := ingest.LoadFiles(modeltest.Path(modeltest.Bookinfo), file)
		if err != nil {
			t.Fatal(err)
		}
		snap := model.Build(store.Objects())
		if tr := snap.TCPRouteFor(snap.Service(echo.FQDN), 9000); tr == nil || len(tr.Backends) != 0 {
			t.Fatalf("TCPRoute with every weight 0: %+v, want one with no backends", tr)
		}
		addr := serveWaypoint(t, snap, vip, backends, lockedRand(seed))
		for range 5 {
			if v := tcpExchange(t, addr); v != "" {
				t.Fatalf("a connection reached %s; want every connection closed", v)
			}
		}
	})
}
