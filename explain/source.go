package explain

import (
	"fmt"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/xdsgen"
	"github.com/meshlab/meshlab/dataplane/l7"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/dataplane/ztunnel/workloadxds"
)

// ConfigSource is where the config each proxy holds comes from. Offline renders it from YAML with the
// control plane's generators; a live source (not built yet) would read the mesh objects from the cluster's
// API server and each proxy's config from its config dump, and feed the same Explain.
type ConfigSource interface {
	// Mesh is the control plane's view of the mesh objects: pods, services, labels, waypoints, routes.
	Mesh() *model.Snapshot
	// Envoy returns the config waypoint, sidecar or gateway p holds.
	Envoy(p model.Proxy) (l7.Config, error)
	// Ztunnel returns the config the ztunnel on node holds, with warnings about what it could not take.
	Ztunnel(node string) (ztunnel.Config, []string, error)
}

// Offline is a ConfigSource that generates every proxy's config from a snapshot, as `meshlab render` does.
type Offline struct{ Snapshot *model.Snapshot }

// Mesh returns the snapshot.
func (o Offline) Mesh() *model.Snapshot { return o.Snapshot }

// Envoy generates p's config with configgen.Envoy, the generator the control plane serves.
func (o Offline) Envoy(p model.Proxy) (l7.Config, error) {
	cfg, err := configgen.Envoy(o.Snapshot, p)
	if err != nil {
		return l7.Config{}, err
	}
	return l7.Config{Listeners: cfg.Listeners, Routes: cfg.Routes, Clusters: cfg.Clusters, Endpoints: cfg.Endpoints}, nil
}

// Ztunnel generates the node's workload API resources as the control plane sends them and translates them
// as ztunnel's xDS client does.
func (o Offline) Ztunnel(node string) (ztunnel.Config, []string, error) {
	addrs, authz := xdsgen.ZtunnelResources(o.Snapshot, node)
	cfg, warnings, err := workloadxds.Translate(addrs, authz)
	if err != nil {
		return ztunnel.Config{}, nil, fmt.Errorf("ztunnel %s: translating its config: %w", node, err)
	}
	return cfg, warnings, nil
}
