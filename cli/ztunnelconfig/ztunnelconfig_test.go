package ztunnelconfig

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshlab/meshlab/internal/golden"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/dataplane/ztunnel/agent"
	"github.com/meshlab/meshlab/dataplane/ztunnel/configdump"
	"github.com/meshlab/meshlab/internal/istioctltest"
)

var notBefore = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

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

const (
	wpHost = "waypoint.default.svc.cluster.local"
	ppHost = "productpage.default.svc.cluster.local"
	rvHost = "reviews.default.svc.cluster.local"
)

func ip4(s string) []byte { return netip.MustParseAddr(s).AsSlice() }

func svcAddr(ip string) []*workloadapi.NetworkAddress {
	return []*workloadapi.NetworkAddress{{Address: ip4(ip)}}
}

func onPort(port, target uint32) *workloadapi.PortList {
	return &workloadapi.PortList{Ports: []*workloadapi.Port{{ServicePort: port, TargetPort: target}}}
}

// bookinfoDump is a node's dump in the bookinfo setup, built from workload API resources as meshlab's
// ztunnel builds it: reviews behind a waypoint (one of its endpoints unhealthy), sleep calling productpage.
func bookinfoDump(t *testing.T) configdump.Dump {
	wl := func(name, sa, addr, node string, hbone bool, services map[string]*workloadapi.PortList) *workloadapi.Address {
		w := &workloadapi.Workload{
			Uid: "Kubernetes//Pod/default/" + name, Name: name, Namespace: "default", ServiceAccount: sa, Node: node,
			Addresses: [][]byte{ip4(addr)}, Services: services, ClusterId: "Kubernetes", WorkloadName: strings.SplitN(name, "-", 2)[0],
			CanonicalName: strings.SplitN(name, "-", 2)[0], CanonicalRevision: "latest",
		}
		if hbone {
			w.TunnelProtocol = workloadapi.TunnelProtocol_HBONE
		}
		return &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: w}}
	}
	reviews := func(name string, unhealthy bool) *workloadapi.Address {
		a := wl(name, "bookinfo-reviews", map[bool]string{false: "10.244.2.9", true: "10.244.2.11"}[unhealthy], "meshlab-worker2", true,
			map[string]*workloadapi.PortList{"default/" + rvHost: onPort(9080, 9080)})
		a.GetWorkload().Waypoint = &workloadapi.GatewayAddress{
			Destination:   &workloadapi.GatewayAddress_Hostname{Hostname: &workloadapi.NamespacedHostname{Namespace: "default", Hostname: wpHost}},
			HboneMtlsPort: 15008,
		}
		if unhealthy {
			a.GetWorkload().Status = workloadapi.WorkloadStatus_UNHEALTHY
		}
		return a
	}
	svc := func(name, host, vip string, port, target uint32) *workloadapi.Service {
		return &workloadapi.Service{Name: name, Namespace: "default", Hostname: host, Addresses: svcAddr(vip),
			Ports: []*workloadapi.Port{{ServicePort: port, TargetPort: target}}}
	}
	rv := svc("reviews", rvHost, "10.96.80.3", 9080, 9080)
	rv.Waypoint = &workloadapi.GatewayAddress{
		Destination: &workloadapi.GatewayAddress_Address{Address: &workloadapi.NetworkAddress{Address: ip4("10.96.12.7")}}, HboneMtlsPort: 15008,
	}
	addrs := map[string]*workloadapi.Address{
		"sleep": wl("sleep-7656cf8794-x2x4q", "sleep", "10.244.1.4", "meshlab-worker", true, nil),
		"pp": wl("productpage-v1-d5789fdfb-7xkvc", "bookinfo-productpage", "10.244.1.5", "meshlab-worker", true,
			map[string]*workloadapi.PortList{"default/" + ppHost: onPort(9080, 9080)}),
		"rv1": reviews("reviews-v1-5b8d7c9f4-abcde", false),
		"rv2": reviews("reviews-v2-7d6b8c5f9-fghij", true),
		"wp": wl("waypoint-6f9d8b7c5-qwert", "waypoint", "10.244.2.10", "meshlab-worker2", false,
			map[string]*workloadapi.PortList{"default/" + wpHost: onPort(15008, 15008)}),
		"legacy": wl("legacy", "", "10.244.1.8", "meshlab-worker", false,
			map[string]*workloadapi.PortList{"default/ghost.default.svc.cluster.local": onPort(80, 8080)}),
		"svc-pp": {Type: &workloadapi.Address_Service{Service: svc("productpage", ppHost, "10.96.45.1", 9080, 9080)}},
		"svc-rv": {Type: &workloadapi.Address_Service{Service: rv}},
		"svc-wp": {Type: &workloadapi.Address_Service{Service: svc("waypoint", wpHost, "10.96.12.7", 15008, 15008)}},
	}
	exact := func(s string) *security.StringMatch {
		return &security.StringMatch{MatchType: &security.StringMatch_Exact{Exact: s}}
	}
	authz := map[string]*security.Authorization{
		"a": {Name: "productpage-viewer", Namespace: "default", Scope: security.Scope_WORKLOAD_SELECTOR, Action: security.Action_ALLOW,
			Groups: []*security.Group{{Rules: []*security.Rules{{Matches: []*security.Match{{Principals: []*security.StringMatch{exact("cluster.local/ns/default/sa/sleep")}}}}}}}},
		"b": {Name: "deny-legacy", Namespace: "default", Scope: security.Scope_NAMESPACE, Action: security.Action_DENY},
		"c": {Name: "mesh-wide", Namespace: "istio-system", Scope: security.Scope_GLOBAL, Action: security.Action_DENY,
			Groups: []*security.Group{{Rules: []*security.Rules{
				{Matches: []*security.Match{{NotNamespaces: []*security.StringMatch{{MatchType: &security.StringMatch_Presence{Presence: &emptypb.Empty{}}}}}}},
				{Matches: []*security.Match{{DestinationPorts: []uint32{15000}, SourceIps: []*security.Address{{Address: ip4("10.0.0.0"), Length: 8}}}}},
			}}}},
	}
	root := cert(t, 1, 100*365*24*time.Hour)
	svid := func(id string, serial int64, life time.Duration) *x509svid.SVID {
		return &x509svid.SVID{ID: spiffeid.RequireFromString(id), Certificates: []*x509.Certificate{cert(t, serial, life)}}
	}
	d := configdump.Build(configdump.Sources{
		Node: "meshlab-worker", Addresses: addrs, Authorizations: authz, Roots: []*x509.Certificate{root},
		SVIDs: []*x509svid.SVID{
			svid("spiffe://cluster.local/ns/default/sa/sleep", 0x5eed, 100*365*24*time.Hour),
			svid("spiffe://cluster.local/ns/default/sa/bookinfo-productpage", 0xbeef, 24*time.Hour), // expired
		},
		Enrolled: []agent.Enrolment{
			{Namespace: "default", Name: "sleep-7656cf8794-x2x4q", WorkloadUID: "Kubernetes//Pod/default/sleep-7656cf8794-x2x4q", PodUID: "0b5c7f2e-sleep"},
			{Namespace: "default", Name: "productpage-v1-d5789fdfb-7xkvc", WorkloadUID: "Kubernetes//Pod/default/productpage-v1-d5789fdfb-7xkvc", PodUID: "3d1e9a4b-pp"},
		},
		Connections: []ztunnel.Connection{
			{Workload: "default/sleep-7656cf8794-x2x4q", Direction: ztunnel.Outbound, SrcAddr: "10.244.1.4:41234", Local: "10.244.1.4",
				Remote: "10.244.1.5:15008", DstAddr: "10.96.45.1:9080", RemoteTarget: "10.244.1.5:9080", Protocol: "HBONE"},
			{Workload: "default/productpage-v1-d5789fdfb-7xkvc", Direction: ztunnel.Inbound, Local: "10.244.1.5:15008", Remote: "10.244.1.4:41234",
				RemoteTarget: "10.244.1.5:9080", Protocol: "HBONE"},
			{Workload: "default/productpage-v1-d5789fdfb-7xkvc", Direction: ztunnel.Outbound, SrcAddr: "10.244.1.5:50112", Local: "10.244.1.5",
				Remote: "10.244.2.10:15008", DstAddr: "10.96.80.3:9080", RemoteTarget: "10.96.80.3:9080", Protocol: "HBONE"},
			{Workload: "default/productpage-v1-d5789fdfb-7xkvc", Direction: ztunnel.Inbound, Local: "10.244.1.5:9080", Remote: "10.244.1.8:37000",
				Protocol: "TCP"},
		},
	})
	// States meshlab's ztunnel does not produce but real ztunnel dumps hold.
	d.Certificates = append(d.Certificates,
		configdump.Certificates{Identity: "spiffe://cluster.local/ns/default/sa/pending", State: "Initializing", CertChain: []configdump.Cert{}, RootCerts: []configdump.Cert{}},
		configdump.Certificates{Identity: "spiffe://cluster.local/ns/default/sa/gone", State: "Unavailable: the identity is no longer needed", CertChain: []configdump.Cert{}, RootCerts: []configdump.Cert{}})
	return d
}

func writeDump(t *testing.T, d configdump.Dump) string {
	t.Helper()
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "config_dump.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &errOut}, Globals: &cliutil.Globals{}}
	cmd := NewCommand(env)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	return out.String(), err
}

// The shape istioctl failed on: a service's endpoints are a map keyed by workload uid.
func TestDumpShape(t *testing.T) {
	d := bookinfoDump(t)
	b, _ := json.Marshal(d)
	var raw struct {
		Services []struct {
			Hostname  string                     `json:"hostname"`
			Endpoints map[string]json.RawMessage `json:"endpoints"`
		} `json:"services"`
		StagedServices map[string]map[string]json.RawMessage `json:"stagedServices"`
		WorkloadState  map[string]json.RawMessage            `json:"workloadState"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, s := range raw.Services {
		if s.Hostname == rvHost && (len(s.Endpoints) != 2 || s.Endpoints["Kubernetes//Pod/default/reviews-v1-5b8d7c9f4-abcde"] == nil) {
			t.Errorf("reviews endpoints = %v, want two keyed by workload uid", s.Endpoints)
		}
	}
	if raw.StagedServices["default/ghost.default.svc.cluster.local"]["Kubernetes//Pod/default/legacy"] == nil {
		t.Errorf("stagedServices = %v, want legacy's endpoint of the unknown ghost service", raw.StagedServices)
	}
	if raw.WorkloadState["3d1e9a4b-pp"] == nil || raw.WorkloadState["0b5c7f2e-sleep"] == nil {
		t.Errorf("workloadState keys = %v, want the pod uids", raw.WorkloadState)
	}
}

func TestTablesGolden(t *testing.T) {
	file := writeDump(t, bookinfoDump(t))
	cases := []struct {
		golden string
		args   []string
	}{
		{"workloads", []string{"workload"}},
		{"workloads", []string{"workloads"}},
		{"services", []string{"service"}},
		{"policies", []string{"policy"}},
		{"connections", []string{"connections"}},
		{"connections.raw", []string{"connections", "--raw"}},
		{"certificates", []string{"certificate"}},
		{"all", []string{"all"}},
		{"all.headers", []string{"all", "--with-headers"}},
		{"workloads.node", []string{"workload", "--workload-node", "meshlab-worker2"}},
		{"policies.json", []string{"policy", "-o", "json"}},
		{"services.yaml", []string{"service", "-o", "yaml"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := run(t, append(tc.args, "--file", file)...)
			if err != nil {
				t.Fatalf("ztunnel-config %v: %v", tc.args, err)
			}
			golden.CheckString(t, filepath.Join("testdata", tc.golden+".golden"), out)
		})
	}
}

// TestReadsIstioDump reads a dump of Istio's ztunnel of the older shape (maps keyed by address, the root
// at the end of the certificate chain), as istioctl still accepts.
func TestReadsIstioDump(t *testing.T) {
	const old = `{
  "workloads": {"/10.244.2.58": {"workloadIps": ["10.244.2.58"], "protocol": "HBONE", "uid": "Kubernetes//Pod/default/sleep-1",
    "name": "sleep-1", "namespace": "default", "serviceAccount": "sleep", "node": "w2", "status": "Healthy", "clusterId": "Kubernetes",
    "waypoint": {"destination": "/10.96.65.117", "port": 15008}}},
  "services": {"/10.96.65.117": {"name": "wp", "namespace": "default", "hostname": "wp.default.svc.cluster.local", "vips": ["/10.96.65.117"],
    "ports": {"15008": 15008}, "endpoints": {"Kubernetes//Pod/default/wp-1:/10.244.2.52": {"workloadUid": "Kubernetes//Pod/default/wp-1",
    "service": "default/wp.default.svc.cluster.local", "address": "/10.244.2.52", "port": {"15008": 15008}}}, "subjectAltNames": []}},
  "policies": [],
  "certificates": [{"identity": "spiffe://cluster.local/ns/default/sa/sleep", "state": "Available", "certChain": [
    {"pem": "", "serialNumber": "255", "validFrom": "2023-03-21T13:02:57Z", "expirationTime": "2033-03-22T13:04:57Z"},
    {"pem": "", "serialNumber": "16", "validFrom": "2022-03-21T13:04:49Z", "expirationTime": "2032-03-18T13:04:49Z"}]}],
  "workloadState": {}
}`
	file := filepath.Join(t.TempDir(), "old.json")
	os.WriteFile(file, []byte(old), 0o644)
	out, err := run(t, "workload", "--file", file)
	if err != nil || !strings.Contains(out, "default   sleep-1  10.244.2.58 w2   wp       HBONE") {
		t.Errorf("workload = %q, %v", out, err)
	}
	out, err = run(t, "service", "-f", file)
	if err != nil || !strings.Contains(out, "default   wp           10.96.65.117 None     0/1") {
		t.Errorf("service = %q, %v", out, err)
	}
	out, err = run(t, "certs", "-f", file)
	if err != nil || !strings.Contains(out, "Leaf") || !strings.Contains(out, "     Root     ") || !strings.Contains(out, "ff ") {
		t.Errorf("certificates = %q, %v", out, err)
	}
}

// A file that is no ztunnel dump (meshlab's earlier shape included) ends with exit code 2 and says why.
func TestNotADump(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"envoy.json":   `{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"}]}`,
		"text.txt":     "not json at all",
		"array.json":   `[1, 2]`,
		"earlier.json": `{"node": "n", "workloads": [], "services": [{"name": "s", "endpoints": ["Kubernetes//Pod/default/a"]}]}`,
	}
	for name, content := range cases {
		file := filepath.Join(dir, name)
		os.WriteFile(file, []byte(content), 0o644)
		_, err := run(t, "workload", "--file", file)
		var exit *cliutil.ExitError
		if !errors.As(err, &exit) || exit.Code != 2 || !strings.Contains(err.Error(), "not a ztunnel config dump") || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want exit 2 saying it is not a ztunnel config dump", name, err)
		}
	}
	if _, err := run(t, "workload", "--file", filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing file was read")
	}
}

func TestUsage(t *testing.T) {
	cases := [][]string{
		{"routes", "--file", "x"},
		{"workloads", "--file", "x", "--pod", "y"},
		{"workloads", "--pod", "x", "--node", "y"},
		{"workloads", "--file", "x", "-o", "xml"},
		{"connections", "--file", "x", "--direction", "sideways"},
		{},
	}
	for _, args := range cases {
		if _, err := run(t, args...); !cliutil.IsUsage(err) {
			t.Errorf("ztunnel-config %v = %v, want a usage error", args, err)
		}
	}
}

// TestSameAsIstioctl prints the fixture's dump with meshlab and with a real istioctl and wants the same
// bytes: every row, column, space and the order. It skips when no istioctl is built (see istioctltest).
func TestSameAsIstioctl(t *testing.T) {
	istioctltest.Path(t)
	file := writeDump(t, bookinfoDump(t))
	cases := [][]string{
		{"workload"},
		{"workload", "--workload-node", "meshlab-worker2"},
		{"service"},
		{"policy"},
		{"certificate"},
		{"connections"},
		{"connections", "--raw"},
		{"connections", "--direction", "inbound"},
		{"all"},
		{"all", "--with-headers"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			want, stderr, err := istioctltest.Run(t, append([]string{"ztunnel-config"}, append(args, "--file", file)...)...)
			if err != nil {
				t.Fatalf("istioctl ztunnel-config %v: %v\n%s", args, err, stderr)
			}
			got, err := run(t, append(args, "--file", file)...)
			if err != nil {
				t.Fatalf("meshlab ztunnel-config %v: %v", args, err)
			}
			if got != want {
				t.Errorf("meshlab ztunnel-config %v =\n%s\nistioctl prints\n%s", args, got, want)
			}
			if strings.Count(want, "\n") < 2 {
				t.Errorf("istioctl printed no rows:\n%s", want)
			}
		})
	}
	// istioctl decodes every part of the dump into its own types for -o json.
	for _, kind := range []string{"workload", "service", "policy", "certificate", "connections"} {
		out, stderr, err := istioctltest.Run(t, "ztunnel-config", kind, "-o", "json", "--file", file)
		if err != nil || !json.Valid([]byte(out)) || len(out) < 10 {
			t.Errorf("istioctl ztunnel-config %s -o json: %v %q\n%s", kind, err, out, stderr)
		}
	}
}
