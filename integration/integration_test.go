package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/dataplane/hbone"
	"github.com/meshlab/meshlab/dataplane/netnstest"
	"github.com/meshlab/meshlab/identity/ca"
	"github.com/meshlab/meshlab/internal/stats"
)

// TestAmbient runs the ambient data plane as separate processes in network namespaces and checks, with
// real HTTP traffic, what the issue asks of it: only enrolled pods are captured; mesh traffic is mTLS
// with the right identities and 15008 refuses a client without a valid certificate; the waypoint splits
// 90/10 (a chi-square test at a fixed alpha); it retries a 503; and AuthorizationPolicy allows and
// denies at L4 (the destination ztunnel) and at L7 (the waypoint).
func TestAmbient(t *testing.T) {
	netnstest.Skip(t)
	start := time.Now()
	m := newMesh(t)
	t.Logf("mesh up in %v", time.Since(start).Round(time.Millisecond))
	zt0, zt1 := m.ztunnel[m.node0], m.ztunnel[m.node1]
	sleepID, echoID, wpID := spiffe(meshNS, "sleep"), spiffe(meshNS, "echo"), spiffe(meshNS, "waypoint")

	t.Run("only enrolled pods are captured", func(t *testing.T) {
		// sleep (ambient namespace) -> echo's pod IP: ztunnel carries it over HBONE and echo sees sleep's IP.
		from0, from1 := zt0.out.len(), zt1.out.len()
		st, body, err := request(m.sleep, "GET", "http://"+m.echo.Addr(appPort)+"/", nil)
		if err != nil || st != http.StatusOK || !strings.HasPrefix(body, "echo from="+m.sleep.IP.String()+":") {
			t.Fatalf("sleep -> echo = %d %q, %v; want 200 from sleep's own IP", st, body, err)
		}
		if !strings.HasSuffix(body, "request-id=") {
			t.Errorf("sleep -> echo carried a request id (%q): an L7 proxy was on an L4 path", body)
		}
		if _, ok := zt0.out.waitLine(from0, `direction="outbound"`, `protocol="HBONE"`, `src.identity="`+sleepID+`"`); !ok {
			t.Errorf("node0 ztunnel logged no outbound HBONE connection for sleep:\n%s", zt0.out)
		}
		if _, ok := zt1.out.waitLine(from1, `direction="inbound"`, `protocol="HBONE"`, `src.identity="`+sleepID+`"`, `dst.identity="`+echoID+`"`); !ok {
			t.Errorf("node1 ztunnel logged no inbound HBONE connection from sleep:\n%s", zt1.out)
		}

		// plain (namespace legacy, no label) -> echo: its ztunnel never sees it; echo's ztunnel takes it as
		// plaintext (15006) with no identity, and echo sees plain's IP.
		from0, from1 = zt0.out.len(), zt1.out.len()
		st, body, err = request(m.plain, "GET", "http://"+m.echo.Addr(appPort)+"/", nil)
		if err != nil || st != http.StatusOK || !strings.HasPrefix(body, "echo from="+m.plain.IP.String()+":") {
			t.Fatalf("plain -> echo = %d %q, %v; want 200 from plain's IP", st, body, err)
		}
		line, ok := zt1.out.waitLine(from1, `src.addr="`+m.plain.IP.String()+`:`, `direction="inbound"`)
		if !ok || !strings.Contains(line, `protocol="TCP"`) || strings.Contains(line, "src.identity") {
			t.Errorf("node1 ztunnel's line for plain = %q, want inbound plaintext TCP without a source identity", line)
		}
		if strings.Contains(zt0.out.String()[from0:], m.plain.IP.String()) {
			t.Errorf("node0 ztunnel carried plain's traffic:\n%s", zt0.out.String()[from0:])
		}
		// Nothing resolves a service VIP for plain (no kube-proxy here): only ztunnel, in enrolled pods, does.
		if _, _, err := request(m.plain, "GET", "http://"+echoVIP+"/", nil); err == nil {
			t.Errorf("plain reached a service VIP: something captured it")
		}

		// Capture state: ztunnel listens in enrolled pods only.
		for _, c := range []struct {
			pod    *netnstest.Pod
			listen bool
		}{{m.sleep, true}, {m.echo, true}, {m.plain, false}, {m.waypoint, true /* the waypoint's own 15008 */}} {
			conn, err := m.node0.DialContext(context.Background(), "tcp4", c.pod.Addr(mesh.HBONEPort))
			if conn != nil {
				conn.Close()
			}
			if (err == nil) != c.listen {
				t.Errorf("dial %s:15008 = %v, want listening %v", c.pod.PodName, err, c.listen)
			}
		}
		// Each ztunnel's dump marks the pods it captured: the ambient ones on its node, not plain (legacy
		// namespace) nor the waypoint (dataplane-mode none), which speaks HBONE itself.
		for node, want := range map[*netnstest.Node]map[string]bool{
			m.node0: {"mesh/sleep": true, "mesh/other": true, "legacy/plain": false, "mesh/echo": false},
			m.node1: {"mesh/echo": true, "mesh/guarded": true, "mesh/web-v1": true, "mesh/web-v2": true, "mesh/flaky": true, "mesh/waypoint": false},
		} {
			d, err := m.configDump(node)
			if err != nil {
				t.Fatal(err)
			}
			captured := map[string]bool{}
			for _, s := range d.WorkloadState {
				captured[s.Info.Namespace+"/"+s.Info.Name] = s.State == "Up"
			}
			for name, want := range want {
				if got := captured[name]; got != want {
					t.Errorf("%s dump: %s captured=%v, want %v", d.Meshlab.Node, name, got, want)
				}
			}
		}
	})

	t.Run("mTLS with SPIFFE identities; 15008 refuses clients without a valid certificate", func(t *testing.T) {
		// A keep-alive connection stays open, so both ztunnels list it in their connection tables.
		tr := &http.Transport{DialContext: m.sleep.DialContext}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Timeout: 5 * time.Second, Transport: tr}
		if st, body, err := do(hc, "GET", "http://"+m.echo.Addr(appPort)+"/", nil); err != nil || st != 200 {
			t.Fatalf("sleep -> echo = %d %q %v", st, body, err)
		}
		out, err := m.configDump(m.node0)
		if err != nil {
			t.Fatal(err)
		}
		in, err := m.configDump(m.node1)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range out.Meshlab.Connections {
			if c.Workload == meshNS+"/sleep" && c.Direction == "outbound" {
				found = true
				if c.Protocol != "HBONE" || c.Remote != m.echo.Addr(mesh.HBONEPort) || c.RemoteTarget != m.echo.Addr(appPort) ||
					c.SrcIdentity != sleepID || c.DstIdentity != echoID {
					t.Errorf("node0 connection = %+v; want HBONE to %s carrying %s, %s -> %s", c, m.echo.Addr(mesh.HBONEPort), m.echo.Addr(appPort), sleepID, echoID)
				}
			}
		}
		if !found {
			t.Errorf("node0 lists no outbound connection of sleep: %+v", out.Meshlab.Connections)
		}
		found = false
		for _, c := range in.Meshlab.Connections {
			if c.Workload == meshNS+"/echo" && c.Direction == "inbound" {
				found = true
				if c.Protocol != "HBONE" || c.Local != m.echo.Addr(mesh.HBONEPort) || c.SrcIdentity != sleepID || c.DstIdentity != echoID {
					t.Errorf("node1 connection = %+v; want HBONE on %s from %s", c, m.echo.Addr(mesh.HBONEPort), sleepID)
				}
			}
		}
		if !found {
			t.Errorf("node1 lists no inbound connection of echo: %+v", in.Meshlab.Connections)
		}

		// Straight to echo's 15008 from the plain pod, with three client certificates.
		id := spiffeid.RequireFromString(sleepID)
		valid, err := m.cp.CA.Issue(id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		foreign, err := ca.New(ca.WithTTL(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		forged, err := foreign.Issue(id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		serverOK := tlsconfig.AuthorizeID(spiffeid.RequireFromString(echoID))
		noCert := &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}, InsecureSkipVerify: true}
		for _, c := range []struct {
			name string
			cfg  *tls.Config
			ok   bool
		}{
			{"mesh certificate", hbone.ClientTLSConfig(valid, m.cp.CA.Bundle(), serverOK), true},
			{"no certificate", noCert, false},
			{"same identity from another CA", hbone.ClientTLSConfig(forged, m.cp.CA.Bundle(), serverOK), false},
		} {
			client := &hbone.Client{DialContext: m.plain.DialContext, HandshakeTimeout: 3 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			body, err := hboneGet(ctx, client, m.echo.Addr(mesh.HBONEPort), m.echo.Addr(appPort), c.cfg)
			cancel()
			client.Close()
			if c.ok && (err != nil || !strings.HasPrefix(body, "HTTP/1.1 200")) {
				t.Errorf("%s: HBONE GET = %q, %v; want 200", c.name, body, err)
			}
			if !c.ok && err == nil {
				t.Errorf("%s: HBONE GET succeeded (%q); want the TLS handshake refused", c.name, body)
			}
			t.Logf("%s: %v", c.name, err)
		}
		// The refusals are the server's TLS verdicts, not a network failure.
		for _, why := range []string{"tls: client didn't provide a certificate", "certificate signed by unknown authority"} {
			if _, ok := zt1.errOut.waitLine(0, "HBONE handshake from "+m.plain.IP.String()+":", "refused", why); !ok {
				t.Errorf("node1 ztunnel did not log a refused handshake from plain (%s):\n%s", why, zt1.errOut)
			}
		}
	})

	t.Run("waypoint splits 90/10", func(t *testing.T) {
		from0, from1, fromW := zt0.out.len(), zt1.out.len(), m.wp.out.len()
		weights := []float64{90, 10}
		n := stats.SampleSize(weights, 50)
		var (
			mu     sync.Mutex
			counts = map[string]int{}
			errs   []string
		)
		var wg sync.WaitGroup
		const workers = 4
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tr := &http.Transport{DialContext: m.sleep.DialContext}
				defer tr.CloseIdleConnections()
				hc := &http.Client{Timeout: 5 * time.Second, Transport: tr}
				for i := w; i < n; i += workers {
					st, body, err := do(hc, "GET", "http://"+webVIP+"/split", nil)
					mu.Lock()
					switch {
					case err != nil || st != 200:
						errs = append(errs, fmt.Sprintf("%d %q %v", st, body, err))
					case strings.Contains(body, "request-id=") && !strings.HasSuffix(body, "request-id="):
						name, _, _ := strings.Cut(body, " ")
						counts[name]++
					default:
						errs = append(errs, "no request id: "+body)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("%d of %d requests failed, first: %s", len(errs), n, errs[0])
		}
		observed := []int{counts["web-v1"], counts["web-v2"]}
		t.Logf("%d requests: web-v1 %d, web-v2 %d (others: %v)", n, observed[0], observed[1], counts)
		if observed[0]+observed[1] != n {
			t.Fatalf("answers from unexpected backends: %v", counts)
		}
		if err := stats.GoodnessOfFit(observed, weights, 0.001); err != nil {
			t.Error(err)
		}
		// Every hop is mTLS with its own identity: sleep -> waypoint (logged when the client's connections
		// closed), then waypoint -> web-v1 (the waypoint pools that stream: open in node1's table, or logged).
		if !m.carried(t, m.node1, from1, meshNS+"/web-v1", wpID, spiffe(meshNS, "web"), m.webV1.Addr(mesh.HBONEPort)) {
			t.Errorf("node1 ztunnel shows no inbound HBONE from the waypoint to web-v1")
		}
		for _, c := range []struct {
			buf   *syncBuf
			from  int
			parts []string
		}{
			{zt0.out, from0, []string{`src.identity="` + sleepID + `"`, `dst.addr="` + m.waypoint.Addr(mesh.HBONEPort) + `"`,
				`dst.hbone_addr="` + webVIP + `:80"`, `dst.identity="` + wpID + `"`, `protocol="HBONE"`}},
			{m.wp.out, fromW, []string{`"GET /split HTTP/1.1" 200`, "source_identity=" + sleepID, "upstream_host=envoy://connect_originate/" + m.webV1.Addr(appPort)}},
		} {
			if line, ok := c.buf.waitLine(c.from, c.parts...); !ok {
				t.Errorf("no log line with %q", c.parts)
			} else {
				t.Logf("%s", line)
			}
		}
	})

	t.Run("waypoint retries a 503", func(t *testing.T) {
		token := fmt.Sprintf("retry-%d", time.Now().UnixNano())
		from := m.wp.out.len()
		st, body, err := request(m.sleep, "GET", "http://"+flakyVIP+"/retry/"+token, http.Header{tokenHdr: {token}})
		if err != nil || st != http.StatusOK || body != "flaky attempt=2" {
			t.Fatalf("sleep -> flaky = %d %q, %v; want 200 from the second attempt", st, body, err)
		}
		if got := m.flakyHits.count(token); got != 2 {
			t.Errorf("flaky saw the request %d times, want 2", got)
		}
		if line, ok := m.wp.out.waitLine(from, "/retry/"+token); !ok || !strings.Contains(line, " 200 ") || !strings.Contains(line, "attempts=2") {
			t.Errorf("waypoint access log line = %q, want 200 with attempts=2", line)
		} else {
			t.Logf("%s", line)
		}
		st, metrics, err := request(m.waypoint, "GET", "http://"+adminAddr+"/stats/prometheus", nil)
		if err != nil || st != 200 {
			t.Fatalf("waypoint stats: %d %v", st, err)
		}
		if line := metricLine(metrics, "envoy_cluster_upstream_rq_retry", "flaky"); line == "" || strings.HasSuffix(line, " 0") {
			t.Errorf("waypoint retry stat for flaky = %q, want > 0", line)
		} else {
			t.Logf("%s", line)
		}
	})

	t.Run("authorization at L4 (ztunnel) and L7 (waypoint)", func(t *testing.T) {
		cases := []struct {
			name   string
			from   *netnstest.Pod
			method string
			url    string
			// status is the wanted HTTP status; 0 means the connection is refused at L4 before any answer.
			status int
			// log is what the enforcing proxy logs (zt1 for L4, the waypoint for L7).
			log []string
		}{
			{"L4 allow: sleep -> guarded", m.sleep, "GET", "http://" + guardedVIP + "/", 200, nil},
			{"L4 allow policy, other principal -> guarded refused", m.other, "GET", "http://" + guardedVIP + "/", 0,
				[]string{`src.identity="` + spiffe(meshNS, "other") + `"`, "policy rejection: no allow policy matched"}},
			{"L4 deny: other -> echo refused", m.other, "GET", "http://" + echoVIP + "/", 0,
				[]string{`src.identity="` + spiffe(meshNS, "other") + `"`, "policy rejection: denied by policy mesh/echo-deny-other"}},
			{"L4 deny does not match sleep", m.sleep, "GET", "http://" + echoVIP + "/", 200, nil},
			{"L7 allow: sleep GET web", m.sleep, "GET", "http://" + webVIP + "/", 200, nil},
			{"L7 allow policy, other principal -> 403", m.other, "GET", "http://" + webVIP + "/", 403, []string{`"GET / HTTP/1.1" 403`, "source_identity=" + spiffe(meshNS, "other")}},
			{"L7 allow policy, POST -> 403", m.sleep, "POST", "http://" + webVIP + "/", 403, []string{`"POST / HTTP/1.1" 403`}},
			{"L7 deny: sleep GET web /admin -> 403", m.sleep, "GET", "http://" + webVIP + "/admin/users", 403, []string{`"GET /admin/users HTTP/1.1" 403`}},
			{"L7 deny on the whole waypoint: flaky /admin -> 403", m.sleep, "GET", "http://" + flakyVIP + "/admin", 403, []string{`"GET /admin HTTP/1.1" 403`}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				l4, l7 := m.ztunnel[m.node1].out, m.wp.out
				from4, from7 := l4.len(), l7.len()
				st, body, err := request(c.from, c.method, c.url, http.Header{tokenHdr: {c.name}})
				switch {
				case c.status == 0 && err == nil:
					t.Fatalf("got %d %q, want the connection refused at L4", st, body)
				case c.status != 0 && (err != nil || st != c.status):
					t.Fatalf("got %d %q, %v; want %d", st, body, err, c.status)
				case c.status == 403 && body != "RBAC: access denied":
					t.Errorf("403 body = %q, want RBAC: access denied", body)
				}
				if len(c.log) > 0 {
					buf, from := l4, from4
					if c.status != 0 {
						buf, from = l7, from7
					}
					if line, ok := buf.waitLine(from, c.log...); !ok {
						t.Errorf("no log line with %q:\n%s", c.log, buf.String()[from:])
					} else {
						t.Logf("%s", line)
					}
				}
			})
		}
		if n := m.flakyHits.count("L7 deny on the whole waypoint: flaky /admin -> 403"); n != 0 {
			t.Errorf("flaky saw %d requests the waypoint denied", n)
		}
	})

	t.Run("PeerAuthentication STRICT: ztunnel refuses plain text, a PERMISSIVE port lets it in", func(t *testing.T) {
		zt1 := m.ztunnel[m.node1]
		apply := func(doc string) []ingest.Key {
			objs, _, err := ingest.Decode("peerauthn.yaml", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			var keys []ingest.Key
			for _, o := range objs {
				if _, err := m.cp.Store.Add(o); err != nil {
					t.Fatal(err)
				}
				k, _ := ingest.KeyOf(o)
				keys = append(keys, k)
			}
			return keys
		}
		// plainToEcho waits until plain -> echo's pod (plain text, no identity) gets the wanted outcome.
		plainToEcho := func(wantOK bool) {
			t.Helper()
			deadline := time.Now().Add(15 * time.Second)
			for {
				st, _, err := request(m.plain, "GET", "http://"+m.echo.Addr(appPort)+"/", nil)
				if ok := err == nil && st == http.StatusOK; ok == wantOK {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("plain -> echo: status %d, err %v; want success=%v", st, err, wantOK)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		from := zt1.out.len()
		mesh := apply(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
`)
		t.Cleanup(func() {
			for _, k := range mesh {
				m.cp.Store.Delete(k)
			}
		})
		plainToEcho(false)
		if line, ok := zt1.out.waitLine(from, `src.addr="`+m.plain.IP.String()+`:`, `error="denied by policy istio-system/istio_converted_static_strict"`); !ok {
			t.Errorf("node1 ztunnel logged no STRICT rejection of plain:\n%s", zt1.out.String()[from:])
		} else {
			t.Logf("%s", line)
		}
		// Mutual TLS (HBONE with sleep's identity) still gets through.
		if st, _, err := request(m.sleep, "GET", "http://"+m.echo.Addr(appPort)+"/", nil); err != nil || st != http.StatusOK {
			t.Errorf("sleep -> echo under STRICT = %d, %v; want 200", st, err)
		}
		// A workload policy with mode unset (STRICT from the mesh) and the app port PERMISSIVE: Istio's
		// converted form replaces the static STRICT policy for echo, and plain text on that port is let in.
		workload := apply(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: echo-app-port, namespace: mesh}
spec:
  selector: {matchLabels: {app: echo}}
  portLevelMtls: {8080: {mode: PERMISSIVE}}
`)
		plainToEcho(true)
		for _, k := range workload {
			m.cp.Store.Delete(k)
		}
		plainToEcho(false)
		for _, k := range mesh {
			m.cp.Store.Delete(k)
		}
		plainToEcho(true)
	})

	t.Run("RequestAuthentication and request principals at the waypoint", func(t *testing.T) { m.checkJWT(t) })

	t.Run("istioctl ztunnel-config reads the ztunnel config dumps", func(t *testing.T) { m.checkIstioctl(t) })
}

// carried reports whether node's ztunnel carried (or is carrying) an inbound HBONE connection into
// workload from src to dst identity on local: its connection table, or its access log after from.
func (m *testbed) carried(t *testing.T, node *netnstest.Node, from int, workload, src, dst, local string) bool {
	t.Helper()
	d, err := m.configDump(node)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Meshlab.Connections {
		if c.Workload == workload && c.Direction == "inbound" && c.Protocol == "HBONE" && c.Local == local && c.SrcIdentity == src && c.DstIdentity == dst {
			t.Logf("open on %s: %+v", d.Meshlab.Node, c)
			return true
		}
	}
	line, ok := m.ztunnel[node].out.waitLine(from, `src.identity="`+src+`"`, `dst.addr="`+local+`"`, `dst.identity="`+dst+`"`, `direction="inbound"`, `protocol="HBONE"`)
	if ok {
		t.Logf("%s", line)
	}
	return ok
}

// hboneGet opens an HBONE stream to target through proxy with cfg and sends one GET; it returns the
// status line.
func hboneGet(ctx context.Context, c *hbone.Client, proxy, target string, cfg *tls.Config) (string, error) {
	conn, err := c.Connect(ctx, hbone.Request{ProxyAddr: proxy, Target: target, TLS: cfg})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// metricLine returns the first sample of name whose labels mention part.
func metricLine(text, name, part string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, part) {
			return line
		}
	}
	return ""
}
