package fidelity

import (
	"fmt"
	"os"
	"path/filepath"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
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

// Envoy renders a waypoint or sidecar as controlplane/render.Render (behind `meshlab render`) does: the proxy
// resolved in the snapshot, then configgen.Envoy. (render itself is not linked: it registers istio.io/api's
// metadata-exchange proto for reading Istio's config dumps, whose name Istio's binary registers from
// go-control-plane's contrib module, and one binary cannot hold both.)
func (m *Meshlab) Envoy(id string) (*Envoy, error) {
	p, err := m.Proxy(id)
	if err != nil {
		return nil, err
	}
	cfg, err := configgen.Envoy(m.Snap, p)
	if err != nil {
		return nil, err
	}
	return &Envoy{Listeners: cfg.Listeners, Clusters: cfg.Clusters, Routes: cfg.Routes, Endpoints: cfg.Endpoints}, nil
}

// ZtunnelDump is what meshlab's ztunnels receive (render.ZtunnelDump's content).
type ZtunnelDump struct {
	Workloads []configgen.ZtunnelWorkload
	Services  []configgen.ZtunnelService
	Policies  []configgen.ZtunnelAuthorization // those of the first node's workloads
	// Waypoints maps each waypoint address to NAMESPACE/NAME, to name the waypoints the dump refers to.
	Waypoints map[string]string
}

// Ztunnel renders what a ztunnel receives, as render.Render does (the node only selects policies: fixtures
// that compare policies put their pods on one node).
func (m *Meshlab) Ztunnel() *ZtunnelDump {
	nodes := m.Snap.Nodes()
	if len(nodes) == 0 {
		return &ZtunnelDump{}
	}
	w, s, p := configgen.ZtunnelConfig(m.Snap, nodes[0])
	d := &ZtunnelDump{Workloads: w, Services: s, Policies: p, Waypoints: map[string]string{}}
	for _, wp := range m.Snap.Waypoints() {
		for _, a := range wp.Addresses {
			d.Waypoints[a] = wp.Namespace + "/" + wp.Name
		}
	}
	return d
}
