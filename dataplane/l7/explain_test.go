package l7

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/meshlab/meshlab/dataplane/l7/l7test"
)

// TestExplainDecision: Table.Explain reports the chain and how it was selected, every route tried with
// why it did not match, the RBAC verdicts and the fault, and agrees with what Match picks.
func TestExplainDecision(t *testing.T) {
	productpage := "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
	svc := l7test.Service{FQDN: "reviews.default.svc.cluster.local", VIP: "10.96.10.13", Port: 9080,
		Routes: []*routev3.Route{
			l7test.PrefixRoute("ratings", "/ratings", "c3"),
			{Name: "jason", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{
				{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("jason")}}}}, Action: clusterAction("c2")},
			l7test.WithFault(l7test.WeightedRoute("split", "/", []string{"c1", "c2"}, []uint32{90, 10}), 0, 0, 503, 50),
		},
		Filters: []*hcmv3.HttpFilter{l7test.RBACFilter("DENY", map[string]*rbacconfigv3.Policy{
			"ns[default]-policy[no-admin]-rule[0]": l7test.Policy([]*rbacconfigv3.Principal{l7test.Principal(productpage)}, l7test.PathPrefix("/admin")),
		})},
	}
	table, err := Build(Config(l7test.Waypoint([]l7test.Service{svc}, []string{"c1", "c2", "c3"}, nil, nil)))
	if err != nil {
		t.Fatal(err)
	}
	d := Downstream{Listener: MainInternal, Peer: productpage, Destination: netip.MustParseAddrPort("10.96.10.13:9080")}

	r := httptest.NewRequest("GET", "http://reviews:9080/reviews/0", nil)
	r.Header.Set("End-User", "bob")
	dec := table.Explain(r, d)
	if dec.Chain == nil || dec.Chain.Name != svc.Name("") {
		t.Fatalf("chain = %+v", dec.Chain)
	}
	if got, want := dec.ChainMatch, []string{"filter_chain_matcher", "destination IP 10.96.10.13", "destination port 9080"}; len(got) != len(want) || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("chain match = %q, want %q", got, want)
	}
	if dec.RouteConfig != svc.Name("") || dec.VirtualHost != "inbound|http|9080" {
		t.Errorf("route config %q, virtual host %q", dec.RouteConfig, dec.VirtualHost)
	}
	wantWhy := []string{"path /reviews/0 does not start with /ratings", `header end-user: "bob" does not match exact jason`, ""}
	if len(dec.Checked) != len(wantWhy) {
		t.Fatalf("checked %d routes, want %d", len(dec.Checked), len(wantWhy))
	}
	for i, c := range dec.Checked {
		if c.Why != wantWhy[i] {
			t.Errorf("route %d (%s): why = %q, want %q", i, c.Route.Name, c.Why, wantWhy[i])
		}
	}
	if rt := table.RouteTableFor(dec.Chain.HTTP); dec.Route == nil || dec.Route != rt.Match(r) || dec.Route.Name != "split" {
		t.Errorf("route = %v, Match picks %v", dec.Route, rt.Match(r))
	}
	if dec.Denied || len(dec.RBAC) != 1 || !dec.RBAC[0].Allowed || !dec.RBAC[0].Deny {
		t.Errorf("rbac = %+v", dec.RBAC)
	}
	if dec.Fault == nil || dec.Fault.AbortStatus != 503 || Percent(dec.Fault.AbortPPM) != 50 {
		t.Errorf("fault = %+v", dec.Fault)
	}
	ch := table.Choices(dec.Route)
	if len(ch) != 2 || ch[0].Probability != 0.9 || ch[1].Probability != 0.1 || ch[0].Cluster == nil {
		t.Errorf("choices = %+v", ch)
	}

	admin := httptest.NewRequest("GET", "http://reviews:9080/admin", nil)
	dec = table.Explain(admin, d)
	if !dec.Denied || dec.RBAC[0].Policy != "ns[default]-policy[no-admin]-rule[0]" {
		t.Errorf("admin: denied %v, rbac %+v", dec.Denied, dec.RBAC)
	}

	other := table.Explain(r, Downstream{Listener: MainInternal, Destination: netip.MustParseAddrPort("10.96.10.99:9080")})
	if other.Chain != nil || len(other.ChainMatch) < 2 || other.ChainMatch[1] != "destination IP 10.96.10.99 matches no entry" {
		t.Errorf("unknown VIP: chain %v, match %q", other.Chain, other.ChainMatch)
	}
}
