package xds

import (
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
	"github.com/meshlab/meshlab/api/xdstype"
)

func TestMarshalNamed(t *testing.T) {
	const fqdn = "reviews.default.svc.cluster.local"
	tests := []struct {
		msg      proto.Message
		name     string
		typeURL  string
		wantFail bool
	}{
		{&cluster.Cluster{Name: "inbound-vip|9080|http|" + fqdn}, "inbound-vip|9080|http|" + fqdn, xdstype.Cluster, false},
		{&listener.Listener{Name: "main_internal"}, "main_internal", xdstype.Listener, false},
		{&route.RouteConfiguration{Name: "inbound-vip|9080|http|" + fqdn}, "inbound-vip|9080|http|" + fqdn, xdstype.Route, false},
		{&endpoint.ClusterLoadAssignment{ClusterName: "inbound-vip|9080|http|" + fqdn}, "inbound-vip|9080|http|" + fqdn, xdstype.Endpoint, false},
		{&workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{Uid: "Kubernetes//Pod/default/r-1"}}}, "Kubernetes//Pod/default/r-1", xdstype.Address, false},
		{&workloadapi.Address{Type: &workloadapi.Address_Service{Service: &workloadapi.Service{Namespace: "default", Hostname: fqdn}}}, "default/" + fqdn, xdstype.Address, false},
		{&security.Authorization{Namespace: "default", Name: "allow-sleep"}, "default/allow-sleep", xdstype.Authorization, false},
		{&workloadapi.Address{}, "", "", true},
		{&structpb.Value{}, "", "", true},
	}
	for _, tt := range tests {
		r, err := MarshalNamed(tt.msg)
		if tt.wantFail {
			if err == nil {
				t.Errorf("MarshalNamed(%T) succeeded, want an error", tt.msg)
			}
			continue
		}
		if err != nil {
			t.Fatalf("MarshalNamed(%T) = %v", tt.msg, err)
		}
		if r.Name != tt.name || r.Resource.TypeUrl != tt.typeURL || r.Version == "" {
			t.Errorf("MarshalNamed(%T) = %s %s %q, want %s %s", tt.msg, r.Name, r.Resource.TypeUrl, r.Version, tt.name, tt.typeURL)
		}
	}
}
