// Package l7xds runs xDS config on an l7.Engine the way both of meshlab's L7 proxies (dataplane/sidecar
// and dataplane/waypoint) do: each snapshot the xDS client accepts is installed in the engine and the time
// remembered, and the admin interface (dataplane/admin) shows that state: the accepted config, the
// engine's clusters and hosts, and the proxy's metrics. NewProxy wires the parts both proxies share: the
// engine, the xDS client that feeds it and the HBONE server in front of it.
package l7xds

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshlab/meshlab/dataplane/admin"
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

// Configured reports whether a snapshot has been applied.
func (a *Applied) Configured() bool { return a.updated.Load() != nil }

// AdminHandler serves the proxy's admin endpoints: /config_dump from what xds accepted (with the time of
// the last Apply), /clusters from the engine's table, /stats/prometheus from reg, /ready from ready.
func (a *Applied) AdminHandler(xds *xdsclient.Client, reg prometheus.Gatherer, ready func() bool) http.Handler {
	return admin.Handler(admin.Options{
		ConfigDump: func() *admin.Config {
			snap := xds.Snapshot()
			c := &admin.Config{Listeners: snap.Listeners, Routes: snap.Routes, Clusters: snap.Clusters, Endpoints: snap.Endpoints, Versions: snap.Versions}
			if t := a.updated.Load(); t != nil {
				c.LastUpdated = *t
			}
			return c
		},
		Clusters: func() []admin.ClusterStatus {
			var out []admin.ClusterStatus
			for name, c := range a.engine.Table().Clusters {
				cs := admin.ClusterStatus{Name: name}
				for _, h := range c.Hosts {
					cs.Hosts = append(cs.Hosts, admin.HostStatus{Address: h.String(), Healthy: h.Healthy, Weight: 1})
				}
				out = append(out, cs)
			}
			return out
		},
		Gatherer: reg,
		Ready:    ready,
	})
}
