package sidecar

import (
	"net/http"

	"github.com/meshlab/meshlab/dataplane/admin"
)

// AdminHandler serves the sidecar's admin endpoints (see dataplane/admin): what `meshlab proxy-config`
// reads through a port-forward to 127.0.0.1:15000.
func (s *Sidecar) AdminHandler() http.Handler {
	return admin.Handler(admin.Options{
		ConfigDump: func() *admin.Config {
			snap := s.xds.Snapshot()
			c := &admin.Config{Listeners: snap.Listeners, Routes: snap.Routes, Clusters: snap.Clusters, Endpoints: snap.Endpoints, Versions: snap.Versions}
			if t := s.updated.Load(); t != nil {
				c.LastUpdated = *t
			}
			return c
		},
		Clusters: func() []admin.ClusterStatus {
			var out []admin.ClusterStatus
			for name, c := range s.engine.Table().Clusters {
				cs := admin.ClusterStatus{Name: name}
				for _, h := range c.Hosts {
					cs.Hosts = append(cs.Hosts, admin.HostStatus{Address: h.String(), Healthy: h.Healthy, Weight: 1})
				}
				out = append(out, cs)
			}
			return out
		},
		Gatherer: s.reg,
		Ready:    s.Ready,
	})
}
