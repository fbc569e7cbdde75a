package fidelity

import (
	"fmt"
	"os"
	"path/filepath"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/render"
)

// Envoy is one proxy's four resource types, whichever generator produced them.
type Envoy struct {
	Listeners []*listenerv3.Listener
	Clusters  []*clusterv3.Cluster
	Routes    []*routev3.RouteConfiguration
	Endpoints []*endpointv3.ClusterLoadAssignment
}

// Meshlab is meshlab's side of a fixture: the snapshot `meshlab render` builds from the same YAML.
type Meshlab struct {
	Snap     *model.Snapshot
	Warnings []string
}

// NewMeshlab loads the fixture's YAML exactly as `meshlab render -f` does (ingest.LoadFiles, then
// model.Build); dir is a scratch directory for the completed YAML.
func NewMeshlab(yamlText, dir string) (*Meshlab, error) {
	path := filepath.Join(dir, "fixture.yaml")
	if err := os.WriteFile(path, []byte(yamlText), 0o644); err != nil {
		return nil, err
	}
	store, warnings, err := ingest.LoadFiles(path)
	if err != nil {
		return nil, fmt.Errorf("meshlab cannot load the fixture: %w", err)
	}
	m := &Meshlab{Snap: model.Build(store.Objects())}
	for _, w := range warnings {
		m.Warnings = append(m.Warnings, w.String())
	}
	for _, p := range m.Snap.Problems {
		m.Warnings = append(m.Warnings, fmt.Sprint(p))
	}
	return m, nil
}

// Proxy resolves a meshlab proxy id in the snapshot.
func (m *Meshlab) Proxy(id string) (model.Proxy, error) {
	p, err := model.ProxyFromID(id)
	if err != nil {
		return p, err
	}
	return m.Snap.Resolve(p)
}

// Envoy renders a waypoint or sidecar through render.Render, the function behind `meshlab render`, and
// unpacks its config dump.
func (m *Meshlab) Envoy(id string) (*Envoy, error) {
	p, err := model.ProxyFromID(id)
	if err != nil {
		return nil, err
	}
	out, err := render.Render(m.Snap, p)
	if err != nil {
		return nil, err
	}
	return fromConfigDump(out.Envoy)
}

// Ztunnel renders what a ztunnel receives (the node only selects policies, which are not compared).
func (m *Meshlab) Ztunnel() (*render.ZtunnelDump, error) {
	nodes := m.Snap.Nodes()
	if len(nodes) == 0 {
		return &render.ZtunnelDump{}, nil
	}
	out, err := render.Render(m.Snap, model.Proxy{Kind: model.KindZtunnel, Name: nodes[0], Node: nodes[0]})
	if err != nil {
		return nil, err
	}
	return out.Ztunnel, nil
}

func fromConfigDump(cd *adminv3.ConfigDump) (*Envoy, error) {
	e := &Envoy{}
	for _, a := range cd.Configs {
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, err
		}
		switch d := m.(type) {
		case *adminv3.ClustersConfigDump:
			for _, c := range d.DynamicActiveClusters {
				x := &clusterv3.Cluster{}
				if err := c.Cluster.UnmarshalTo(x); err != nil {
					return nil, err
				}
				e.Clusters = append(e.Clusters, x)
			}
		case *adminv3.ListenersConfigDump:
			for _, l := range d.DynamicListeners {
				x := &listenerv3.Listener{}
				if err := l.ActiveState.Listener.UnmarshalTo(x); err != nil {
					return nil, err
				}
				e.Listeners = append(e.Listeners, x)
			}
		case *adminv3.RoutesConfigDump:
			for _, r := range d.DynamicRouteConfigs {
				x := &routev3.RouteConfiguration{}
				if err := r.RouteConfig.UnmarshalTo(x); err != nil {
					return nil, err
				}
				e.Routes = append(e.Routes, x)
			}
		case *adminv3.EndpointsConfigDump:
			for _, r := range d.DynamicEndpointConfigs {
				x := &endpointv3.ClusterLoadAssignment{}
				if err := r.EndpointConfig.UnmarshalTo(x); err != nil {
					return nil, err
				}
				e.Endpoints = append(e.Endpoints, x)
			}
		}
	}
	return e, nil
}
