package capture_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshlab/meshlab/internal/golden"

	"github.com/meshlab/meshlab/dataplane/capture"
	"github.com/meshlab/meshlab/dataplane/netnstest"
)

func TestRulesGolden(t *testing.T) {
	nftRules, err := capture.NFTRules(capture.DefaultConfig())
	if err != nil {
		t.Fatalf("NFTRules() = %v", err)
	}
	for path, got := range map[string]string{
		"testdata/rules.golden": capture.Rules(capture.DefaultConfig()),
		"testdata/nft.golden":   nftRules,
	} {
		golden.Check(t, path, []byte(got))
	}
}

// answer serves l, writing one line per connection built by describe.
func answer(t *testing.T, l net.Listener, describe func(net.Conn) string) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintln(c, describe(c))
			}()
		}
	}()
}

func ask(t *testing.T, dial func(context.Context, string, string) (net.Conn, error), addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := dial(ctx, "tcp4", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && err != io.EOF {
		t.Fatalf("reading from %s: %v", addr, err)
	}
	return strings.TrimSpace(line)
}

func remoteIP(c net.Conn) string { h, _, _ := net.SplitHostPort(c.RemoteAddr().String()); return h }

func origDst(tag string) func(net.Conn) string {
	return func(c net.Conn) string {
		dst, err := capture.OriginalDst(c)
		if err != nil {
			return tag + " error " + err.Error()
		}
		return fmt.Sprintf("%s from %s to %s", tag, remoteIP(c), dst)
	}
}

// TestInPodCapture runs the same checks with nftables over netlink (with an empty PATH: no binary may be
// used) and, where the binaries exist, with iptables-restore.
func TestInPodCapture(t *testing.T) {
	t.Run("nft-native", func(t *testing.T) {
		testInPodCapture(t, capture.BackendNFT, func(t *testing.T) { t.Setenv("PATH", t.TempDir()) })
	})
	t.Run("iptables", func(t *testing.T) {
		if _, err := capture.DetectBackend(); err != nil {
			t.Skipf("no iptables: %v", err)
		}
		testInPodCapture(t, capture.BackendIPTables, func(*testing.T) {})
	})
}

func testInPodCapture(t *testing.T, backend string, ready func(*testing.T)) {
	network := netnstest.New(t)
	node := network.AddNode("worker")
	client, server := node.AddPod("client"), node.AddPod("server")
	cfg := capture.DefaultConfig()
	cfg.Backend = backend
	ready(t)

	app, err := server.Listen("tcp4", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	answer(t, app, func(c net.Conn) string { return "app saw " + remoteIP(c) })
	for _, p := range []*netnstest.Pod{client, server} {
		pl, err := capture.OpenPodListeners(p.Handle, cfg)
		if err != nil {
			t.Fatalf("OpenPodListeners(%s) = %v", p.PodName, err)
		}
		t.Cleanup(func() { pl.Close() })
		answer(t, pl.Outbound, origDst(p.PodName+" outbound"))
		answer(t, pl.InboundPlaintext, origDst(p.PodName+" inbound"))
		answer(t, pl.HBONE, func(c net.Conn) string { return p.PodName + " hbone from " + remoteIP(c) })
	}
	plain := client.DialContext
	proxy := capture.Dialer{NS: client.Handle, Options: capture.SocketOptions{Mark: cfg.ProxyMark}}.DialContext

	// Nothing is captured before Install.
	if got, want := ask(t, plain, server.Addr(8080)), "app saw 10.244.0.2"; got != want {
		t.Fatalf("before capture: %q, want %q", got, want)
	}

	for i := range 2 { // twice: Install must converge, not duplicate
		if err := capture.Install(client.Handle, cfg); err != nil {
			t.Fatalf("Install(client) #%d = %v", i, err)
		}
		if err := capture.Install(server.Handle, cfg); err != nil {
			t.Fatalf("Install(server) #%d = %v", i, err)
		}
	}
	saved, err := capture.Save(client.Handle, cfg)
	if err != nil {
		t.Fatal(err)
	}
	jump, redirect := "-A OUTPUT -j ISTIO_OUTPUT", "--to-ports 15001"
	if backend == capture.BackendNFT {
		jump, redirect = "jump ISTIO_OUTPUT", "redirect to :15001"
		// The kernel holds exactly the tables rendered (read back rule by rule): nothing twice.
		if want, _ := capture.NFTRules(cfg); saved != want {
			t.Errorf("after two installs the kernel holds:\n%s\nwant:\n%s", saved, want)
		}
	}
	if n := strings.Count(saved, jump); n != 2 {
		t.Errorf("after two installs there are %d OUTPUT jumps (mangle+nat), want 2:\n%s", n, saved)
	}
	if n := strings.Count(saved, redirect); n != 1 {
		t.Errorf("after two installs there are %d REDIRECT 15001 rules, want 1", n)
	}

	for _, tc := range []struct {
		name string
		dial func(context.Context, string, string) (net.Conn, error)
		addr string
		want string
	}{
		{"app's outbound goes to 15001 with its original destination", plain, server.Addr(8080), "client outbound from 10.244.0.2 to 10.244.0.3:8080"},
		{"outbound to any port and address is captured", plain, "10.244.7.7:443", "client outbound from 10.244.0.2 to 10.244.7.7:443"},
		{"proxy-marked traffic is not captured; inbound plaintext goes to 15006", proxy, server.Addr(8080), "server inbound from 10.244.0.2 to 10.244.0.3:8080"},
		{"HBONE port is left alone", proxy, server.Addr(15008), "server hbone from 10.244.0.2"},
	} {
		if got := ask(t, tc.dial, tc.addr); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}

	// ztunnel's delivery to the app: from inside the server pod, marked, transparently bound to the
	// client's IP. The app sees the client's address and its replies find their way back.
	deliver := capture.Dialer{NS: server.Handle, Source: client.IP,
		Options: capture.SocketOptions{Mark: cfg.ProxyMark, Transparent: true}}.DialContext
	if got, want := ask(t, deliver, server.Addr(8080)), "app saw 10.244.0.2"; got != want {
		t.Errorf("transparent delivery: %q, want %q", got, want)
	}

	for i := range 2 {
		if err := capture.Remove(client.Handle, cfg); err != nil {
			t.Fatalf("Remove(client) #%d = %v", i, err)
		}
	}
	if ok, err := capture.Installed(client.Handle, cfg); err != nil || ok {
		t.Errorf("Installed() after Remove = %v, %v", ok, err)
	}
	saved, _ = capture.Save(client.Handle, cfg)
	if strings.Contains(saved, "ISTIO") || strings.Contains(saved, capture.TablePrefix) {
		t.Errorf("rules left after Remove:\n%s", saved)
	}
	if got, want := ask(t, plain, server.Addr(15008)), "server hbone from 10.244.0.2"; got != want {
		t.Errorf("after Remove: %q, want %q", got, want)
	}
}

func TestDetectBackend(t *testing.T) {
	b, err := capture.DetectBackend()
	if err != nil {
		t.Skipf("no iptables: %v", err)
	}
	if b != "nft" && b != "legacy" {
		t.Errorf("DetectBackend() = %q", b)
	}
}
