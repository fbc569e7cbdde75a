package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/proxy"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/controlplane/server/servertest"
	"github.com/meshlab/meshlab/dataplane/iptables"
	"github.com/meshlab/meshlab/dataplane/netnstest"
)

// argsEnv makes the test binary run `meshlab proxy sidecar ARGS...` (arguments separated by \x1f): the
// netns test starts it as uid 1337 inside a pod namespace, as the istio-proxy container runs.
const argsEnv = "MESHLAB_PROXY_TEST_ARGS"

func TestHelperSidecarProcess(t *testing.T) {
	args := os.Getenv(argsEnv)
	if args == "" {
		t.Skip("helper process only")
	}
	streams := ui.Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	cmd := proxy.NewCommand(cliutil.Env{Logger: ui.NewLogger(os.Stderr, 1, false), Streams: streams, Globals: &cliutil.Globals{}})
	cmd.SetArgs(strings.Split(args, "\x1f"))
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "proxy sidecar:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// contains waits a little for want: access-log lines are written once a request is done and reach the
// buffer through a pipe.
func (s *syncBuf) contains(want string) bool {
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(s.String(), want) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// world makes a directory (and its parents) readable by uid 1337 and returns it.
func world(t *testing.T) string {
	dir := t.TempDir()
	for d := dir; d != filepath.Dir(d) && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	return dir
}

// proxyProcess is one sidecar running as uid 1337 in its pod's namespace.
type proxyProcess struct {
	out, errOut *syncBuf
}

func startProxy(t *testing.T, exe string, p *netnstest.Pod, dir, sa, cpAddr string) *proxyProcess {
	t.Helper()
	token := filepath.Join(dir, sa+".token")
	if err := os.WriteFile(token, []byte(servertest.Token("shop", sa)), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"sidecar", "--namespace", "shop", "--pod", p.PodName, "--pod-ip", p.IP.String(),
		"--service-account", sa, "--ca-address", cpAddr, "--xds-address", cpAddr,
		"--token-path", token, "--root-cert", filepath.Join(dir, "root-cert.pem")}
	pp := &proxyProcess{out: &syncBuf{}, errOut: &syncBuf{}}
	cmd := exec.Command(exe, "-test.run=^TestHelperSidecarProcess$")
	cmd.Env = append(os.Environ(), argsEnv+"="+strings.Join(args, "\x1f"))
	cmd.Stdout, cmd.Stderr = pp.out, pp.errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1337, Gid: 1337}, Pdeathsig: syscall.SIGKILL}
	// Started from a thread inside the pod's namespace, the child lives there.
	if err := p.Do(cmd.Start); err != nil {
		t.Fatalf("starting the sidecar of %s: %v", p.PodName, err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		t.Logf("sidecar %s stderr:\n%s", p.PodName, pp.errOut)
	})
	return pp
}

// serveApp answers every request with who called it, as the app saw it.
func serveApp(t *testing.T, p *netnstest.Pod, name string) {
	t.Helper()
	l, err := p.Listen("tcp4", "0.0.0.0:9080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s from=%s request-id=%s", name, r.RemoteAddr, r.Header.Get("X-Request-Id"))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// get sends one request from inside a namespace as root (an application; captured where rules exist).
func get(ns interface {
	DialContext(context.Context, string, string) (net.Conn, error)
}, url string) (string, error) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: ns.DialContext, DisableKeepAlives: true}}
	resp, err := hc.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s", resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}

// TestSidecarInNetns runs two injected pods as the kubelet would: the init container's REDIRECT rules
// (dataplane/iptables, Istio's flags) in each pod namespace, and `meshlab proxy sidecar` as a separate
// process running as uid 1337 inside it (the owner match, not a socket mark, keeps its own traffic out of
// capture). The control plane is the real store, generators and xDS server with the real CA service,
// listening on the node; the sidecars get their certificates with a token and their config over TLS.
func TestSidecarInNetns(t *testing.T) {
	netnstest.Skip(t)
	backend, err := iptables.DetectBackend("")
	if err != nil {
		t.Skipf("no iptables backend: %v", err)
	}
	t.Logf("capture rules through the %s backend", backend.Name)
	network := netnstest.New(t)
	node := network.AddNode("worker")
	a, b, plain := node.AddPod("a-1"), node.AddPod("b-1"), node.AddPod("plain-1")
	podYAML := func(p *netnstest.Pod, app, sa string, injected bool) string {
		labels := "app: " + app
		if injected {
			labels += ", security.istio.io/tlsMode: istio"
		}
		return fmt.Sprintf(`---
apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: shop, labels: {%s}}
spec: {serviceAccountName: %s, nodeName: %s, containers: [{name: app, image: app}]}
status: {phase: Running, podIP: %s, conditions: [{type: Ready, status: "True"}]}
`, p.PodName, labels, sa, node.Name, p.IP)
	}
	yaml := `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: shop}
spec: {clusterIP: 10.96.7.7, selector: {app: b}, ports: [{name: http, port: 9080, targetPort: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: plain, namespace: shop}
spec: {clusterIP: 10.96.7.8, selector: {app: plain}, ports: [{name: http, port: 9080, targetPort: 9080}]}
` + podYAML(a, "a", "a", true) + podYAML(b, "b", "b", true) + podYAML(plain, "plain", "plain", false)
	cpAddr := node.Gateway.String() + ":15012"
	cp := servertest.Start(t, yaml, servertest.Options{Listen: node.Listen, TLSAddr: cpAddr})

	cfg := iptables.DefaultConfig()
	cfg.OutboundIPRangesInclude, cfg.InboundPortsInclude, cfg.InboundPortsExclude = "*", "*", "15090,15021,15020"
	rs, err := iptables.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*netnstest.Pod{a, b} {
		if err := p.Do(func() error { return iptables.Apply(rs, backend) }); err != nil {
			t.Fatalf("applying the init container's rules in %s: %v", p.PodName, err)
		}
	}
	serveApp(t, b, "b")
	serveApp(t, plain, "plain")

	dir := world(t)
	if err := os.WriteFile(filepath.Join(dir, "root-cert.pem"), cp.CA.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "proxy.test")
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	pa := startProxy(t, exe, a, dir, "a", cpAddr)
	pb := startProxy(t, exe, b, dir, "b", cpAddr)
	for _, p := range []*netnstest.Pod{a, b} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			// From the node: 15021 is excluded from inbound capture, as kubelet's probe needs.
			if _, err := get(node, "http://"+p.Addr(15021)+"/healthz/ready"); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("sidecar of %s not ready: %v\nA: %s\nB: %s", p.PodName, err, pa.errOut, pb.errOut)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	t.Run("a's app calls b's VIP: 15001, HBONE with both identities, b's app sees 127.0.0.6", func(t *testing.T) {
		body, err := get(a, "http://10.96.7.7:9080/hello")
		if err != nil || !strings.HasPrefix(body, "b from=127.0.0.6:") || strings.HasSuffix(body, "request-id=") {
			t.Fatalf("got %q, %v; want b's answer from 127.0.0.6 with a request id", body, err)
		}
		for _, want := range []string{"upstream_cluster=outbound|9080||b.shop.svc.cluster.local",
			"upstream_host=envoy://connect_originate/" + b.Addr(9080), "destination_identity=spiffe://cluster.local/ns/shop/sa/b"} {
			if !pa.out.contains(want) {
				t.Errorf("a's access log lacks %s:\n%s", want, pa.out)
			}
		}
		for _, want := range []string{"source=" + a.IP.String() + ":", "source_identity=spiffe://cluster.local/ns/shop/sa/a",
			"upstream_cluster=inbound|9080||", "destination=" + b.Addr(9080)} {
			if !pb.out.contains(want) {
				t.Errorf("b's access log lacks %s:\n%s", want, pb.out)
			}
		}
		t.Logf("a's access log:\n%sb's access log:\n%s", pa.out, pb.out)
	})

	t.Run("a non-mesh client reaches b in plaintext through 15006", func(t *testing.T) {
		before := len(pb.out.String())
		body, err := get(plain, "http://"+b.Addr(9080)+"/")
		if err != nil || !strings.HasPrefix(body, "b from=127.0.0.6:") {
			t.Fatalf("got %q, %v", body, err)
		}
		pb.out.contains("source=" + plain.IP.String() + ":")
		line := pb.out.String()[before:]
		if !strings.Contains(line, "source="+plain.IP.String()+":") || !strings.Contains(line, "source_identity=-") {
			t.Errorf("b's inbound log = %q, want the plain client and no identity", line)
		}
	})

	t.Run("a's app calls a pod outside the mesh: plaintext from a's IP", func(t *testing.T) {
		body, err := get(a, "http://10.96.7.8:9080/")
		if err != nil || !strings.HasPrefix(body, "plain from="+a.IP.String()+":") {
			t.Fatalf("got %q, %v", body, err)
		}
	})

	t.Run("the proxy's admin is on the pod's loopback only", func(t *testing.T) {
		body, err := get(a, "http://127.0.0.1:15000/config_dump")
		if err != nil || !strings.Contains(body, `"virtualOutbound"`) {
			t.Errorf("admin from inside the pod: %v", err)
		}
		if _, err := get(node, "http://"+a.Addr(15000)+"/config_dump"); err == nil {
			t.Error("admin answered on the pod IP")
		}
	})

	// Every line the sidecars logged is a well-formed access-log line.
	for _, out := range []string{pa.out.String(), pb.out.String()} {
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "[") {
				t.Errorf("stdout line is not an access-log line: %q", sc.Text())
			}
		}
	}
}
