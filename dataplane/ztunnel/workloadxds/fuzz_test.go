package workloadxds

import (
	"net/netip"
	"reflect"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
)

// deltaResponse is what the control plane sends ztunnel for one type: every resource, named as istiod names
// them.
func deltaResponse(t testing.TB, typeURL string, named map[string]proto.Message) []byte {
	resp := &discovery.DeltaDiscoveryResponse{TypeUrl: typeURL, Nonce: "1", SystemVersionInfo: "v1"}
	for name, m := range named {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		a.TypeUrl = typeURL
		resp.Resources = append(resp.Resources, &discovery.Resource{Name: name, Version: "1", Resource: a})
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzTranslate feeds ztunnel's workload-API translation the two Delta xDS responses it receives (Address
// and Authorization), as bytes. It must not panic; what it accepts ztunnel must be able to index (or
// reject with an error, never panic), and translating the same input twice gives the same config.
func FuzzTranslate(f *testing.F) {
	wp := &workloadapi.GatewayAddress{
		Destination:   &workloadapi.GatewayAddress_Address{Address: &workloadapi.NetworkAddress{Address: ip("10.0.0.9")}},
		HboneMtlsPort: 15008,
	}
	addrs := map[string]proto.Message{}
	for _, a := range []*workloadapi.Address{
		workload("default", "productpage", "bookinfo-productpage", "10.0.0.1", "node-a", true, "productpage.default.svc.cluster.local"),
		workload("default", "reviews-v1", "bookinfo-reviews", "10.0.0.2", "node-b", true, "reviews.default.svc.cluster.local"),
		workload("default", "waypoint", "waypoint", "10.0.0.9", "node-a", true),
		workload("legacy", "sleep", "sleep", "fd00::5", "node-b", false),
		service("default", "reviews", "10.96.0.2", wp),
		service("default", "productpage", "10.96.0.1", nil),
	} {
		addrs[key(a)] = a
	}
	ports := &security.Match{DestinationPorts: []uint32{9080}, NotDestinationPorts: []uint32{15020}}
	principals := &security.Match{Principals: []*security.StringMatch{exact("cluster.local/ns/default/sa/bookinfo-productpage"),
		{MatchType: &security.StringMatch_Prefix{Prefix: "cluster.local/ns/legacy/"}}}}
	blocks := &security.Match{SourceIps: []*security.Address{{Address: ip("10.0.0.0"), Length: 8}}, Namespaces: []*security.StringMatch{exact("default")}}
	authz := map[string]proto.Message{
		"default/allow-productpage": &security.Authorization{Name: "allow-productpage", Namespace: "default", Scope: security.Scope_WORKLOAD_SELECTOR,
			Action: security.Action_ALLOW, Groups: []*security.Group{group([]*security.Match{ports, principals})}},
		"istio-system/deny-blocks": &security.Authorization{Name: "deny-blocks", Namespace: "istio-system", Scope: security.Scope_GLOBAL,
			Action: security.Action_DENY, Groups: []*security.Group{group([]*security.Match{blocks}), group()}},
		"default/dry-run": &security.Authorization{Name: "dry-run", Namespace: "default", Scope: security.Scope_NAMESPACE, Action: security.Action_ALLOW, DryRun: true},
	}
	f.Add(deltaResponse(f, xdstype.Address, addrs), deltaResponse(f, xdstype.Authorization, authz))
	f.Add(deltaResponse(f, xdstype.Address, nil), deltaResponse(f, xdstype.Authorization, nil))
	f.Add(deltaResponse(f, xdstype.Address, map[string]proto.Message{"x": &workloadapi.Address{}}), []byte{})

	f.Fuzz(func(t *testing.T, addrBytes, authzBytes []byte) {
		held := map[string]map[string]*discovery.Resource{}
		for typeURL, b := range map[string][]byte{xdstype.Address: addrBytes, xdstype.Authorization: authzBytes} {
			resp := &discovery.DeltaDiscoveryResponse{}
			if err := proto.Unmarshal(b, resp); err != nil {
				return // not xDS at all: the gRPC layer refuses it before ztunnel sees it
			}
			held[typeURL] = map[string]*discovery.Resource{}
			for _, r := range resp.GetResources() {
				held[typeURL][r.GetName()] = r
			}
		}
		addrs, authz, err := decode(held)
		if err != nil {
			return
		}
		cfg, _, err := Translate(addrs, authz)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("Translate failed with an empty error")
			}
			return
		}
		again, _, err := Translate(addrs, authz)
		if err != nil || !reflect.DeepEqual(cfg, again) {
			t.Fatalf("translating the same input twice differs: %v\n%+v\n%+v", err, cfg, again)
		}
		p, err := ztunnel.NewPredictor(cfg)
		if err != nil {
			return // NACKed when applied (duplicate UIDs and the like)
		}
		// Every lookup ztunnel makes on a connection, from every workload to every address it knows.
		var dsts []netip.AddrPort
		for _, w := range cfg.Workloads {
			dsts = append(dsts, netip.AddrPortFrom(w.IP, 9080))
		}
		for _, s := range cfg.Services {
			for _, vip := range s.VIPs {
				for port := range s.Ports {
					dsts = append(dsts, netip.AddrPortFrom(vip, port))
				}
			}
		}
		dsts = dsts[:min(len(dsts), 32)] // bounded: a fuzzed input may hold thousands
		for _, w := range cfg.Workloads[:min(len(cfg.Workloads), 32)] {
			for _, dst := range dsts {
				p.Outbound(w.IP, dst)
				p.Authorize(dst.Addr(), "spiffe://"+w.TrustDomain+"/ns/"+w.Namespace+"/sa/"+w.ServiceAccount, dst.Port())
			}
		}
	})
}
