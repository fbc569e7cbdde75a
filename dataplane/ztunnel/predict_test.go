package ztunnel

import (
	"net/netip"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestPredictor: the outbound plan names the waypoint workload the tunnel goes to, and Authorize reports
// the deciding policy and rule as the proxy's authorization decides them.
func TestPredictor(t *testing.T) {
	ix := testIndex(t)
	cfg := Config{}
	for _, w := range ix.byUID {
		cfg.Workloads = append(cfg.Workloads, *w)
	}
	for _, s := range ix.byVIP {
		cfg.Services = append(cfg.Services, *s.Service)
	}
	cfg.Policies = []Policy{
		{Name: "deny-sleep", Namespace: "bookinfo", Scope: ScopeNamespace, Action: ActionDeny,
			Rules: []Rule{{Ports: []uint16{1}}, {Principals: []string{"cluster.local/ns/default/sa/sleep"}, Ports: []uint16{9090}}}},
		{Name: "allow-default", Namespace: "bookinfo", Scope: ScopeNamespace, Action: ActionAllow,
			Rules: []Rule{{Namespaces: []string{"default"}}}},
	}
	p, err := NewPredictor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := p.Outbound(ipSleep, netip.AddrPortFrom(vipPlain, 9080))
	if err != nil {
		t.Fatal(err)
	}
	if !plan.HBONE || plan.Waypoint == nil || plan.Waypoint.UID != "wp" || plan.Service == nil || plan.Service.Name != "plain" ||
		plan.ProxyAddr != "10.244.2.2:15008" || plan.Expect != "spiffe://cluster.local/ns/bookinfo/sa/waypoint" {
		t.Errorf("plan through the waypoint = %+v", plan)
	}
	plan, err = p.Outbound(ipSleep, netip.AddrPortFrom(ipReviews1, 9080))
	if err != nil || plan.Waypoint != nil || plan.Destination == nil || plan.Destination.UID != "reviews-1" {
		t.Errorf("plan to a pod = %+v, %v", plan, err)
	}
	if eps := p.Endpoints(p.Service(vipReviews)); len(eps) != 2 || eps[0].UID != "reviews-1" {
		t.Errorf("endpoints = %v", eps)
	}

	sleep := "spiffe://cluster.local/ns/default/sa/sleep"
	for _, tc := range []struct {
		peer    string
		port    uint16
		allowed bool
		policy  string
		rule    int
	}{
		{sleep, 9090, false, "bookinfo/deny-sleep", 1},
		{sleep, 9080, true, "bookinfo/allow-default", 0},
		{"spiffe://cluster.local/ns/other/sa/x", 9080, false, "", -1},
		{"", 9080, false, "", -1},
	} {
		v, ok := p.Authorize(ipReviews1, tc.peer, tc.port)
		if !ok || v.Allowed != tc.allowed || v.Policy != tc.policy || v.Rule != tc.rule {
			t.Errorf("Authorize(%q, %d) = %+v, want allowed %v by %q rule %d", tc.peer, tc.port, v, tc.allowed, tc.policy, tc.rule)
		}
		// The proxy's own decision agrees.
		proxy := ix2(t, cfg)
		err := proxy.authorize(proxy.byIP[ipReviews1], connInfo{peer: mustID(tc.peer), dstPort: tc.port})
		if (err == nil) != tc.allowed {
			t.Errorf("authorize(%q, %d) = %v, predicted allowed %v", tc.peer, tc.port, err, tc.allowed)
		}
	}
	if _, ok := p.Authorize(netip.MustParseAddr("10.9.9.9"), sleep, 80); ok {
		t.Error("Authorize of an unknown address reported a verdict")
	}
}

func ix2(t *testing.T, cfg Config) *index {
	ix, err := buildIndex(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func mustID(s string) spiffeid.ID {
	if s == "" {
		return spiffeid.ID{}
	}
	return spiffeid.RequireFromString(s)
}
