package waypoint

import (
	"net/http"

	"github.com/meshlab/meshlab/dataplane/l7xds"
)

// AdminHandler serves the waypoint's admin endpoints (see dataplane/admin and dataplane/l7xds).
func (w *Waypoint) AdminHandler() http.Handler {
	return w.proxy.AdminHandler(l7xds.AdminOptions{
		Registry: w.reg, Ready: w.Ready, SVID: w.opts.SVID, Bundle: w.opts.Bundle, TrustDomain: w.opts.TrustDomain,
		Version: w.opts.Version, AdminAddress: w.opts.AdminAddress,
	})
}
