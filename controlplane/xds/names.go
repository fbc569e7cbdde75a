package xds

import (
	"fmt"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
)

// ResourceName returns the xDS name of a resource message: the name of a Listener, Cluster or
// RouteConfiguration, the cluster name of a ClusterLoadAssignment, the uid of a workload Address or
// "namespace/hostname" of a service Address (as Istio names them), "namespace/name" of an Authorization.
func ResourceName(msg proto.Message) (string, error) {
	switch m := msg.(type) {
	case *endpoint.ClusterLoadAssignment:
		return m.GetClusterName(), nil
	case *workloadapi.Address:
		switch {
		case m.GetWorkload() != nil:
			return m.GetWorkload().GetUid(), nil
		case m.GetService() != nil:
			return m.GetService().GetNamespace() + "/" + m.GetService().GetHostname(), nil
		}
		return "", fmt.Errorf("empty workload Address")
	case *security.Authorization:
		return m.GetNamespace() + "/" + m.GetName(), nil
	case interface{ GetName() string }:
		return m.GetName(), nil
	}
	return "", fmt.Errorf("no name rule for %s", msg.ProtoReflect().Descriptor().FullName())
}

// MarshalNamed encodes msg under its ResourceName.
func MarshalNamed(msg proto.Message) (*discovery.Resource, error) {
	name, err := ResourceName(msg)
	if err != nil {
		return nil, err
	}
	return Marshal(name, msg)
}
