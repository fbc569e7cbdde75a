package workloadapi_test

import (
	"net/netip"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
	"github.com/meshlab/meshlab/api/xdstype"
)

// TestTypeURLs checks that the generated messages pack to the type URLs ztunnel subscribes to.
func TestTypeURLs(t *testing.T) {
	tests := []struct {
		msg  proto.Message
		want string
	}{
		{&workloadapi.Address{}, xdstype.Address},
		{&security.Authorization{}, xdstype.Authorization},
	}
	for _, tt := range tests {
		a, err := anypb.New(tt.msg)
		if err != nil {
			t.Fatalf("anypb.New(%T) = %v", tt.msg, err)
		}
		if a.TypeUrl != tt.want {
			t.Errorf("type URL of %T = %q, want %q", tt.msg, a.TypeUrl, tt.want)
		}
	}
}

// TestWorkloadRoundTrip encodes and decodes a Workload with the fields ztunnel relies on.
func TestWorkloadRoundTrip(t *testing.T) {
	ip := netip.MustParseAddr("10.244.1.7")
	in := &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{
		Uid:            "Kubernetes//Pod/default/reviews-v1-abc",
		Name:           "reviews-v1-abc",
		Namespace:      "default",
		Addresses:      [][]byte{ip.AsSlice()},
		TunnelProtocol: workloadapi.TunnelProtocol_HBONE,
		ServiceAccount: "bookinfo-reviews",
		Node:           "meshlab-worker",
		Waypoint: &workloadapi.GatewayAddress{
			Destination:   &workloadapi.GatewayAddress_Address{Address: &workloadapi.NetworkAddress{Address: netip.MustParseAddr("10.96.0.20").AsSlice()}},
			HboneMtlsPort: 15008,
		},
		Services: map[string]*workloadapi.PortList{
			"default/reviews.default.svc.cluster.local": {Ports: []*workloadapi.Port{{ServicePort: 9080, TargetPort: 9080}}},
		},
	}}}
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatalf("Marshal() = %v", err)
	}
	out := &workloadapi.Address{}
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatalf("Unmarshal() = %v", err)
	}
	if !proto.Equal(in, out) {
		t.Errorf("round trip changed the message:\n got %v\nwant %v", out, in)
	}
	if got := out.GetWorkload().GetWaypoint().GetHboneMtlsPort(); got != 15008 {
		t.Errorf("waypoint port = %d, want 15008", got)
	}
}
