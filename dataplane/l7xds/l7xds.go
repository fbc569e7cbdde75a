// Package l7xds runs xDS config on an l7.Engine the way both of meshlab's L7 proxies (dataplane/sidecar
// and dataplane/waypoint) do: each snapshot the xDS client accepts is installed in the engine and the time
// remembered, and the admin interface (dataplane/admin, AdminHandler) shows that state: the accepted config
// with each resource's version and accept time, the clusters and their endpoints, the proxy's metrics. NewProxy wires the parts both proxies share: the
// engine, the xDS client that feeds it and the HBONE server in front of it.
package l7xds

import (
	"sync/atomic"
	"time"

	"github.com/meshlab/meshlab/dataplane/l7"
	"github.com/meshlab/meshlab/dataplane/xdsclient"
)

// Applied is the config a proxy's engine runs. Its Apply is the xDS client's Apply step.
type Applied struct {
	engine  *l7.Engine
	updated atomic.Pointer[time.Time]
}

// New returns the config state of engine, with nothing applied yet.
func New(engine *l7.Engine) *Applied { return &Applied{engine: engine} }

// Apply installs snap in the engine; an error rejects it (the xDS client NACKs) and leaves the engine as
// it was.
func (a *Applied) Apply(snap xdsclient.Snapshot) error {
	if err := a.engine.Apply(l7.Config{Listeners: snap.Listeners, Routes: snap.Routes, Clusters: snap.Clusters, Endpoints: snap.Endpoints}); err != nil {
		return err
	}
	now := time.Now()
	a.updated.Store(&now)
	return nil
}
