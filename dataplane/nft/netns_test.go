package nft_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/meshlab/meshlab/dataplane/capture"
	"github.com/meshlab/meshlab/dataplane/netnstest"
	"github.com/meshlab/meshlab/dataplane/nft"
)

// noBinaries empties PATH for the rest of the test: nothing may exec iptables, nft or ip from here on.
func noBinaries(t *testing.T) { t.Setenv("PATH", t.TempDir()) }

// serve answers every connection on l with "tag original-destination".
func serve(t *testing.T, l net.Listener, tag string) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			dst, err := capture.OriginalDst(c)
			if err != nil {
				fmt.Fprintf(c, "%s error %v\n", tag, err)
			} else {
				fmt.Fprintf(c, "%s %s\n", tag, dst)
			}
			c.Close()
		}
	}()
}

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
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// TestReplaceInNamespace installs a table exercising port sets and ranges, prefixes, fib local, owner and
// mark matches, checks where connections land (with their original destination intact), that replacing
// twice leaves exactly one copy, and that other tables are never touched.
func TestReplaceInNamespace(t *testing.T) {
	netnstest.Skip(t)
	network := netnstest.New(t)
	pod := network.AddNode("worker").AddPod("pod")
	for port, tag := range map[int]string{9001: "set", 9002: "range", 9003: "prefix", 9004: "local", 9009: "rest"} {
		l, err := pod.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		serve(t, l, tag)
	}
	// Someone else's table, which must survive everything below.
	other := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "other"}
	c, err := nftables.New(nftables.WithNetNSFd(int(pod.Handle)))
	if err != nil {
		t.Fatal(err)
	}
	c.AddTable(other)
	c.AddChain(&nftables.Chain{Table: other, Name: "keep"})
	if err := c.Flush(); err != nil {
		t.Fatalf("adding the other table: %v", err)
	}
	noBinaries(t)

	tcp := nft.Proto{Name: "tcp"}
	table := &nft.Table{Family: nft.IPv4, Name: "meshlab-test", Chains: []*nft.Chain{
		{Name: "output", Type: nft.TypeNAT, Hook: nft.Output, Priority: nft.PriorityDstNAT, Rules: []nft.Rule{
			{nft.Mark{Value: 0x539, Mask: 0xfff}, nft.Return},
			{nft.Addr{Prefix: netip.MustParsePrefix("127.0.0.0/8")}, nft.Return},
			{tcp, nft.Jump("CAPTURE")},
		}},
		{Name: "CAPTURE", Rules: []nft.Rule{
			{nft.Port{Ports: []nft.PortRange{{81, 81}, {82, 82}}}, nft.Redirect{Port: 9001}},
			{nft.Port{Ports: []nft.PortRange{{1000, 1010}}}, nft.Redirect{Port: 9002}},
			{nft.Addr{Prefix: netip.MustParsePrefix("10.99.0.0/16")}, nft.Port{Ports: []nft.PortRange{{80, 80}}},
				nft.Owner{ID: 0}, nft.Redirect{Port: 9003}},
			{nft.LocalDst{}, nft.Port{Ports: []nft.PortRange{{7000, 7000}}}, nft.Redirect{Port: 9004}},
			{nft.Iface{Output: true, Name: "lo"}, nft.Accept},
			{tcp, nft.Redirect{Port: 9009}},
		}},
	}}
	for i := range 2 {
		if err := nft.Replace(pod.Handle, table); err != nil {
			t.Fatalf("Replace #%d = %v", i, err)
		}
	}
	got, err := nft.List(pod.Handle, nft.IPv4, "meshlab-test")
	if err != nil || got == nil {
		t.Fatalf("List() = %v, %v", got, err)
	}
	if got.String() != table.String() {
		t.Errorf("after two Replace the kernel holds:\n%s\nwant:\n%s", got, table)
	}

	for _, tc := range []struct{ addr, want string }{
		{"10.1.2.3:81", "set 10.1.2.3:81"},
		{"10.1.2.3:82", "set 10.1.2.3:82"},
		{"10.1.2.3:1005", "range 10.1.2.3:1005"},
		{"10.1.2.3:1011", "rest 10.1.2.3:1011"},
		{"10.99.3.4:80", "prefix 10.99.3.4:80"},
		{"10.98.3.4:80", "rest 10.98.3.4:80"},
		{pod.Addr(7000), "local " + pod.Addr(7000)}, // the pod's own address (routed via lo: accepted after)
		{"10.1.2.3:7000", "rest 10.1.2.3:7000"},
	} {
		if got := ask(t, pod, tc.addr); got != tc.want {
			t.Errorf("dial %s: got %q, want %q", tc.addr, got, tc.want)
		}
	}

	for i := range 2 {
		if err := nft.Delete(pod.Handle, table); err != nil {
			t.Fatalf("Delete #%d = %v", i, err)
		}
	}
	if got, err := nft.List(pod.Handle, nft.IPv4, "meshlab-test"); err != nil || got != nil {
		t.Errorf("List() after Delete = %v, %v", got, err)
	}
	if o, err := nft.List(pod.Handle, nft.IPv4, "other"); err != nil || o == nil || o.Chain("keep") == nil {
		t.Errorf("the other table was touched: %v, %v", o, err)
	}
	if got := ask(t, pod, "10.1.2.3:81"); !strings.HasPrefix(got, "dial error") {
		t.Errorf("after Delete, dial 10.1.2.3:81 = %q, want no capture", got)
	}
}

// TestReplaceIsAtomic checks that a batch the kernel rejects changes nothing: the previous table stays.
func TestReplaceIsAtomic(t *testing.T) {
	netnstest.Skip(t)
	pod := netnstest.New(t).AddNode("worker").AddPod("pod")
	good := &nft.Table{Family: nft.IPv4, Name: "meshlab-test", Chains: []*nft.Chain{
		{Name: "output", Type: nft.TypeNAT, Hook: nft.Output, Priority: nft.PriorityDstNAT, Rules: []nft.Rule{{nft.Proto{Name: "tcp"}, nft.Redirect{Port: 9001}}}},
	}}
	if err := nft.Replace(pod.Handle, good); err != nil {
		t.Fatal(err)
	}
	// tproxy is only valid in prerouting: the kernel refuses the whole batch.
	bad := &nft.Table{Family: nft.IPv4, Name: "meshlab-test", Chains: []*nft.Chain{
		{Name: "output", Type: nft.TypeFilter, Hook: nft.Output, Priority: nft.PriorityMangle, Rules: []nft.Rule{{nft.Proto{Name: "tcp"}, nft.TProxy{Port: 9001}}}},
	}}
	if err := nft.Replace(pod.Handle, bad); err == nil {
		t.Fatal("Replace(tproxy in output) succeeded")
	}
	got, err := nft.List(pod.Handle, nft.IPv4, "meshlab-test")
	if err != nil || got == nil || got.String() != good.String() {
		t.Errorf("after a rejected Replace the table is %v (%v), want the previous one:\n%s", got, err, good)
	}
	if got, err := nft.List(netns.None(), nft.IPv4, "meshlab-test"); err != nil || got != nil {
		t.Errorf("the test's own namespace has the table: %v, %v", got, err)
	}

	// Sync replaces the tables it is given and deletes the other owned ones, in one batch.
	second := &nft.Table{Family: nft.IPv4, Name: "meshlab-second", Chains: good.Chains}
	owned := []*nft.Table{{Family: nft.IPv4, Name: "meshlab-test"}, {Family: nft.IPv4, Name: "meshlab-second"}}
	if err := nft.Sync(pod.Handle, owned, []*nft.Table{second}); err != nil {
		t.Fatalf("Sync() = %v", err)
	}
	if got, err := nft.List(pod.Handle, nft.IPv4, "meshlab-test"); err != nil || got != nil {
		t.Errorf("Sync() kept the table it no longer wants: %v, %v", got, err)
	}
	if got, err := nft.List(pod.Handle, nft.IPv4, "meshlab-second"); err != nil || got == nil || got.String() != second.String() {
		t.Errorf("Sync() installed %v, %v; want:\n%s", got, err, second)
	}
}
