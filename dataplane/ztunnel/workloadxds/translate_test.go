package workloadxds

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
)

// Builders for workload API resources, shared with the client test.

func ip(s string) []byte { return netip.MustParseAddr(s).AsSlice() }

func workload(ns, name, sa, addr, node string, hbone bool, services ...string) *workloadapi.Address {
	w := &workloadapi.Workload{Uid: "Kubernetes//Pod/" + ns + "/" + name, Name: name, Namespace: ns,
		ServiceAccount: sa, Node: node, Addresses: [][]byte{ip(addr)}}
	if hbone {
		w.TunnelProtocol = workloadapi.TunnelProtocol_HBONE
	}
	for _, s := range services {
		if w.Services == nil {
			w.Services = map[string]*workloadapi.PortList{}
		}
		w.Services[ns+"/"+s] = &workloadapi.PortList{Ports: []*workloadapi.Port{{ServicePort: 9080, TargetPort: 9080}}}
	}
	return &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: w}}
}

func service(ns, name, vip string, waypoint *workloadapi.GatewayAddress) *workloadapi.Address {
	return &workloadapi.Address{Type: &workloadapi.Address_Service{Service: &workloadapi.Service{
		Name: name, Namespace: ns, Hostname: name + "." + ns + ".svc.cluster.local",
		Addresses: []*workloadapi.NetworkAddress{{Address: ip(vip)}},
		Ports:     []*workloadapi.Port{{ServicePort: 9080, TargetPort: 9080}},
		Waypoint:  waypoint,
	}}}
}

func exact(s string) *security.StringMatch {
	return &security.StringMatch{MatchType: &security.StringMatch_Exact{Exact: s}}
}

func group(rules ...[]*security.Match) *security.Group {
	g := &security.Group{}
	for _, ms := range rules {
		g.Rules = append(g.Rules, &security.Rules{Matches: ms})
	}
	return g
}

func key(a *workloadapi.Address) string {
	if w := a.GetWorkload(); w != nil {
		return w.GetUid()
	}
	return a.GetService().GetNamespace() + "/" + a.GetService().GetHostname()
}

func addrMap(as ...*workloadapi.Address) map[string]*workloadapi.Address {
	m := map[string]*workloadapi.Address{}
	for _, a := range as {
		m[key(a)] = a
	}
	return m
}

func authzMap(as ...*security.Authorization) map[string]*security.Authorization {
	m := map[string]*security.Authorization{}
	for _, a := range as {
		m[a.Namespace+"/"+a.Name] = a
	}
	return m
}

func TestTranslate(t *testing.T) {
	sleepPrincipal := "cluster.local/ns/default/sa/sleep"
	cases := []struct {
		name     string
		addrs    map[string]*workloadapi.Address
		authz    map[string]*security.Authorization
		want     ztunnel.Config
		warnings []string // substrings, one per warning, in order
		err      string
	}{
		{
			name: "workloads and a service",
			addrs: addrMap(
				workload("default", "productpage-v1", "bookinfo-productpage", "10.244.1.5", "worker", true, "productpage.default.svc.cluster.local"),
				workload("default", "sleep", "", "10.244.1.6", "worker", false),
				service("default", "productpage", "10.96.0.20", nil),
			),
			want: ztunnel.Config{
				Workloads: []ztunnel.Workload{
					{UID: "Kubernetes//Pod/default/productpage-v1", Name: "productpage-v1", Namespace: "default", ServiceAccount: "bookinfo-productpage",
						Node: "worker", IP: netip.MustParseAddr("10.244.1.5"), Protocol: ztunnel.ProtocolHBONE},
					{UID: "Kubernetes//Pod/default/sleep", Name: "sleep", Namespace: "default", ServiceAccount: "default",
						Node: "worker", IP: netip.MustParseAddr("10.244.1.6"), Protocol: ztunnel.ProtocolNone},
				},
				Services: []ztunnel.Service{{Name: "productpage", Namespace: "default", Hostname: "productpage.default.svc.cluster.local",
					VIPs: []netip.Addr{netip.MustParseAddr("10.96.0.20")}, Ports: map[uint16]uint16{9080: 9080},
					Endpoints: []string{"Kubernetes//Pod/default/productpage-v1"}}},
			},
		},
		{
			name: "waypoint by hostname resolves to its VIP; an unknown one fails closed",
			addrs: addrMap(
				service("default", "waypoint", "10.96.0.99", nil),
				service("default", "reviews", "10.96.0.30", &workloadapi.GatewayAddress{HboneMtlsPort: 15008,
					Destination: &workloadapi.GatewayAddress_Hostname{Hostname: &workloadapi.NamespacedHostname{Namespace: "default", Hostname: "waypoint.default.svc.cluster.local"}}}),
				service("default", "ratings", "10.96.0.31", &workloadapi.GatewayAddress{HboneMtlsPort: 15008,
					Destination: &workloadapi.GatewayAddress_Hostname{Hostname: &workloadapi.NamespacedHostname{Namespace: "default", Hostname: "gone.default.svc.cluster.local"}}}),
			),
			want: ztunnel.Config{Services: []ztunnel.Service{
				{Name: "ratings", Namespace: "default", Hostname: "ratings.default.svc.cluster.local", VIPs: []netip.Addr{netip.MustParseAddr("10.96.0.31")},
					Ports: map[uint16]uint16{9080: 9080}, Waypoint: &ztunnel.GatewayAddress{HBONEPort: 15008}},
				{Name: "reviews", Namespace: "default", Hostname: "reviews.default.svc.cluster.local", VIPs: []netip.Addr{netip.MustParseAddr("10.96.0.30")},
					Ports: map[uint16]uint16{9080: 9080}, Waypoint: &ztunnel.GatewayAddress{Address: netip.MustParseAddr("10.96.0.99"), HBONEPort: 15008}},
				{Name: "waypoint", Namespace: "default", Hostname: "waypoint.default.svc.cluster.local", VIPs: []netip.Addr{netip.MustParseAddr("10.96.0.99")},
					Ports: map[uint16]uint16{9080: 9080}},
			}},
			warnings: []string{"service default/ratings.default.svc.cluster.local: waypoint default/gone.default.svc.cluster.local is not a known service"},
		},
		{
			name: "named target port taken from the endpoints",
			addrs: func() map[string]*workloadapi.Address {
				s := service("default", "details", "10.96.0.40", nil)
				s.GetService().Ports[0].TargetPort = 0
				w := workload("default", "details-v1", "details", "10.244.2.7", "worker2", true, "details.default.svc.cluster.local")
				w.GetWorkload().Services["default/details.default.svc.cluster.local"].Ports[0].TargetPort = 8080
				return addrMap(s, w)
			}(),
			want: ztunnel.Config{
				Workloads: []ztunnel.Workload{{UID: "Kubernetes//Pod/default/details-v1", Name: "details-v1", Namespace: "default", ServiceAccount: "details",
					Node: "worker2", IP: netip.MustParseAddr("10.244.2.7"), Protocol: ztunnel.ProtocolHBONE}},
				Services: []ztunnel.Service{{Name: "details", Namespace: "default", Hostname: "details.default.svc.cluster.local",
					VIPs: []netip.Addr{netip.MustParseAddr("10.96.0.40")}, Ports: map[uint16]uint16{9080: 8080},
					Endpoints: []string{"Kubernetes//Pod/default/details-v1"}}},
			},
		},
		{
			name: "policies: groups distribute into ORed rules",
			authz: authzMap(
				// from: [sleep principal, namespace istio-system] AND to: [port 9080]
				&security.Authorization{Name: "allow-sleep", Namespace: "default", Scope: security.Scope_WORKLOAD_SELECTOR, Action: security.Action_ALLOW,
					Groups: []*security.Group{group(
						[]*security.Match{{Principals: []*security.StringMatch{exact(sleepPrincipal)}}, {Namespaces: []*security.StringMatch{exact("istio-system")}}},
						[]*security.Match{{DestinationPorts: []uint32{9080}}},
					)}},
				// rules: [{}] allows everything
				&security.Authorization{Name: "allow-all", Namespace: "default", Scope: security.Scope_NAMESPACE, Groups: []*security.Group{{}}},
				// no rules: allows nothing
				&security.Authorization{Name: "allow-nothing", Namespace: "mesh", Scope: security.Scope_GLOBAL},
				&security.Authorization{Name: "deny-prefix", Namespace: "default", Scope: security.Scope_NAMESPACE, Action: security.Action_DENY,
					Groups: []*security.Group{group([]*security.Match{{
						Namespaces:    []*security.StringMatch{{MatchType: &security.StringMatch_Prefix{Prefix: "test-"}}},
						NotPrincipals: []*security.StringMatch{{MatchType: &security.StringMatch_Suffix{Suffix: "/sa/admin"}}},
						NotNamespaces: []*security.StringMatch{{MatchType: &security.StringMatch_Presence{Presence: &emptypb.Empty{}}}},
					}})}},
			),
			want: ztunnel.Config{Policies: []ztunnel.Policy{
				{Name: "allow-all", Namespace: "default", Scope: ztunnel.ScopeNamespace, Action: ztunnel.ActionAllow, Rules: []ztunnel.Rule{{}}},
				{Name: "allow-sleep", Namespace: "default", Scope: ztunnel.ScopeWorkloadSelector, Action: ztunnel.ActionAllow, Rules: []ztunnel.Rule{
					{Principals: []string{sleepPrincipal}, Ports: []uint16{9080}},
					{Namespaces: []string{"istio-system"}, Ports: []uint16{9080}},
				}},
				{Name: "deny-prefix", Namespace: "default", Scope: ztunnel.ScopeNamespace, Action: ztunnel.ActionDeny, Rules: []ztunnel.Rule{
					{Namespaces: []string{"test-*"}, NotPrincipals: []string{"*/sa/admin"}, NotNamespaces: []string{"*"}},
				}},
				{Name: "allow-nothing", Namespace: "mesh", Scope: ztunnel.ScopeGlobal, Action: ztunnel.ActionAllow},
			}},
		},
		{
			name: "policies: overlapping fields AND exactly, IP blocks fail closed, dry runs are skipped",
			authz: authzMap(
				&security.Authorization{Name: "ports", Namespace: "a", Scope: security.Scope_NAMESPACE, Groups: []*security.Group{group(
					[]*security.Match{{DestinationPorts: []uint32{80, 9080}, NotDestinationPorts: []uint32{1}}},
					[]*security.Match{{DestinationPorts: []uint32{9080, 443}, NotDestinationPorts: []uint32{2}}, {DestinationPorts: []uint32{22}}},
				)}},
				&security.Authorization{Name: "principals", Namespace: "a", Scope: security.Scope_NAMESPACE, Groups: []*security.Group{group(
					[]*security.Match{{Principals: []*security.StringMatch{{MatchType: &security.StringMatch_Prefix{Prefix: "cluster.local/ns/default/"}}}}},
					[]*security.Match{{Principals: []*security.StringMatch{exact(sleepPrincipal), exact("cluster.local/ns/other/sa/x")}}},
				)}},
				&security.Authorization{Name: "ipblocks-allow", Namespace: "b", Scope: security.Scope_NAMESPACE, Groups: []*security.Group{group(
					[]*security.Match{{SourceIps: []*security.Address{{Address: ip("10.0.0.0"), Length: 8}}, DestinationPorts: []uint32{9080}}},
				)}},
				&security.Authorization{Name: "ipblocks-deny", Namespace: "b", Scope: security.Scope_NAMESPACE, Action: security.Action_DENY, Groups: []*security.Group{group(
					[]*security.Match{{SourceIps: []*security.Address{{Address: ip("10.0.0.0"), Length: 8}}, DestinationPorts: []uint32{9080}}},
				)}},
				&security.Authorization{Name: "dry", Namespace: "b", Scope: security.Scope_NAMESPACE, Action: security.Action_DENY, DryRun: true, Groups: []*security.Group{{}}},
			),
			want: ztunnel.Config{Policies: []ztunnel.Policy{
				{Name: "ports", Namespace: "a", Scope: ztunnel.ScopeNamespace, Action: ztunnel.ActionAllow, Rules: []ztunnel.Rule{
					{Ports: []uint16{9080}, NotPorts: []uint16{1, 2}}, // {80,9080} AND {9080,443}; {80,9080} AND {22} never matches
				}},
				{Name: "principals", Namespace: "a", Scope: ztunnel.ScopeNamespace, Action: ztunnel.ActionAllow, Rules: []ztunnel.Rule{
					{Principals: []string{sleepPrincipal}},
				}},
				{Name: "ipblocks-allow", Namespace: "b", Scope: ztunnel.ScopeNamespace, Action: ztunnel.ActionAllow},
				{Name: "ipblocks-deny", Namespace: "b", Scope: ztunnel.ScopeNamespace, Action: ztunnel.ActionDeny, Rules: []ztunnel.Rule{{Ports: []uint16{9080}}}},
			}},
			warnings: []string{"b/dry is a dry run", "b/ipblocks-allow: an ALLOW match on IP blocks", "b/ipblocks-deny: a DENY match on IP blocks is enforced without them"},
		},
		{
			name:  "an address of 5 bytes",
			addrs: map[string]*workloadapi.Address{"x": {Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{Uid: "x", Addresses: [][]byte{{1, 2, 3, 4, 5}}}}}},
			err:   "workload x: address of 5 bytes",
		},
		{
			name:  "a workload without uid",
			addrs: map[string]*workloadapi.Address{"x": {Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{Name: "p", Namespace: "n"}}}},
			err:   "workload n/p has no uid",
		},
		{
			name:  "an empty address",
			addrs: map[string]*workloadapi.Address{"x": {}},
			err:   `address "x" is neither`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings, err := Translate(tc.addrs, tc.authz)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Translate() error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Translate() = %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Translate() =\n%+v\nwant\n%+v", got, tc.want)
			}
			if len(warnings) != len(tc.warnings) {
				t.Fatalf("warnings = %q, want %d", warnings, len(tc.warnings))
			}
			for i, w := range tc.warnings {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, warnings[i], w)
				}
			}
		})
	}
}
