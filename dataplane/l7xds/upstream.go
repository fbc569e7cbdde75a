package l7xds

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshlab/meshlab/dataplane/hbone"
	"github.com/meshlab/meshlab/dataplane/l7"
)

// Upstream opens an L7 proxy's connections to endpoints: an HBONE stream (from the proxy's own SVID) for
// envoy://connect_originate/IP:PORT endpoints, plain TCP otherwise. Its Dial is an l7.DialFunc.
//
// The HBONE server must present the endpoint's identity (its tunnel.identity metadata, the destination
// workload's SPIFFE ID) exactly; an endpoint without one (an original-destination cluster, whose
// destination the control plane could not name) needs a member of the trust domain, as Istio's
// connect_originate SAN prefix asks.
type Upstream struct {
	// TCP opens TCP connections, to HBONE peers and to plain endpoints; nil uses a net.Dialer (bound to an
	// endpoint's bind address when it has one).
	TCP func(ctx context.Context, network, addr string) (net.Conn, error)

	client *hbone.Client
	svid   x509svid.Source
	bundle x509bundle.Source
	td     spiffeid.TrustDomain

	mu   sync.Mutex
	cfgs map[string]*tls.Config // by expected server identity ("" for the trust domain)
}

// NewUpstream returns an Upstream presenting svid and trusting bundle; td is the trust domain of
// destinations whose exact identity is not known.
func NewUpstream(svid x509svid.Source, bundle x509bundle.Source, td spiffeid.TrustDomain, tcp func(ctx context.Context, network, addr string) (net.Conn, error)) *Upstream {
	return &Upstream{TCP: tcp, client: &hbone.Client{DialContext: tcp}, svid: svid, bundle: bundle, td: td, cfgs: map[string]*tls.Config{}}
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
		cfg, err := u.tls(ep.Identity)
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: %w", ep, err)
		}
		// Connections pool by the identity they verified: one checked for another destination's identity
		// must not carry this stream.
		return u.client.Connect(ctx, hbone.Request{ProxyAddr: ep.TunnelAddress, Target: ep.Address, TLS: cfg, PoolKey: "expect=" + ep.Identity})
	}
	return nil, fmt.Errorf("endpoint %s: unsupported internal listener %s", ep, ep.InternalListener)
}

// tls is the client config for servers that must present expect (or, if empty, belong to the trust
// domain), one per identity so that connections pool; it reads the SVID source at every handshake, so
// rotation needs no rebuild.
func (u *Upstream) tls(expect string) (*tls.Config, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if cfg, ok := u.cfgs[expect]; ok {
		return cfg, nil
	}
	authorize := hbone.AuthorizeTrustDomain(u.td)
	if expect != "" {
		id, err := spiffeid.FromString(expect)
		if err != nil {
			return nil, fmt.Errorf("expected identity %q: %w", expect, err)
		}
		authorize = hbone.AuthorizeIdentity(id)
	}
	cfg := hbone.ClientTLSConfig(u.svid, u.bundle, authorize)
	u.cfgs[expect] = cfg
	return cfg, nil
}

// Close drops pooled HBONE connections.
func (u *Upstream) Close() { u.client.Close() }
