package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshlab/meshlab/controlplane/server/servertest"
	"github.com/meshlab/meshlab/dataplane/netnstest"
	"github.com/meshlab/meshlab/dataplane/ztunnel/configdump"
)

// The mesh's names. Namespace mesh is ambient; legacy is not.
const (
	meshNS     = "mesh"
	legacyNS   = "legacy"
	appPort    = 8080 // every app listens here in its pod
	svcPort    = 80   // every Service port (target port appPort)
	adminAddr  = "127.0.0.1:15000"
	cpPort     = "15012"
	echoVIP    = "10.96.0.10"
	guardedVIP = "10.96.0.11"
	webVIP     = "10.96.0.20"
	flakyVIP   = "10.96.0.30"
	tokenHdr   = "X-Test-Token"
)

func spiffe(ns, sa string) string { return "spiffe://cluster.local/ns/" + ns + "/sa/" + sa }

// mesh is the running harness: two nodes, their pods, the control plane and the proxy processes.
type testbed struct {
	node0, node1 *netnstest.Node
	// node0: the clients. sleep and other are enrolled; plain is in a namespace outside the mesh.
	sleep, other, plain *netnstest.Pod
	// node1: echo and guarded take L4 traffic straight from ztunnel; web-v1, web-v2 and flaky sit behind
	// the waypoint (their Services carry istio.io/use-waypoint).
	echo, guarded, webV1, webV2, flaky, waypoint *netnstest.Pod
	cp                                           *servertest.ControlPlane
	ztunnel                                      map[*netnstest.Node]*proc
	wp                                           *proc
	flakyHits                                    *tokens
}

// podSpec is one pod of the YAML model.
type podSpec struct {
	pod       *netnstest.Pod
	node      string
	namespace string
	sa        string
	labels    string
}

func (s podSpec) yaml() string {
	return fmt.Sprintf(`---
apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s, labels: {%s}}
spec: {serviceAccountName: %s, nodeName: %s, containers: [{name: app, image: app}]}
status: {phase: Running, podIP: %s, podIPs: [{ip: %s}], conditions: [{type: Ready, status: "True"}]}
`, s.pod.PodName, s.namespace, s.labels, s.sa, s.node, s.pod.IP, s.pod.IP)
}

func service(name, vip, selector, labels string) string {
	return fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata: {name: %s, namespace: mesh, labels: {%s}}
spec: {clusterIP: %s, selector: {%s}, ports: [{name: http, port: %d, targetPort: %d}]}
`, name, labels, vip, selector, svcPort, appPort)
}

// policiesYAML: L4 policies (selector, enforced by the destination ztunnel) and L7 policies (targetRefs,
// enforced by the waypoint), one ALLOW and one DENY at each layer.
const policiesYAML = `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: guarded-allow-sleep, namespace: mesh}
spec:
  selector: {matchLabels: {app: guarded}}
  action: ALLOW
  rules: [{from: [{source: {principals: ["cluster.local/ns/mesh/sa/sleep"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: echo-deny-other, namespace: mesh}
spec:
  selector: {matchLabels: {app: echo}}
  action: DENY
  rules: [{from: [{source: {principals: ["cluster.local/ns/mesh/sa/other"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-allow-sleep-get, namespace: mesh}
spec:
  targetRefs: [{kind: Service, group: "", name: web}]
  action: ALLOW
  rules: [{from: [{source: {principals: ["cluster.local/ns/mesh/sa/sleep"]}}], to: [{operation: {methods: ["GET"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: waypoint-deny-admin, namespace: mesh}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
`

// newMesh builds the network, serves the control plane from node0 and starts every proxy process, then
// waits until the ztunnels have enrolled their pods and the waypoint has its config.
func newMesh(t *testing.T) *testbed {
	t.Helper()
	network := netnstest.New(t)
	m := &testbed{node0: network.AddNode("zt0"), node1: network.AddNode("zt1"), ztunnel: map[*netnstest.Node]*proc{}, flakyHits: &tokens{seen: map[string]int{}}}
	m.sleep, m.other, m.plain = m.node0.AddPod("sleep"), m.node0.AddPod("other"), m.node0.AddPod("plain")
	m.echo, m.guarded = m.node1.AddPod("echo"), m.node1.AddPod("guarded")
	m.webV1, m.webV2, m.flaky, m.waypoint = m.node1.AddPod("web-v1"), m.node1.AddPod("web-v2"), m.node1.AddPod("flaky"), m.node1.AddPod("waypoint")

	pods := []podSpec{
		{m.sleep, "node0", meshNS, "sleep", "app: sleep"},
		{m.other, "node0", meshNS, "other", "app: other"},
		{m.plain, "node0", legacyNS, "default", "app: plain"},
		{m.echo, "node1", meshNS, "echo", "app: echo"},
		{m.guarded, "node1", meshNS, "guarded", "app: guarded"},
		{m.webV1, "node1", meshNS, "web", "app: web, version: v1"},
		{m.webV2, "node1", meshNS, "web", "app: web, version: v2"},
		{m.flaky, "node1", meshNS, "flaky", "app: flaky"},
		// Waypoint pods opt out of capture: they speak HBONE themselves.
		{m.waypoint, "node1", meshNS, "waypoint", "gateway.networking.k8s.io/gateway-name: waypoint, istio.io/dataplane-mode: none"},
	}
	yaml := `apiVersion: v1
kind: Namespace
metadata: {name: mesh, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: legacy}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: mesh, labels: {istio.io/waypoint-for: service}}
spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}
status: {addresses: [{type: IPAddress, value: ` + m.waypoint.IP.String() + `}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules: [{backendRefs: [{name: web-v1, port: 80, weight: 90}, {name: web-v2, port: 80, weight: 10}]}]
` + service("echo", echoVIP, "app: echo", "") +
		service("guarded", guardedVIP, "app: guarded", "") +
		service("web", webVIP, "app: web", "istio.io/use-waypoint: waypoint") +
		service("web-v1", "10.96.0.21", "app: web, version: v1", "") +
		service("web-v2", "10.96.0.22", "app: web, version: v2", "") +
		service("flaky", flakyVIP, "app: flaky", "istio.io/use-waypoint: waypoint") +
		policiesYAML
	for _, p := range pods {
		yaml += p.yaml()
	}

	cpAddr := m.node0.Gateway.String() + ":" + cpPort
	m.cp = servertest.Start(t, yaml, servertest.Options{Listen: m.node0.Listen, TLSAddr: cpAddr})

	for _, a := range []struct {
		pod  *netnstest.Pod
		name string
	}{{m.echo, "echo"}, {m.guarded, "guarded"}, {m.webV1, "web-v1"}, {m.webV2, "web-v2"}, {m.plain, "plain"}} {
		serveApp(t, a.pod, appHandler(a.name))
	}
	serveApp(t, m.flaky, m.flakyHits.handler())

	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	root := write("root-cert.pem", string(m.cp.CA.RootPEM()))
	objects := write("objects.yaml", yaml)
	ztToken := write("ztunnel.token", servertest.Token("istio-system", "ztunnel"))
	netnsPrefix := strings.TrimSuffix(network.Name, "-sw")
	for i, node := range []*netnstest.Node{m.node0, m.node1} {
		b, _ := json.Marshal(ztunnelSpec{
			Node: fmt.Sprintf("node%d", i), ControlPlane: cpAddr, TokenPath: ztToken, RootCert: root,
			NetnsPattern: fmt.Sprintf("%s-n%d-p*", netnsPrefix, i), ObjectsPath: objects, AdminAddress: adminAddr,
		})
		spec := write(fmt.Sprintf("ztunnel-node%d.json", i), string(b))
		m.ztunnel[node] = startProc(t, &node.Namespace, fmt.Sprintf("ztunnel-node%d", i), "ztunnel", spec)
	}
	wpToken := write("waypoint.token", servertest.Token(meshNS, "waypoint"))
	b, _ := json.Marshal(waypointSpec{
		Namespace: meshNS, Name: "waypoint", IP: m.waypoint.IP.String(),
		ControlPlane: cpAddr, TokenPath: wpToken, RootCert: root,
	})
	m.wp = startProc(t, &m.waypoint.Namespace, "waypoint", "waypoint", write("waypoint.json", string(b)))

	m.waitReady(t, map[*netnstest.Node][]string{
		m.node0: {"sleep", "other"},
		m.node1: {"echo", "guarded", "web-v1", "web-v2", "flaky"},
	})
	return m
}

// waitReady waits until each ztunnel has enrolled exactly the wanted pods and the waypoint is ready.
func (m *testbed) waitReady(t *testing.T, want map[*netnstest.Node][]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for node, names := range want {
		for {
			d, err := m.configDump(node)
			var got []string
			if err == nil && d.Meshlab != nil {
				for _, e := range d.Meshlab.Enrolled {
					got = append(got, e.Name)
				}
			}
			if err == nil && strings.Join(got, ",") == strings.Join(slices.Sorted(slices.Values(names)), ",") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("ztunnel on %s enrolled %v (err %v), want %v\nstderr:\n%s", node.Name, got, err, names, m.ztunnel[node].errOut)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for {
		// The readiness port, from the node, as the kubelet probes it.
		st, _, err := request(m.node1, "GET", "http://"+m.waypoint.Addr(15021)+"/healthz/ready", nil)
		if err == nil && st == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waypoint not ready: %d %v\nstderr:\n%s", st, err, m.wp.errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// configDump reads the ztunnel admin dump of a node (its loopback, from inside the node namespace).
func (m *testbed) configDump(node *netnstest.Node) (configdump.Dump, error) {
	var d configdump.Dump
	st, body, err := request(node, "GET", "http://"+adminAddr+"/config_dump", nil)
	if err != nil {
		return d, err
	}
	if st != http.StatusOK {
		return d, fmt.Errorf("config_dump: %d", st)
	}
	return d, json.Unmarshal([]byte(body), &d)
}

// proc is one proxy process and its output.
type proc struct {
	name        string
	out, errOut *syncBuf
}

// startProc re-executes the test binary as role inside ns; the process ends when its stdin closes.
func startProc(t *testing.T, ns *netnstest.Namespace, name, role, args string) *proc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, out: &syncBuf{}, errOut: &syncBuf{}}
	cmd := ns.Command(context.Background(), self)
	cmd.Env = append(os.Environ(), roleEnv+"="+role, argsEnv+"="+args)
	cmd.Stdout, cmd.Stderr = p.out, p.errOut
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("%s stderr:\n%s", name, p.errOut)
		}
	})
	return p
}

// syncBuf collects a process's output.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// waitLine waits for a line (written after offset from) holding every part; access-log lines are
// written when a connection or request ends and reach the buffer through a pipe.
func (s *syncBuf) waitLine(from int, parts ...string) (string, bool) {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		all := s.String()
		if from > len(all) {
			from = len(all)
		}
		for _, line := range strings.Split(all[from:], "\n") {
			ok := true
			for _, p := range parts {
				if !strings.Contains(line, p) {
					ok = false
					break
				}
			}
			if ok && line != "" {
				return line, true
			}
		}
		if time.Now().After(deadline) {
			return "", false
		}
	}
}

func (s *syncBuf) len() int { return len(s.String()) }

// appHandler answers with its name, the peer address it saw (the original source IP, or not) and the
// x-request-id it received (a waypoint adds one; ztunnel, at L4, cannot).
func appHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s from=%s request-id=%s", name, r.RemoteAddr, r.Header.Get("X-Request-Id"))
	})
}

// tokens is the flaky backend: the first request carrying a token gets 503, later ones 200.
type tokens struct {
	mu   sync.Mutex
	seen map[string]int
}

func (tk *tokens) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get(tokenHdr)
		tk.mu.Lock()
		tk.seen[tok]++
		n := tk.seen[tok]
		tk.mu.Unlock()
		if n == 1 {
			http.Error(w, "flaky: first try", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "flaky attempt=%d", n)
	})
}

func (tk *tokens) count(tok string) int {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.seen[tok]
}

func serveApp(t *testing.T, p *netnstest.Pod, h http.Handler) {
	t.Helper()
	l, err := p.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", appPort))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

type dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// request sends one request on a fresh connection from inside a namespace (as an application would:
// captured when the pod is enrolled).
func request(from dialer, method, url string, header http.Header) (int, string, error) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: from.DialContext, DisableKeepAlives: true}}
	return do(hc, method, url, header)
}

func do(hc *http.Client, method, url string, header http.Header) (int, string, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}
