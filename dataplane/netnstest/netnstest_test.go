package netnstest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshlab/meshlab/dataplane/netnstest"
)

// serveEcho answers each connection with "<local addr> saw <remote ip>: <line>".
func serveEcho(t *testing.T, l net.Listener) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
				fmt.Fprintf(c, "%s saw %s: %s", c.LocalAddr(), host, line)
			}()
		}
	}()
}

func roundTrip(t *testing.T, from *netnstest.Pod, to string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := from.DialContext(ctx, "tcp", to)
	if err != nil {
		t.Fatalf("%s -> %s: %v", from.PodName, to, err)
	}
	defer c.Close()
	fmt.Fprintf(c, "hello from %s\n", from.PodName)
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading from %s: %v", to, err)
	}
	return string(got)
}

func TestPodsTalkWithinAndAcrossNodes(t *testing.T) {
	t.Parallel()
	network := netnstest.New(t)
	n0, n1 := network.AddNode("worker"), network.AddNode("worker2")
	a, b := n0.AddPod("a"), n0.AddPod("b")
	c := n1.AddPod("c")
	if a.IP.String() != "10.244.0.2" || b.IP.String() != "10.244.0.3" || c.IP.String() != "10.244.1.2" {
		t.Fatalf("pod IPs = %s %s %s", a.IP, b.IP, c.IP)
	}
	for _, p := range []*netnstest.Pod{b, c} {
		l, err := p.Listen("tcp", ":8080")
		if err != nil {
			t.Fatalf("Listen in %s: %v", p.PodName, err)
		}
		serveEcho(t, l)
	}
	for _, tc := range []struct {
		to   *netnstest.Pod
		want string
	}{
		{b, "10.244.0.3:8080 saw 10.244.0.2: hello from a\n"}, // same node, bridged
		{c, "10.244.1.2:8080 saw 10.244.0.2: hello from a\n"}, // across nodes, routed; source IP kept
	} {
		if got := roundTrip(t, a, tc.to.Addr(8080)); got != tc.want {
			t.Errorf("a -> %s = %q, want %q", tc.to.PodName, got, tc.want)
		}
	}
	// A listener in b is not reachable on a's loopback: the namespaces really are separate.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if c, err := a.DialContext(ctx, "tcp", "127.0.0.1:8080"); err == nil {
		c.Close()
		t.Error("a reached b's listener on its own loopback")
	}
}

func TestCommandRunsInPod(t *testing.T) {
	t.Parallel()
	network := netnstest.New(t)
	pod := network.AddNode("worker").AddPod("shell")
	out, err := pod.Command(context.Background(), "ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr in pod: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "inet 10.244.0.2/24") {
		t.Errorf("pod's eth0 = %q, want 10.244.0.2/24", out)
	}
	// Do runs Go code in the pod too.
	var ifaces []net.Interface
	if err := pod.Do(func() error { var err error; ifaces, err = net.Interfaces(); return err }); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifaces {
		names = append(names, i.Name)
	}
	if strings.Join(names, ",") != "lo,eth0" {
		t.Errorf("interfaces in pod = %v, want [lo eth0]", names)
	}
}

func TestCleanupRemovesNamespaces(t *testing.T) {
	var names []string
	t.Run("inner", func(t *testing.T) {
		network := netnstest.New(t)
		node := network.AddNode("worker")
		pod := node.AddPod("a")
		names = []string{network.Name, node.Name, pod.Name}
		for _, n := range names {
			if _, err := os.Stat("/var/run/netns/" + n); err != nil {
				t.Fatalf("namespace %s missing while in use: %v", n, err)
			}
		}
	})
	if len(names) == 0 {
		t.Skip("inner test skipped")
	}
	for _, n := range names {
		if _, err := os.Stat("/var/run/netns/" + n); !os.IsNotExist(err) {
			t.Errorf("namespace %s still exists after cleanup (stat: %v)", n, err)
		}
	}
}
