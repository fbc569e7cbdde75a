package labclient

import (
	"context"
	"encoding/json"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	cprender "github.com/meshlab/meshlab/controlplane/render"
	"github.com/meshlab/meshlab/controlplane/render/tables"
	"github.com/meshlab/meshlab/controlplane/xds"
)

// Syncz reads the control plane's /debug/meshlab/syncz: every connected proxy and what it acknowledged.
func Syncz(ctx context.Context, kc kubernetes.Interface) (xds.SyncStatus, error) {
	var st xds.SyncStatus
	body, err := SynczRaw(ctx, kc)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("decoding %s: %w", xds.MeshlabSynczPath, err)
	}
	return st, nil
}

// SynczRaw is the body of /debug/meshlab/syncz as served.
func SynczRaw(ctx context.Context, kc kubernetes.Interface) ([]byte, error) {
	return ServiceGet(ctx, kc, ControlPlaneNamespace, ControlPlaneService, ControlPlaneDebugPort, xds.MeshlabSynczPath, nil)
}

// ControlPlaneDumpRaw is the body of /debug/config_dump?proxy=ID: what the control plane last sent a proxy.
func ControlPlaneDumpRaw(ctx context.Context, kc kubernetes.Interface, proxyID string) ([]byte, error) {
	return ServiceGet(ctx, kc, ControlPlaneNamespace, ControlPlaneService, ControlPlaneDebugPort, "/debug/config_dump", map[string]string{"proxy": proxyID})
}

// ControlPlaneDump reads what the control plane last sent the proxy with this ID, as tables.Dump.
func ControlPlaneDump(ctx context.Context, kc kubernetes.Interface, proxyID string) (*tables.Dump, error) {
	body, err := ControlPlaneDumpRaw(ctx, kc, proxyID)
	if err != nil {
		return nil, err
	}
	return DumpFromSyncz(body)
}

// DumpFromSyncz unpacks the control plane's per-proxy dump (xds.ConfigDump JSON) into the Envoy
// resources it holds; types other than listeners, routes, clusters and endpoints are ignored.
func DumpFromSyncz(body []byte) (*tables.Dump, error) {
	var cd xds.ConfigDump
	if err := json.Unmarshal(body, &cd); err != nil {
		return nil, fmt.Errorf("decoding control plane config dump: %w", err)
	}
	d := &tables.Dump{}
	for _, t := range cd.Types {
		for _, raw := range t.Resources {
			var r struct {
				Name     string          `json:"name"`
				Resource json.RawMessage `json:"resource"`
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				return nil, fmt.Errorf("decoding %s resource: %w", t.Type, err)
			}
			if len(r.Resource) == 0 {
				continue
			}
			a := &anypb.Any{}
			if err := protojson.Unmarshal(r.Resource, a); err != nil {
				return nil, fmt.Errorf("decoding %s resource %s: %w", t.Type, r.Name, err)
			}
			m, err := a.UnmarshalNew()
			if err != nil {
				return nil, fmt.Errorf("unpacking %s resource %s: %w", t.Type, r.Name, err)
			}
			switch v := m.(type) {
			case *listenerv3.Listener:
				d.Listeners = append(d.Listeners, v)
			case *routev3.RouteConfiguration:
				d.Routes = append(d.Routes, v)
			case *clusterv3.Cluster:
				d.Clusters = append(d.Clusters, v)
			case *endpointv3.ClusterLoadAssignment:
				d.Endpoints = append(d.Endpoints, v)
			}
		}
	}
	return d, nil
}

// PodDumpRaw reads a proxy's own /config_dump from its admin port through a port-forward.
func PodDumpRaw(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, namespace, pod string) ([]byte, error) {
	return PodGet(ctx, cfg, kc, namespace, pod, AdminPort, "/config_dump")
}

// PodDump reads a proxy's own /config_dump and unpacks it.
func PodDump(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, namespace, pod string) (*tables.Dump, error) {
	body, err := PodDumpRaw(ctx, cfg, kc, namespace, pod)
	if err != nil {
		return nil, err
	}
	cd, err := cprender.ParseConfigDump(body)
	if err != nil {
		return nil, fmt.Errorf("%s/%s /config_dump: %w", namespace, pod, err)
	}
	return tables.FromConfigDump(cd)
}
