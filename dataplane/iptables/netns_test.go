package iptables_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/meshlab/meshlab/dataplane/capture"
	"github.com/meshlab/meshlab/dataplane/iptables"
	"github.com/meshlab/meshlab/dataplane/netnstest"
	"github.com/meshlab/meshlab/dataplane/nft"
)

// dialEnv makes the test binary act as a one-shot client (see TestHelperDial): it dials the address,
// prints the first line it reads and exits. The netns test runs it as uid 1337 to play the proxy.
const dialEnv = "MESHLAB_IPTABLES_TEST_DIAL"

func TestHelperDial(t *testing.T) {
	addr := os.Getenv(dialEnv)
	if addr == "" {
		t.Skip("helper process only")
	}
	c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
	if err != nil {
		fmt.Printf("dial error: %v\n", err)
		os.Exit(0)
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Print(line)
	os.Exit(0)
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

func origDst(tag string) func(net.Conn) string {
	return func(c net.Conn) string {
		dst, err := capture.OriginalDst(c)
		if err != nil {
			return tag + " error " + err.Error()
		}
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		return fmt.Sprintf("%s from %s to %s", tag, host, dst)
	}
}

func listen(t *testing.T, p *netnstest.Pod, addr string, describe func(net.Conn) string) {
	t.Helper()
	l, err := p.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	answer(t, l, describe)
}

// ask dials addr from inside pod as root (an application).
func ask(t *testing.T, p *netnstest.Pod, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := p.DialContext(ctx, "tcp4", addr)
	if err != nil {
		return "dial error: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && err != io.EOF {
		return "read error: " + err.Error()
	}
	return strings.TrimSpace(line)
}

// askAs dials addr from inside pod in a child process running as uid:gid (the proxy's 1337).
func askAs(t *testing.T, exe string, p *netnstest.Pod, uid uint32, addr string) string {
	t.Helper()
	var out []byte
	err := p.Do(func() error {
		cmd := exec.Command(exe, "-test.run=^TestHelperDial$")
		cmd.Env = append(os.Environ(), dialEnv+"="+addr)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		var err error
		out, err = cmd.Output()
		return err
	})
	if err != nil {
		t.Fatalf("helper as uid %d: %v", uid, err)
	}
	return strings.TrimSpace(string(out))
}

// proxyExecutable copies the test binary where uid 1337 can run it (go test's build directory is private).
func proxyExecutable(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for d := dir; d != filepath.Dir(d) && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	exe := filepath.Join(dir, "dial")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

// backends runs test with nftables over netlink (PATH emptied once the namespaces exist: no binary may be
// used) and, where the binaries exist, with iptables-restore.
func backends(t *testing.T, test func(t *testing.T, backend iptables.Backend, ready func())) {
	netnstest.Skip(t)
	t.Run("nft-native", func(t *testing.T) {
		b, err := iptables.DetectBackend(iptables.BackendNFT)
		if err != nil {
			t.Fatal(err)
		}
		test(t, b, func() { t.Setenv("PATH", t.TempDir()) })
	})
	t.Run("iptables", func(t *testing.T) {
		b, err := iptables.DetectBackend(iptables.BackendIPTables)
		if err != nil {
			t.Skipf("no iptables: %v", err)
		}
		test(t, b, func() {})
	})
}

// counts checks how often each rule appears in what the namespace holds after applying twice.
func counts(t *testing.T, saved string, want map[string]int) {
	t.Helper()
	for rule, n := range want {
		if got := strings.Count(saved, rule); got != n {
			t.Errorf("after two applies %q appears %d times, want %d:\n%s", rule, got, n, saved)
		}
	}
}

// TestRedirectInPodNamespace applies the injected pod's REDIRECT rules in two pod namespaces and checks where
// connections land. Traffic "from the proxy" comes from a child process running as uid 1337, so the owner
// match is what is exercised (no socket marks are involved).
func TestRedirectInPodNamespace(t *testing.T) { backends(t, testRedirect) }

func testRedirect(t *testing.T, backend iptables.Backend, ready func()) {
	network := netnstest.New(t)
	node := network.AddNode("worker")
	client, server := node.AddPod("client"), node.AddPod("server")
	exe := proxyExecutable(t)
	ready()

	cfg := iptables.DefaultConfig()
	cfg.OutboundIPRangesInclude, cfg.InboundPortsInclude, cfg.InboundPortsExclude = "*", "*", "15090,15021,15020"
	cfg.OutboundPortsExclude = "5432"
	rs, err := iptables.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*netnstest.Pod{client, server} {
		listen(t, p, "0.0.0.0:15001", origDst(p.PodName+" outbound"))
		listen(t, p, "0.0.0.0:15006", origDst(p.PodName+" inbound"))
		listen(t, p, "0.0.0.0:15021", func(net.Conn) string { return p.PodName + " health" })
		listen(t, p, "0.0.0.0:8080", func(net.Conn) string { return p.PodName + " app" })
		for i := range 2 { // twice: applying again must converge, not duplicate
			if err := p.Do(func() error { return iptables.Apply(rs, backend) }); err != nil {
				t.Fatalf("Apply(%s) #%d = %v", p.PodName, i, err)
			}
		}
	}
	var saved string
	if err := client.Do(func() error { saved, err = iptables.Save(backend); return err }); err != nil {
		t.Fatal(err)
	}
	if backend.Native() {
		// The kernel holds exactly the rendered tables (read back rule by rule).
		tables, err := rs.NFT()
		if err != nil {
			t.Fatal(err)
		}
		if want := nft.Render(tables); saved != want {
			t.Errorf("after two applies the kernel holds:\n%s\nwant:\n%s", saved, want)
		}
		counts(t, saved, map[string]int{
			"meta l4proto tcp jump ISTIO_OUTPUT":  1,
			"meta l4proto tcp jump ISTIO_INBOUND": 1,
			"redirect to :15001":                  1,
			"\t\tmeta skuid 1337 return":          1,
			"tcp dport 15021 return":              1,
		})
	} else {
		counts(t, saved, map[string]int{
			"-A OUTPUT -p tcp -j ISTIO_OUTPUT":                       1,
			"-A PREROUTING -p tcp -j ISTIO_INBOUND":                  1,
			"-j REDIRECT --to-ports 15001":                           1,
			"-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN":    1,
			"-A ISTIO_INBOUND -p tcp -m tcp --dport 15021 -j RETURN": 1,
		})
	}

	srv := server.Addr(8080)
	for _, tc := range []struct {
		name string
		got  func() string
		want string
	}{
		{"the app's outbound lands on 15001 with its original destination (SO_ORIGINAL_DST)",
			func() string { return ask(t, client, srv) }, "client outbound from 10.244.0.2 to " + srv},
		{"outbound to any address is captured",
			func() string { return ask(t, client, "10.96.0.10:80") }, "client outbound from 10.244.0.2 to 10.96.0.10:80"},
		{"the proxy's (uid 1337) outbound is not captured, and inbound to an app port lands on 15006",
			func() string { return askAs(t, exe, client, 1337, srv) }, "server inbound from 10.244.0.2 to " + srv},
		{"inbound to an excluded port (15021) is not captured",
			func() string { return askAs(t, exe, client, 1337, server.Addr(15021)) }, "server health"},
		{"outbound to an excluded port (-o 5432) is not captured (the server captures it inbound)",
			func() string { return ask(t, client, server.Addr(5432)) }, "server inbound from 10.244.0.2 to " + server.Addr(5432)},
		{"another uid is captured like the app",
			func() string { return askAs(t, exe, client, 1000, srv) }, "client outbound from 10.244.0.2 to " + srv},
		{"the app reaching its own localhost is not captured",
			func() string { return ask(t, client, "127.0.0.1:8080") }, "client app"},
	} {
		if got := tc.got(); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestTProxy applies the TPROXY ruleset twice in a pod namespace (with its policy route, once), then
// checks that inbound traffic reaches a transparent listener on 15006 with its destination and the
// client's address untouched. With nft-native, applying the REDIRECT ruleset afterwards removes the
// mangle table it no longer needs.
func TestTProxy(t *testing.T) { backends(t, testTProxy) }

func testTProxy(t *testing.T, backend iptables.Backend, ready func()) {
	network := netnstest.New(t)
	node := network.AddNode("worker")
	client, server := node.AddPod("client"), node.AddPod("tproxy")
	exe := proxyExecutable(t)
	ready()

	cfg := iptables.DefaultConfig()
	cfg.Mode, cfg.OutboundIPRangesInclude, cfg.InboundPortsInclude = iptables.TProxy, "*", "*"
	rs, err := iptables.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := capture.Listen(server.Handle, "tcp4", "0.0.0.0:15006", capture.SocketOptions{Transparent: true})
	if err != nil {
		t.Fatal(err)
	}
	answer(t, l, func(c net.Conn) string {
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		return fmt.Sprintf("tproxy from %s to %s", host, c.LocalAddr())
	})
	for i := range 2 {
		if err := server.Do(func() error { return iptables.Apply(rs, backend) }); err != nil {
			t.Fatalf("Apply #%d = %v", i, err)
		}
	}
	var saved string
	if err := server.Do(func() error { saved, err = iptables.Save(backend); return err }); err != nil {
		t.Fatal(err)
	}
	if backend.Native() {
		counts(t, saved, map[string]int{"tproxy to :15006 meta mark set 0x00000539 accept": 1,
			"meta l4proto tcp jump ISTIO_INBOUND": 1, "meta mark set ct mark": 1})
	} else {
		counts(t, saved, map[string]int{"-j TPROXY": 1, "-A PREROUTING -p tcp -j ISTIO_INBOUND": 1, "CONNMARK --restore-mark": 1})
	}
	var rules []netlink.Rule
	if err := server.Do(func() error { rules, err = netlink.RuleList(unix.AF_INET); return err }); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rules {
		if r.Mark == 1337 && r.Table == 133 {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d rules fwmark 1337 lookup 133, want 1: %v", n, rules)
	}

	if got, want := askAs(t, exe, client, 1337, server.Addr(8080)), "tproxy from 10.244.0.2 to "+server.Addr(8080); got != want {
		t.Errorf("inbound through TPROXY: got %q, want %q", got, want)
	}
	if got, want := askAs(t, exe, client, 1337, server.Addr(15008)), "dial error"; !strings.HasPrefix(got, want) {
		t.Errorf("the tunnel port is not captured: got %q, want a refused dial", got)
	}

	if !backend.Native() {
		return
	}
	redirect, err := iptables.Build(iptables.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Do(func() error { return iptables.Apply(redirect, backend) }); err != nil {
		t.Fatal(err)
	}
	if err := server.Do(func() error { saved, err = iptables.Save(backend); return err }); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(saved, iptables.TablePrefix+"-mangle") || !strings.Contains(saved, iptables.TablePrefix+"-nat") {
		t.Errorf("after applying REDIRECT over TPROXY:\n%s", saved)
	}
}
