package ztunnel

import (
	"net/netip"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var (
	ipSleep    = netip.MustParseAddr("10.244.0.2")
	ipReviews1 = netip.MustParseAddr("10.244.1.2")
	ipReviews2 = netip.MustParseAddr("10.244.1.3")
	ipWaypoint = netip.MustParseAddr("10.244.2.2")
	ipLegacy   = netip.MustParseAddr("10.244.0.9")
	vipReviews = netip.MustParseAddr("10.96.0.20")
	vipWP      = netip.MustParseAddr("10.96.0.99")
	vipPlain   = netip.MustParseAddr("10.96.0.30")
)

func testIndex(t *testing.T) *index {
	t.Helper()
	ix, err := buildIndex(Config{
		Workloads: []Workload{
			{UID: "sleep", Name: "sleep", Namespace: "default", ServiceAccount: "sleep", IP: ipSleep, Protocol: ProtocolHBONE},
			{UID: "reviews-1", Name: "reviews-1", Namespace: "bookinfo", ServiceAccount: "reviews", IP: ipReviews1, Protocol: ProtocolHBONE},
			{UID: "reviews-2", Name: "reviews-2", Namespace: "bookinfo", ServiceAccount: "reviews", IP: ipReviews2, Protocol: ProtocolHBONE,
				Waypoint: &GatewayAddress{Address: vipWP}},
			{UID: "wp", Name: "waypoint", Namespace: "bookinfo", ServiceAccount: "waypoint", IP: ipWaypoint, Protocol: ProtocolHBONE},
			{UID: "legacy", Name: "legacy", Namespace: "default", ServiceAccount: "legacy", IP: ipLegacy},
		},
		Services: []Service{
			{Name: "reviews", Namespace: "bookinfo", Hostname: "reviews.bookinfo.svc.cluster.local", VIPs: []netip.Addr{vipReviews},
				Ports: map[uint16]uint16{9080: 9081}, Endpoints: []string{"reviews-1", "reviews-1"}},
			{Name: "waypoint", Namespace: "bookinfo", VIPs: []netip.Addr{vipWP}, Endpoints: []string{"wp"}},
			{Name: "plain", Namespace: "bookinfo", Hostname: "plain.bookinfo.svc.cluster.local", VIPs: []netip.Addr{vipPlain},
				Endpoints: []string{"reviews-1"}, Waypoint: &GatewayAddress{Address: vipWP}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestResolve(t *testing.T) {
	ix := testIndex(t)
	wpID := "spiffe://cluster.local/ns/bookinfo/sa/waypoint"
	reviewsID := "spiffe://cluster.local/ns/bookinfo/sa/reviews"
	for _, tc := range []struct {
		name       string
		src        string
		dst        string
		wantHBONE  bool
		wantProxy  string
		wantTarget string
		wantExpect string
		wantErr    bool
	}{
		{"pod IP, HBONE workload", "sleep", "10.244.1.2:9080", true, "10.244.1.2:15008", "10.244.1.2:9080", reviewsID, false},
		{"service VIP resolved to endpoint and target port", "sleep", "10.96.0.20:9080", true, "10.244.1.2:15008", "10.244.1.2:9081", reviewsID, false},
		{"unknown service port", "sleep", "10.96.0.20:80", false, "", "", "", true},
		{"workload with waypoint goes to waypoint", "sleep", "10.244.1.3:9080", true, "10.244.2.2:15008", "10.244.1.3:9080", wpID, false},
		{"service with waypoint keeps the VIP as target", "sleep", "10.96.0.30:9080", true, "10.244.2.2:15008", "10.96.0.30:9080", wpID, false},
		{"the waypoint itself goes direct", "wp", "10.244.1.3:9080", true, "10.244.1.3:15008", "10.244.1.3:9080", reviewsID, false},
		{"non-mesh workload is passthrough", "sleep", "10.244.0.9:80", false, "10.244.0.9:80", "", "", false},
		{"unknown address is passthrough", "sleep", "192.0.2.1:443", false, "192.0.2.1:443", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, err := ix.resolve(ix.byUID[tc.src], netip.MustParseAddrPort(tc.dst))
			if (err != nil) != tc.wantErr {
				t.Fatalf("resolve() error = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			var expect string
			if !rt.expect.IsZero() {
				expect = rt.expect.String()
			}
			if rt.hbone != tc.wantHBONE || rt.proxyAddr != tc.wantProxy || rt.target != tc.wantTarget || expect != tc.wantExpect {
				t.Errorf("resolve() = hbone %v proxy %s target %s expect %s, want %v %s %s %s",
					rt.hbone, rt.proxyAddr, rt.target, expect, tc.wantHBONE, tc.wantProxy, tc.wantTarget, tc.wantExpect)
			}
		})
	}
}

func TestRoundRobin(t *testing.T) {
	ix, err := buildIndex(Config{
		Workloads: []Workload{
			{UID: "a", Namespace: "ns", ServiceAccount: "a", IP: ipReviews1, Protocol: ProtocolHBONE},
			{UID: "b", Namespace: "ns", ServiceAccount: "b", IP: ipReviews2, Protocol: ProtocolHBONE},
		},
		Services: []Service{{Name: "s", Namespace: "ns", VIPs: []netip.Addr{vipReviews}, Endpoints: []string{"a", "gone", "b"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for range 100 {
		rt, err := ix.resolve(nil, netip.AddrPortFrom(vipReviews, 80))
		if err != nil {
			t.Fatal(err)
		}
		counts[rt.dst.UID]++
	}
	if counts["a"] < 40 || counts["b"] < 40 || len(counts) != 2 {
		t.Errorf("endpoint picks = %v, want a and b about evenly, never the unknown one", counts)
	}
}

func TestAuthorize(t *testing.T) {
	sleep := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/sleep")
	other := spiffeid.RequireFromString("spiffe://cluster.local/ns/other/sa/client")
	dst := &Workload{UID: "httpbin", Namespace: "default", AuthorizationPolicies: []string{"default/allow-sleep-8080"}}
	allowSleep := Policy{Name: "allow-sleep-8080", Namespace: "default", Scope: ScopeWorkloadSelector, Action: ActionAllow,
		Rules: []Rule{{Principals: []string{"cluster.local/ns/default/sa/sleep"}, Ports: []uint16{8080}}}}
	for _, tc := range []struct {
		name     string
		policies []Policy
		peer     spiffeid.ID
		port     uint16
		allowed  bool
	}{
		{"no policies allow everything", nil, other, 80, true},
		{"no policies allow plaintext", nil, spiffeid.ID{}, 80, true},
		{"allow by principal and port", []Policy{allowSleep}, sleep, 8080, true},
		{"allow policy, wrong port", []Policy{allowSleep}, sleep, 9090, false},
		{"allow policy, other principal", []Policy{allowSleep}, other, 8080, false},
		{"allow policy, plaintext", []Policy{allowSleep}, spiffeid.ID{}, 8080, false},
		{"workload policy not selecting this workload does not apply", []Policy{{Name: "x", Namespace: "default",
			Scope: ScopeWorkloadSelector, Action: ActionAllow, Rules: []Rule{{}}}}, other, 80, true},
		{"deny wins over allow", []Policy{allowSleep, {Name: "deny", Namespace: "default", Scope: ScopeNamespace,
			Action: ActionDeny, Rules: []Rule{{Namespaces: []string{"default"}}}}}, sleep, 8080, false},
		{"namespace deny in another namespace does not apply", []Policy{{Name: "deny", Namespace: "other", Scope: ScopeNamespace,
			Action: ActionDeny, Rules: []Rule{{}}}}, sleep, 8080, true},
		{"global deny by namespace", []Policy{{Name: "deny-other", Namespace: "istio-system", Scope: ScopeGlobal,
			Action: ActionDeny, Rules: []Rule{{Namespaces: []string{"other"}}}}}, other, 80, false},
		{"deny with notPrincipals spares the listed", []Policy{{Name: "d", Namespace: "default", Scope: ScopeNamespace,
			Action: ActionDeny, Rules: []Rule{{NotPrincipals: []string{"cluster.local/ns/default/*"}}}}}, sleep, 80, true},
		{"deny with notPrincipals hits the rest", []Policy{{Name: "d", Namespace: "default", Scope: ScopeNamespace,
			Action: ActionDeny, Rules: []Rule{{NotPrincipals: []string{"cluster.local/ns/default/*"}}}}}, other, 80, false},
		{"allow with no rules allows nothing", []Policy{{Name: "a", Namespace: "default", Scope: ScopeNamespace,
			Action: ActionAllow}}, sleep, 80, false},
		{"allow with empty rule allows all", []Policy{{Name: "a", Namespace: "default", Scope: ScopeNamespace,
			Action: ActionAllow, Rules: []Rule{{}}}}, sleep, 80, true},
		{"notPorts", []Policy{{Name: "a", Namespace: "default", Scope: ScopeNamespace,
			Action: ActionDeny, Rules: []Rule{{NotPorts: []uint16{8080}}}}}, sleep, 22, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix, err := buildIndex(Config{Policies: tc.policies})
			if err != nil {
				t.Fatal(err)
			}
			err = ix.authorize(dst, connInfo{peer: tc.peer, dstPort: tc.port})
			if (err == nil) != tc.allowed {
				t.Errorf("authorize() = %v, want allowed=%v", err, tc.allowed)
			}
		})
	}
}
