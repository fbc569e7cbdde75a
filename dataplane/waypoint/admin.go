package waypoint

import (
	"net/http"

	"github.com/meshlab/meshlab/dataplane/admin"
)

// AdminHandler serves the waypoint's admin endpoints (see dataplane/admin).
func (w *Waypoint) AdminHandler() http.Handler {
	return admin.Handler(admin.Options{
		ConfigDump: func() *admin.Config {
			s := w.xds.Snapshot()
			c := &admin.Config{Listeners: s.Listeners, Routes: s.Routes, Clusters: s.Clusters, Endpoints: s.Endpoints, Versions: s.Versions}
			if t := w.updated.Load(); t != nil {
				c.LastUpdated = *t
			}
			return c
		},
		Clusters: func() []admin.ClusterStatus {
			var out []admin.ClusterStatus
			for name, c := range w.engine.Table().Clusters {
				cs := admin.ClusterStatus{Name: name}
				for _, h := range c.Hosts {
					cs.Hosts = append(cs.Hosts, admin.HostStatus{Address: h.String(), Healthy: h.Healthy, Weight: 1})
				}
				out = append(out, cs)
			}
			return out
		},
		Gatherer: w.reg,
		Ready:    w.Ready,
	})
}
