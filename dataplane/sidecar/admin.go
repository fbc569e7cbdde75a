package sidecar

import "net/http"

// AdminHandler serves the sidecar's admin endpoints (see dataplane/admin and dataplane/l7xds): what
// `meshlab proxy-config` reads through a port-forward to 127.0.0.1:15000.
func (s *Sidecar) AdminHandler() http.Handler {
	return s.proxy.Applied.AdminHandler(s.proxy.XDS, s.reg, s.Ready)
}
