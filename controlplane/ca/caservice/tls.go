package caservice

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/meshlab/meshlab/controlplane/ca"
	"github.com/meshlab/meshlab/controlplane/ca/svidsource"
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
			return tlsCertificate(src)
		},
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  pool,
	}, nil
}

// ClientTLSConfig returns the TLS config a proxy uses towards the control plane: the server's chain must
// lead to one of roots, and its leaf must carry serverID as a URI SAN or serverName as a DNS SAN. When own
// is not nil the proxy presents its SVID as a client certificate.
func ClientTLSConfig(roots []*x509.Certificate, serverName string, serverID spiffeid.ID, own x509svid.Source) *tls.Config {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: serverName,
		// Go's own verification would insist on a DNS SAN; VerifyConnection does the whole check instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyServer(cs.PeerCertificates, pool, serverName, serverID)
		},
	}
	if own != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return tlsCertificate(own)
		}
	}
	return cfg
}

func verifyServer(certs []*x509.Certificate, roots *x509.CertPool, serverName string, serverID spiffeid.ID) error {
	if len(certs) == 0 {
		return errors.New("control plane presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("verifying the control plane's certificate: %w", err)
	}
	if !serverID.IsZero() {
		if id, err := x509svid.IDFromCert(leaf); err == nil && id == serverID {
			return nil
		}
	}
	if serverName != "" && len(leaf.DNSNames) > 0 && leaf.VerifyHostname(serverName) == nil {
		return nil
	}
	return fmt.Errorf("control plane certificate (URIs %v, DNS %v) is neither %s nor %s", leaf.URIs, leaf.DNSNames, serverID, serverName)
}

func tlsCertificate(src x509svid.Source) (*tls.Certificate, error) {
	svid, err := src.GetX509SVID()
	if err != nil {
		return nil, err
	}
	cert := &tls.Certificate{PrivateKey: svid.PrivateKey, Leaf: svid.Certificates[0]}
	for _, c := range svid.Certificates {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

// Dial opens a gRPC client connection to the control plane at addr (host:port) over cfg.
func Dial(addr string, cfg *tls.Config, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	return conn, nil
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

// LoadRoots reads PEM root certificates from path (the mounted istio-ca-root-cert ConfigMap's root-cert.pem).
func LoadRoots(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	roots, err := ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("parsing %s: no certificate", path)
	}
	return roots, nil
}
