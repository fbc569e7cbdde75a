package caserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/meshlab/meshlab/identity"
	"github.com/meshlab/meshlab/identity/ca"
	"github.com/meshlab/meshlab/identity/svidsource"
)

// ServerTLSConfig returns the TLS config of the control plane's 15012 listener: a serving SVID for id issued
// by c itself and rotated until ctx ends, and client certificates verified against c's root when a client
// presents one (proxies may also authenticate by token alone, as the CA API does).
//
// The serving certificate carries id as a URI SAN and no DNS name: meshlab's CA core issues SPIFFE SVIDs
// only. Clients made with ClientTLSConfig accept it by that identity (or by a DNS SAN, should the CA add one).
func ServerTLSConfig(ctx context.Context, c *ca.CA, id spiffeid.ID) (*tls.Config, error) {
	src, err := svidsource.New(ctx, c, id)
	if err != nil {
		return nil, fmt.Errorf("issuing the serving certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.Root())
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return identity.TLSCertificate(src)
		},
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  pool,
	}, nil
}

// PeerIdentity returns the SPIFFE ID of the client certificate a gRPC caller presented, if any (for the
// xDS server sharing the listener).
func PeerIdentity(ctx context.Context) (spiffeid.ID, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.PeerCertificates) == 0 {
		return spiffeid.ID{}, false
	}
	id, err := x509svid.IDFromCert(ti.State.PeerCertificates[0])
	return id, err == nil
}
