package waypoint

import "net/http"

// AdminHandler serves the waypoint's admin endpoints (see dataplane/admin and dataplane/l7xds).
func (w *Waypoint) AdminHandler() http.Handler { return w.applied.AdminHandler(w.xds, w.reg, w.Ready) }
