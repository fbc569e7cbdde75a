package l7xds

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshlab/meshlab/dataplane/hbone"
	"github.com/meshlab/meshlab/dataplane/l7"
)

// Upstream opens an L7 proxy's connections to endpoints: an HBONE stream (from the proxy's own SVID, to a
// peer in the trust domain) for envoy://connect_originate/IP:PORT endpoints, plain TCP otherwise. Its Dial
// is an l7.DialFunc.
type Upstream struct {
	// TCP opens TCP connections, to HBONE peers and to plain endpoints; nil uses a net.Dialer (bound to an
	// endpoint's bind address when it has one).
	TCP func(ctx context.Context, network, addr string) (net.Conn, error)

	client *hbone.Client
	svid   x509svid.Source
	bundle x509bundle.Source
	td     spiffeid.TrustDomain

	once sync.Once
	cfg  *tls.Config
}

// NewUpstream returns an Upstream presenting svid and trusting bundle's members of td.
func NewUpstream(svid x509svid.Source, bundle x509bundle.Source, td spiffeid.TrustDomain, tcp func(ctx context.Context, network, addr string) (net.Conn, error)) *Upstream {
	return &Upstream{TCP: tcp, client: &hbone.Client{DialContext: tcp}, svid: svid, bundle: bundle, td: td}
}

// Dial opens a connection to ep.
func (u *Upstream) Dial(ctx context.Context, ep *l7.Endpoint) (net.Conn, error) {
	switch ep.InternalListener {
	case "":
		dial := u.TCP
		if dial == nil {
			d := &net.Dialer{}
			if ep.BindAddress.IsValid() {
				d.LocalAddr = &net.TCPAddr{IP: ep.BindAddress.AsSlice()}
			}
			dial = d.DialContext
		}
		return dial(ctx, "tcp", ep.Address)
	case l7.ConnectOriginate:
		return u.client.Connect(ctx, hbone.Request{ProxyAddr: ep.TunnelAddress, Target: ep.Address, TLS: u.tls()})
	}
	return nil, fmt.Errorf("endpoint %s: unsupported internal listener %s", ep, ep.InternalListener)
}

// tls is the one client config, so that HBONE connections pool under one identity; it reads the SVID
// source at every handshake, so rotation needs no rebuild.
func (u *Upstream) tls() *tls.Config {
	u.once.Do(func() { u.cfg = hbone.ClientTLSConfig(u.svid, u.bundle, tlsconfig.AuthorizeMemberOf(u.td)) })
	return u.cfg
}

// Close drops pooled HBONE connections.
func (u *Upstream) Close() { u.client.Close() }
