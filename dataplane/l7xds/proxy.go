package l7xds

import (
	"net/http"
	"net/netip"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshlab/meshlab/dataplane/hbone"
	"github.com/meshlab/meshlab/dataplane/l7"
	"github.com/meshlab/meshlab/dataplane/xdsclient"
)

// Proxy is what the sidecar and the waypoint build the same way: the L7 engine, the xDS client whose
// accepted snapshots it runs, and the HBONE server that hands it tunnelled streams. Each proxy adds its own
// listeners and decides what a stream is for.
type Proxy struct {
	Engine  *l7.Engine
	Applied *Applied
	XDS     *xdsclient.Client
	HBONE   *hbone.Server
}

// ProxyOptions configure NewProxy.
type ProxyOptions struct {
	Engine l7.Options
	// XDS configures the xDS client; its Apply, unless set (to a step that ends in Proxy.Applied.Apply),
	// is the engine's.
	XDS xdsclient.Options
	// SVID is presented on HBONE, whose clients must chain to Bundle and belong to TrustDomain.
	SVID        x509svid.Source
	Bundle      x509bundle.Source
	TrustDomain spiffeid.TrustDomain
	// Serve handles each HBONE stream that Authorize let through.
	Serve     hbone.HandlerFunc
	Authorize func(peer spiffeid.ID, target netip.AddrPort, h http.Header) error
	Logf      func(format string, args ...any)
}

// NewProxy wires an L7 proxy. Nothing runs until the caller serves HBONE and runs the xDS client.
func NewProxy(o ProxyOptions) (*Proxy, error) {
	engine, err := l7.NewEngine(o.Engine)
	if err != nil {
		return nil, err
	}
	p := &Proxy{Engine: engine, Applied: New(engine)}
	if o.XDS.Apply == nil {
		o.XDS.Apply = p.Applied.Apply
	}
	if p.XDS, err = xdsclient.New(o.XDS); err != nil {
		engine.Close()
		return nil, err
	}
	p.HBONE = &hbone.Server{
		TLSConfig: hbone.ServerTLSConfig(o.SVID, o.Bundle, tlsconfig.AuthorizeMemberOf(o.TrustDomain)),
		Handler:   o.Serve,
		Authorize: o.Authorize,
		Logf:      o.Logf,
	}
	return p, nil
}
