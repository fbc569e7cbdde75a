package configdump

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/dataplane/ztunnel/agent"
)

// TestShape pins the JSON of each part to what Istio's ztunnel writes for the same resources (its serde
// names and casing, key order, what it leaves out).
func TestShape(t *testing.T) {
	ip := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	const uid = "Kubernetes//Pod/mesh/echo-1"
	d := Build(Sources{
		Addresses: map[string]*workloadapi.Address{
			uid: {Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{
				Uid: uid, Name: "echo-1", Namespace: "mesh", ServiceAccount: "echo", Node: "node1", Addresses: [][]byte{ip("10.1.0.5")},
				TunnelProtocol: workloadapi.TunnelProtocol_HBONE, CanonicalName: "echo", CanonicalRevision: "v1", WorkloadName: "echo",
				Services: map[string]*workloadapi.PortList{"mesh/echo.mesh.svc.cluster.local": {Ports: []*workloadapi.Port{{ServicePort: 80, TargetPort: 8080}}}},
				Waypoint: &workloadapi.GatewayAddress{HboneMtlsPort: 15008,
					Destination: &workloadapi.GatewayAddress_Hostname{Hostname: &workloadapi.NamespacedHostname{Namespace: "mesh", Hostname: "wp.mesh.svc.cluster.local"}}},
			}}},
			"mesh/echo.mesh.svc.cluster.local": {Type: &workloadapi.Address_Service{Service: &workloadapi.Service{
				Name: "echo", Namespace: "mesh", Hostname: "echo.mesh.svc.cluster.local",
				Addresses: []*workloadapi.NetworkAddress{{Address: ip("10.96.0.10")}}, Ports: []*workloadapi.Port{{ServicePort: 80, TargetPort: 8080}},
			}}},
		},
		Authorizations: map[string]*security.Authorization{"mesh/p": {
			Name: "p", Namespace: "mesh", Scope: security.Scope_WORKLOAD_SELECTOR, Action: security.Action_DENY,
			Groups: []*security.Group{{Rules: []*security.Rules{{Matches: []*security.Match{{
				Principals:       []*security.StringMatch{{MatchType: &security.StringMatch_Prefix{Prefix: "cluster.local/ns/a/"}}},
				NotNamespaces:    []*security.StringMatch{{MatchType: &security.StringMatch_Presence{Presence: &emptypb.Empty{}}}},
				SourceIps:        []*security.Address{{Address: ip("10.0.0.0"), Length: 8}},
				DestinationPorts: []uint32{8080},
			}}}}}},
		}},
		Enrolled: []agent.Enrolment{{Namespace: "mesh", Name: "echo-1", WorkloadUID: uid, PodUID: "a1b2"}},
		Connections: []ztunnel.Connection{
			{Workload: "mesh/echo-1", Direction: ztunnel.Inbound, Protocol: "HBONE", Local: "10.1.0.5:15008", Remote: "10.1.0.9:40000", RemoteTarget: "10.1.0.5:8080"},
			{Workload: "mesh/echo-1", Direction: ztunnel.Outbound, Protocol: "TCP", SrcAddr: "10.1.0.5:50000", DstAddr: "10.2.0.1:443", Remote: "10.2.0.1:443"},
			{Workload: "mesh/other", Direction: ztunnel.Outbound, Protocol: "TCP"},
		},
	})
	cases := []struct {
		name string
		v    any
		want string
	}{
		{"workload", d.Workloads[0], `{"canonicalName":"echo","canonicalRevision":"v1","capacity":1,"clusterId":"Kubernetes","name":"echo-1","namespace":"mesh",` +
			`"networkMode":"Standard","node":"node1","protocol":"HBONE","serviceAccount":"echo","services":["mesh/echo.mesh.svc.cluster.local"],` +
			`"status":"Healthy","trustDomain":"cluster.local","uid":"Kubernetes//Pod/mesh/echo-1",` +
			`"waypoint":{"destination":"mesh/wp.mesh.svc.cluster.local","hboneMtlsPort":15008},"workloadIps":["10.1.0.5"],"workloadName":"echo","workloadType":"deployment"}`},
		{"service", d.Services[0], `{"canonical":false,"endpoints":{"Kubernetes//Pod/mesh/echo-1":{"port":{"80":8080},"status":"Healthy","workloadUid":"Kubernetes//Pod/mesh/echo-1"}},` +
			`"hostname":"echo.mesh.svc.cluster.local","name":"echo","namespace":"mesh","ports":{"80":8080},"subjectAltNames":[],"vips":["/10.96.0.10"],"visibility":"Public"}`},
		{"policy", d.Policies[0], `{"action":"Deny","dryRun":false,"name":"p","namespace":"mesh","rules":[[[{"destinationPorts":[8080],` +
			`"notNamespaces":[{"Presence":[]}],"principals":[{"Prefix":"cluster.local/ns/a/"}],"sourceIps":["10.0.0.0/8"]}]]],"scope":"WorkloadSelector"}`},
		{"workloadState", d.WorkloadState, `{"a1b2":{"connections":{"inbound":[{"actualDst":"10.1.0.5:8080","originalDst":null,"protocol":"HBONE","src":"10.1.0.9:40000"}],` +
			`"outbound":[{"actualDst":"10.2.0.1:443","originalDst":"10.2.0.1:443","protocol":"TCP","src":"10.1.0.5:50000"}]},` +
			`"info":{"name":"echo-1","namespace":"mesh","serviceAccount":"echo"},"state":"Up"}}`},
		{"stagedServices", d.StagedServices, `{}`},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.want {
			t.Errorf("%s =\n%s\nwant\n%s", c.name, b, c.want)
		}
	}
	// The top-level keys, in ztunnel's (sorted) order, plus meshlab's own.
	b, _ := json.Marshal(d)
	var keys []string
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	want := "[certificates config meshlab policies services stagedServices staticConfig version workloadState workloads]"
	if got := fmt.Sprint(keys); got != want {
		t.Errorf("keys = %s, want %s", got, want)
	}
}
