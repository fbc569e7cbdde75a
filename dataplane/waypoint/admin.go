package waypoint

import "net/http"

// AdminHandler serves the waypoint's admin endpoints (see dataplane/admin and dataplane/l7xds).
func (w *Waypoint) AdminHandler() http.Handler {
	return w.proxy.Applied.AdminHandler(w.proxy.XDS, w.reg, w.Ready)
}
