package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshlab/meshlab/controlplane/server/servertest"
	"github.com/meshlab/meshlab/dataplane/hbone"
	"github.com/meshlab/meshlab/dataplane/sidecar"
	"github.com/meshlab/meshlab/identity/ca"
)

// The mesh of these tests lives on loopback addresses: pods a and b are injected (label
// security.istio.io/tlsMode=istio), plain is outside the mesh. Capture is simulated: the test connects to a
// sidecar's 15001/15006 directly and the OriginalDst seam returns the destination the app meant. The
// netns test in cli/proxy runs the real thing, with rules and uid 1337.
const meshYAML = `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: shop}
spec:
  clusterIP: 10.96.7.7
  selector: {app: b}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: plain, namespace: shop}
spec:
  clusterIP: 10.96.7.8
  selector: {app: plain}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: v1
kind: Pod
metadata: {name: a-1, namespace: shop, labels: {app: a, security.istio.io/tlsMode: istio}}
spec: {serviceAccountName: a, nodeName: node, containers: [{name: app, image: app}]}
status: {phase: Running, podIP: 127.31.0.2, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b-1, namespace: shop, labels: {app: b, security.istio.io/tlsMode: istio}}
spec: {serviceAccountName: b, nodeName: node, containers: [{name: app, image: app}]}
status: {phase: Running, podIP: 127.31.0.3, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: plain-1, namespace: shop, labels: {app: plain}}
spec: {serviceAccountName: plain, nodeName: node, containers: [{name: app, image: app}]}
status: {phase: Running, podIP: 127.31.0.4, conditions: [{type: Ready, status: "True"}]}
`

// serveLoopbackApp answers with who called it, as the app saw it.
func serveLoopbackApp(t *testing.T, name, addr string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s from=%s request-id=%s path=%s xfcc=%s", name, r.RemoteAddr, r.Header.Get("X-Request-Id"), r.URL.Path, r.Header.Get("X-Forwarded-Client-Cert"))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

type pod struct {
	sc     *sidecar.Sidecar
	log    *syncBuf
	events *syncBuf                       // the sidecar's Logf
	dst    atomic.Pointer[netip.AddrPort] // what the simulated capture reports
}

func startSidecar(t *testing.T, cp *servertest.ControlPlane, name, sa, ip string) *pod {
	t.Helper()
	id, _ := cp.CA.WorkloadID("shop", sa)
	svid, err := cp.CA.Issue(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := &pod{log: &syncBuf{}, events: &syncBuf{}}
	sc, err := sidecar.New(sidecar.Options{
		XDSAddress: cp.PlainAddr, Namespace: "shop", Pod: name, IPs: []string{ip},
		SVID: svid, Bundle: cp.CA.Bundle(),
		OutboundAddress: ip + ":15001", InboundAddress: ip + ":15006", HBONEAddress: ip + ":15008",
		AdminAddress: "127.0.0.1:0", HealthAddress: "127.0.0.1:0", StatsAddress: "127.0.0.1:0",
		OriginalDst: func(net.Conn) (netip.AddrPort, error) {
			if d := p.dst.Load(); d != nil {
				return *d, nil
			}
			return netip.AddrPort{}, fmt.Errorf("no destination set")
		},
		AccessLog: p.log,
		Logf: func(format string, args ...any) {
			t.Logf(format, args...)
			fmt.Fprintf(p.events, format+"\n", args...)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Start(context.Background()); err != nil {
		t.Skipf("starting sidecar %s: %v", name, err)
	}
	t.Cleanup(func() { sc.Close() })
	p.sc = sc
	deadline := time.Now().Add(10 * time.Second)
	for !sc.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("sidecar %s not ready: %v", name, sc.XDS().Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

// call sends GET path through the sidecar's listener (outbound or inbound) as if captured on its way to dst.
func (p *pod) call(t *testing.T, listener, dst, path string) (int, string) {
	t.Helper()
	ap := netip.MustParseAddrPort(dst)
	p.dst.Store(&ap)
	addr := p.sc.Addr(listener).String()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
		DisableKeepAlives: true,
	}}
	resp, err := hc.Get("http://" + dst + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSidecarPaths(t *testing.T) {
	cp := servertest.Start(t, meshYAML, servertest.Options{PlainAddr: "127.0.0.1:0"})
	serveLoopbackApp(t, "b", "127.31.0.3:9080")
	serveLoopbackApp(t, "plain", "127.31.0.4:9080")
	a := startSidecar(t, cp, "a-1", "a", "127.31.0.2")
	b := startSidecar(t, cp, "b-1", "b", "127.31.0.3")

	t.Run("a calls b's VIP: outbound chain, HBONE to b's sidecar, delivered from 127.0.0.6", func(t *testing.T) {
		code, body := a.call(t, "outbound", "10.96.7.7:9080", "/hello")
		if code != 200 || !strings.HasPrefix(body, "b from=127.0.0.6:") || strings.Contains(body, "request-id= ") {
			t.Fatalf("got %d %q, want b's answer from 127.0.0.6 with a request id", code, body)
		}
		// b's sidecar tells the app who called, as Istio's inbound does (APPEND_FORWARD, Subject/URI/DNS).
		if !strings.Contains(body, "xfcc=By=spiffe://cluster.local/ns/shop/sa/b;Hash=") || !strings.HasSuffix(body, `;Subject="";URI=spiffe://cluster.local/ns/shop/sa/a`) {
			t.Errorf("got %q, want X-Forwarded-Client-Cert By=b's identity, Hash, Subject and URI=a's identity", body)
		}
		for _, want := range []string{"upstream_cluster=outbound|9080||b.shop.svc.cluster.local",
			"upstream_host=envoy://connect_originate/127.31.0.3:9080", "destination_identity=spiffe://cluster.local/ns/shop/sa/b"} {
			if !strings.Contains(a.log.String(), want) {
				t.Errorf("a's access log lacks %s:\n%s", want, a.log)
			}
		}
		for _, want := range []string{"upstream_cluster=inbound|9080||", "source_identity=spiffe://cluster.local/ns/shop/sa/a",
			"destination=127.31.0.3:9080", "source=127.31.0.2:"} {
			if !strings.Contains(b.log.String(), want) {
				t.Errorf("b's access log lacks %s:\n%s", want, b.log)
			}
		}
	})

	t.Run("a calls a pod outside the mesh in plaintext", func(t *testing.T) {
		code, body := a.call(t, "outbound", "10.96.7.8:9080", "/x")
		if code != 200 || !strings.HasPrefix(body, "plain from=127.0.0.1:") {
			t.Fatalf("got %d %q, want plain's answer", code, body)
		}
		if !strings.Contains(a.log.String(), "upstream_host=127.31.0.4:9080") {
			t.Errorf("a's access log lacks the plain endpoint:\n%s", a.log)
		}
	})

	t.Run("plaintext inbound (a kubelet probe) reaches b's app through 15006", func(t *testing.T) {
		before := len(b.log.String())
		code, body := b.call(t, "inbound", "127.31.0.3:9080", "/health")
		if code != 200 || !strings.HasPrefix(body, "b from=127.0.0.6:") || !strings.HasSuffix(body, "xfcc=") {
			t.Fatalf("got %d %q, want b's answer without X-Forwarded-Client-Cert (no client certificate)", code, body)
		}
		line := b.log.String()[before:]
		if !strings.Contains(line, "source_identity=-") || !strings.Contains(line, "upstream_cluster=inbound|9080||") {
			t.Errorf("inbound log line = %q, want no peer identity and the inbound cluster", line)
		}
	})

	t.Run("a direct connection to the capture port is refused, not looped", func(t *testing.T) {
		if code, body := a.call(t, "outbound", "127.31.0.2:15001", "/"); code != 0 {
			t.Errorf("got %d %q, want the connection closed", code, body)
		}
	})

	t.Run("HBONE: the target must be the pod's, and the peer in the mesh", func(t *testing.T) {
		id, _ := cp.CA.WorkloadID("shop", "a")
		svid, _ := cp.CA.Issue(id, time.Hour)
		ok := hbone.ClientTLSConfig(svid, cp.CA.Bundle(), tlsconfig.AuthorizeAny())
		other, _ := ca.New()
		oid, _ := other.WorkloadID("shop", "a")
		osvid, _ := other.Issue(oid, time.Hour)
		foreign := hbone.ClientTLSConfig(osvid, cp.CA.Bundle(), tlsconfig.AuthorizeAny())
		for _, tc := range []struct {
			name   string
			target string
			cfg    func() *x509svid.SVID
			tls    bool
			want   string
		}{
			{"another pod's address", "127.31.0.4:9080", nil, true, "403"},
			{"the proxy's own port", "127.31.0.3:15000", nil, true, "403"},
			// The HBONE client waits for the server's first record after the TLS 1.3 handshake, so the
			// server's certificate rejection arrives as the TLS alert every time.
			{"a peer from another CA", "127.31.0.3:9080", nil, false, "certificate"},
		} {
			cfg := ok
			if !tc.tls {
				cfg = foreign
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			c, err := hbone.Dial(ctx, "127.31.0.3:15008", tc.target, cfg)
			cancel()
			if err == nil {
				c.Close()
				t.Errorf("%s: HBONE CONNECT %s accepted", tc.name, tc.target)
				continue
			}
			if !containsAny(err.Error(), strings.Split(tc.want, "|")) {
				t.Errorf("%s: error %v, want %s", tc.name, err, tc.want)
			}
		}
	})

	t.Run("admin, health and stats", func(t *testing.T) {
		get := func(name, path string) (int, string) {
			resp, err := http.Get("http://" + a.sc.Addr(name).String() + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, _ := get("health", "/healthz/ready"); code != 200 {
			t.Errorf("/healthz/ready = %d", code)
		}
		if _, dump := get("admin", "/config_dump"); !strings.Contains(dump, `"virtualOutbound"`) || !strings.Contains(dump, `"virtualInbound"`) {
			t.Errorf("/config_dump lacks the sidecar listeners")
		}
		if _, clusters := get("admin", "/clusters"); !strings.Contains(clusters, "outbound|9080||b.shop.svc.cluster.local::envoy://connect_originate/127.31.0.3:9080") {
			t.Errorf("/clusters lacks b's endpoint:\n%s", clusters)
		}
		if _, stats := get("stats", "/stats/prometheus"); !strings.Contains(stats, "outbound|9080||b.shop.svc.cluster.local") {
			t.Errorf("/stats/prometheus lacks b's cluster")
		}
	})
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
