package ztunnelconfig

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"flag"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/dataplane/ztunnel/agent"
	"github.com/meshlab/meshlab/dataplane/ztunnel/configdump"
)

var update = flag.Bool("update", false, "rewrite golden files")

var (
	notBefore = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	now       = notBefore.Add(time.Hour)
)

// cert makes a certificate with a fixed serial and validity (keys differ per run; the tables do not show them).
func cert(t *testing.T, serial int64, life time.Duration) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), NotBefore: notBefore, NotAfter: notBefore.Add(life)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// bookinfoDump is a node's dump in the bookinfo setup: reviews behind a waypoint, sleep calling productpage.
func bookinfoDump(t *testing.T) configdump.Dump {
	ip := netip.MustParseAddr
	wl := func(name, sa, addr, node string, hbone bool) ztunnel.Workload {
		p := ztunnel.ProtocolNone
		if hbone {
			p = ztunnel.ProtocolHBONE
		}
		return ztunnel.Workload{UID: "Kubernetes//Pod/default/" + name, Name: name, Namespace: "default", ServiceAccount: sa, Node: node, IP: ip(addr), Protocol: p}
	}
	reviews := wl("reviews-v1-5b8d7c9f4-abcde", "bookinfo-reviews", "10.244.2.9", "meshlab-worker2", true)
	reviews.Waypoint = &ztunnel.GatewayAddress{Address: ip("10.96.12.7"), HBONEPort: 15008}
	cfg := ztunnel.Config{
		Workloads: []ztunnel.Workload{
			wl("sleep-7656cf8794-x2x4q", "sleep", "10.244.1.4", "meshlab-worker", true),
			wl("productpage-v1-d5789fdfb-7xkvc", "bookinfo-productpage", "10.244.1.5", "meshlab-worker", true),
			reviews,
			wl("waypoint-6f9d8b7c5-qwert", "waypoint", "10.244.2.10", "meshlab-worker2", false),
			wl("legacy", "default", "10.244.1.8", "meshlab-worker", false),
		},
		Services: []ztunnel.Service{
			{Name: "productpage", Namespace: "default", Hostname: "productpage.default.svc.cluster.local", VIPs: []netip.Addr{ip("10.96.45.1")},
				Ports: map[uint16]uint16{9080: 9080}, Endpoints: []string{"Kubernetes//Pod/default/productpage-v1-d5789fdfb-7xkvc"}},
			{Name: "reviews", Namespace: "default", Hostname: "reviews.default.svc.cluster.local", VIPs: []netip.Addr{ip("10.96.80.3")},
				Ports: map[uint16]uint16{9080: 0}, Endpoints: []string{"Kubernetes//Pod/default/reviews-v1-5b8d7c9f4-abcde", "Kubernetes//Pod/default/reviews-v2-gone"},
				Waypoint: &ztunnel.GatewayAddress{Address: ip("10.96.12.7"), HBONEPort: 15008}},
			{Name: "waypoint", Namespace: "default", Hostname: "waypoint.default.svc.cluster.local", VIPs: []netip.Addr{ip("10.96.12.7")},
				Ports: map[uint16]uint16{15008: 15008}, Endpoints: []string{"Kubernetes//Pod/default/waypoint-6f9d8b7c5-qwert"}},
		},
		Policies: []ztunnel.Policy{
			{Name: "productpage-viewer", Namespace: "default", Scope: ztunnel.ScopeWorkloadSelector, Action: ztunnel.ActionAllow,
				Rules: []ztunnel.Rule{{Principals: []string{"cluster.local/ns/default/sa/sleep"}}}},
			{Name: "deny-legacy", Namespace: "default", Scope: ztunnel.ScopeNamespace, Action: ztunnel.ActionDeny},
		},
	}
	root := cert(t, 1, 10*365*24*time.Hour)
	svid := func(id string, serial int64) *x509svid.SVID {
		return &x509svid.SVID{ID: spiffeid.RequireFromString(id), Certificates: []*x509.Certificate{cert(t, serial, 24*time.Hour)}}
	}
	return configdump.Build(configdump.Sources{
		Node: "meshlab-worker", Config: cfg, Now: now, Roots: []*x509.Certificate{root},
		SVIDs: []*x509svid.SVID{
			svid("spiffe://cluster.local/ns/default/sa/sleep", 0x5eed),
			svid("spiffe://cluster.local/ns/default/sa/bookinfo-productpage", 0xbeef),
		},
		Enrolled: []agent.Enrolment{
			{Namespace: "default", Name: "sleep-7656cf8794-x2x4q", WorkloadUID: "Kubernetes//Pod/default/sleep-7656cf8794-x2x4q"},
			{Namespace: "default", Name: "productpage-v1-d5789fdfb-7xkvc", WorkloadUID: "Kubernetes//Pod/default/productpage-v1-d5789fdfb-7xkvc"},
		},
		Connections: []ztunnel.Connection{
			{Workload: "default/sleep-7656cf8794-x2x4q", Direction: ztunnel.Outbound, Local: "10.244.1.4", Remote: "10.244.1.5:15008",
				RemoteTarget: "10.244.1.5:9080", Protocol: "HBONE", SrcIdentity: "spiffe://cluster.local/ns/default/sa/sleep",
				DstIdentity: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage", DstService: "productpage.default.svc.cluster.local", Start: now},
			{Workload: "default/productpage-v1-d5789fdfb-7xkvc", Direction: ztunnel.Inbound, Local: "10.244.1.5:15008", Remote: "10.244.1.4:41234",
				RemoteTarget: "10.244.1.5:9080", Protocol: "HBONE", Start: now},
			{Workload: "default/productpage-v1-d5789fdfb-7xkvc", Direction: ztunnel.Outbound, Local: "10.244.1.5", Remote: "10.244.2.10:15008",
				RemoteTarget: "10.96.80.3:9080", Protocol: "HBONE", Start: now},
		},
	})
}

func TestTablesGolden(t *testing.T) {
	d := bookinfoDump(t)
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dump.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ args []string }{
		{[]string{"workloads"}},
		{[]string{"services"}},
		{[]string{"policies"}},
		{[]string{"connections"}},
		{[]string{"certificates"}},
		{[]string{"workload"}}, // istioctl's singular, same table
		{[]string{"policies", "-o", "json"}},
		{[]string{"services", "-o", "yaml"}},
	}
	for _, tc := range cases {
		name := tc.args[0]
		if len(tc.args) > 1 {
			name += "." + tc.args[2]
		}
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &errOut}, Globals: &cliutil.Globals{}}
			cmd := NewCommand(env)
			cmd.SetArgs(append(tc.args, "--file", file))
			cmd.SetOut(&out)
			if err := cmd.Execute(); err != nil {
				t.Fatalf("ztunnel-config %v: %v (%s)", tc.args, err, errOut.String())
			}
			goldenName := name
			if name == "workload" {
				goldenName = "workloads"
			}
			golden := filepath.Join("testdata", goldenName+".golden")
			if *update && name != "workload" {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update): %v", err)
			}
			if out.String() != string(want) {
				t.Errorf("ztunnel-config %v =\n%s\nwant\n%s", tc.args, out.String(), want)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	cases := [][]string{
		{"routes", "--file", "x"},
		{"workloads", "--file", "x", "--pod", "y"},
		{"workloads", "--file", "x", "-o", "xml"},
		{},
	}
	for _, args := range cases {
		var out bytes.Buffer
		env := cliutil.Env{Logger: ui.NewLogger(&out, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &out}, Globals: &cliutil.Globals{}}
		cmd := NewCommand(env)
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		if err := cmd.Execute(); !cliutil.IsUsage(err) {
			t.Errorf("ztunnel-config %v = %v, want a usage error", args, err)
		}
	}
}
