package configdump

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
	"github.com/meshlab/meshlab/dataplane/ztunnel/workloadxds"
)

// TestWorkloadAPIRoundTrip: a dump, written as JSON and read back, gives the workload API resources that
// translate to the same ztunnel config as the resources it was built from.
func TestWorkloadAPIRoundTrip(t *testing.T) {
	ip := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	const uid, uid2 = "Kubernetes//Pod/mesh/echo-1", "Kubernetes//Pod/mesh/wp-1"
	svcKey := "mesh/echo.mesh.svc.cluster.local"
	addrs := map[string]*workloadapi.Address{
		uid: {Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{
			Uid: uid, Name: "echo-1", Namespace: "mesh", ServiceAccount: "echo", TrustDomain: "cluster.local", Node: "node1", Addresses: [][]byte{ip("10.1.0.5")},
			TunnelProtocol: workloadapi.TunnelProtocol_HBONE, AuthorizationPolicies: []string{"mesh/p"},
			Services: map[string]*workloadapi.PortList{svcKey: {Ports: []*workloadapi.Port{{ServicePort: 80, TargetPort: 8080}}}},
			Waypoint: &workloadapi.GatewayAddress{HboneMtlsPort: 15008,
				Destination: &workloadapi.GatewayAddress_Hostname{Hostname: &workloadapi.NamespacedHostname{Namespace: "mesh", Hostname: "wp.mesh.svc.cluster.local"}}},
		}}},
		uid2: {Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{
			Uid: uid2, Name: "wp-1", Namespace: "mesh", ServiceAccount: "wp", TrustDomain: "cluster.local", Node: "node2", Addresses: [][]byte{ip("10.1.0.6")},
			Status:   workloadapi.WorkloadStatus_UNHEALTHY,
			Services: map[string]*workloadapi.PortList{"mesh/wp.mesh.svc.cluster.local": {Ports: []*workloadapi.Port{{ServicePort: 15008, TargetPort: 15008}}}},
		}}},
		svcKey: {Type: &workloadapi.Address_Service{Service: &workloadapi.Service{
			Name: "echo", Namespace: "mesh", Hostname: "echo.mesh.svc.cluster.local",
			Addresses: []*workloadapi.NetworkAddress{{Address: ip("10.96.0.10")}}, Ports: []*workloadapi.Port{{ServicePort: 80, TargetPort: 8080}},
			Waypoint: &workloadapi.GatewayAddress{HboneMtlsPort: 15008, Destination: &workloadapi.GatewayAddress_Address{Address: &workloadapi.NetworkAddress{Address: ip("10.96.0.20")}}},
		}}},
		"mesh/wp.mesh.svc.cluster.local": {Type: &workloadapi.Address_Service{Service: &workloadapi.Service{
			Name: "wp", Namespace: "mesh", Hostname: "wp.mesh.svc.cluster.local",
			Addresses: []*workloadapi.NetworkAddress{{Address: ip("10.96.0.20")}}, Ports: []*workloadapi.Port{{ServicePort: 15008, TargetPort: 15008}},
		}}},
	}
	authz := map[string]*security.Authorization{
		"mesh/p": {Name: "p", Namespace: "mesh", Scope: security.Scope_WORKLOAD_SELECTOR, Action: security.Action_DENY,
			Groups: []*security.Group{{Rules: []*security.Rules{{Matches: []*security.Match{{
				Principals:          []*security.StringMatch{{MatchType: &security.StringMatch_Prefix{Prefix: "cluster.local/ns/a/"}}},
				NotNamespaces:       []*security.StringMatch{{MatchType: &security.StringMatch_Presence{Presence: &emptypb.Empty{}}}},
				SourceIps:           []*security.Address{{Address: ip("10.0.0.0"), Length: 8}},
				NotDestinationIps:   []*security.Address{{Address: ip("10.1.0.6"), Length: 32}},
				DestinationPorts:    []uint32{8080},
				NotDestinationPorts: []uint32{9090},
			}}}}}}},
		"mesh/ns": {Name: "ns", Namespace: "mesh", Scope: security.Scope_NAMESPACE,
			Groups: []*security.Group{{Rules: []*security.Rules{{Matches: []*security.Match{{
				Namespaces: []*security.StringMatch{{MatchType: &security.StringMatch_Exact{Exact: "mesh"}}, {MatchType: &security.StringMatch_Suffix{Suffix: "-prod"}}},
			}}}}}}},
	}
	js, err := json.Marshal(Build(Sources{Addresses: addrs, Authorizations: authz}))
	if err != nil {
		t.Fatal(err)
	}
	var d Dump
	if err := json.Unmarshal(js, &d); err != nil {
		t.Fatal(err)
	}
	gotAddrs, gotAuthz, warnings, err := d.WorkloadAPI()
	if err != nil || len(warnings) > 0 {
		t.Fatalf("WorkloadAPI: %v %v", warnings, err)
	}
	want, _, err := workloadxds.Translate(addrs, authz)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := workloadxds.Translate(gotAddrs, gotAuthz)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestWorkloadAPIRejectsBadDump(t *testing.T) {
	for name, d := range map[string]Dump{
		"no uid":       {Workloads: []Workload{{Name: "a", Namespace: "b"}}},
		"bad ip":       {Workloads: []Workload{{UID: "u", WorkloadIPs: []string{"nope"}}}},
		"bad vip":      {Services: []Service{{Hostname: "h", VIPs: []string{"10.0.0.1"}}}},
		"bad action":   {Policies: []Policy{{Name: "p", Action: "Audit", Scope: "Global"}}},
		"bad waypoint": {Workloads: []Workload{{UID: "u", Waypoint: &GatewayAddress{Destination: "nowhere"}}}},
	} {
		if _, _, _, err := d.WorkloadAPI(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
