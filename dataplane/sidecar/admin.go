package sidecar

import (
	"net/http"

	"github.com/meshlab/meshlab/dataplane/l7xds"
)

// AdminHandler serves the sidecar's admin endpoints (see dataplane/admin and dataplane/l7xds): what
// `meshlab proxy-config` and istioctl read through a port-forward to 127.0.0.1:15000.
func (s *Sidecar) AdminHandler() http.Handler {
	return s.proxy.AdminHandler(l7xds.AdminOptions{
		Registry: s.reg, Ready: s.Ready, SVID: s.opts.SVID, Bundle: s.opts.Bundle, TrustDomain: s.opts.TrustDomain,
		Version: s.opts.Version, AdminAddress: s.opts.AdminAddress,
	})
}
