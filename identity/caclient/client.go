// Package caclient is how a proxy reaches the control plane: a TLS configuration that verifies the
// control plane by its SPIFFE identity, a gRPC dial over it (xDS and the CA API share the connection, as
// with istiod's 15012), and a client of the CA API that turns a CSR and the proxy's service-account token
// into an SVID. Client implements svidsource.Issuer, so svidsource.New(ctx, client, id) gives a proxy
// rotating certificates.
package caclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/meshlab/meshlab/api/cav1"
	"github.com/meshlab/meshlab/identity"
	"github.com/meshlab/meshlab/identity/svidsource"
)

// Client asks the CA service for certificates with the service-account token at TokenPath. It implements
// svidsource.Issuer: for an identity other than the token's own it asks to impersonate it, which only a
// node proxy may do.
type Client struct {
	cc        cav1.CertificateServiceClient
	tokenPath string
}

var _ svidsource.Issuer = (*Client)(nil)

// NewClient returns a client over conn (see Dial) reading its token from tokenPath on every call: projected
// tokens are rotated by the kubelet, so a token read once would expire.
func NewClient(conn grpc.ClientConnInterface, tokenPath string) *Client {
	return &Client{cc: cav1.NewCertificateServiceClient(conn), tokenPath: tokenPath}
}

// SignCSR sends csrDER for id and returns the chain, leaf first. ttl <= 0 asks for the CA's default.
func (c *Client) SignCSR(ctx context.Context, csrDER []byte, id spiffeid.ID, ttl time.Duration) ([]*x509.Certificate, error) {
	tok, err := os.ReadFile(c.tokenPath)
	if err != nil {
		return nil, fmt.Errorf("reading token %s: %w", c.tokenPath, err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := c.cc.CreateCertificate(ctx, &cav1.CreateCertificateRequest{
		Csr:                  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})),
		ValidityDuration:     int64(max(ttl, 0) / time.Second),
		ImpersonatedIdentity: id.String(), // the server ignores it when it is the token's own identity
	})
	if err != nil {
		return nil, fmt.Errorf("requesting a certificate for %s: %w", id, err)
	}
	chain, err := identity.ParseCertificates([]byte(strings.Join(resp.GetCertChain(), "\n")))
	if err != nil {
		return nil, fmt.Errorf("parsing the certificate for %s: %w", id, err)
	}
	if len(chain) == 0 {
		return nil, errors.New("CA returned an empty chain")
	}
	return chain, nil
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
			return identity.TLSCertificate(own)
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

// Dial opens a gRPC client connection to the control plane at addr (host:port) over cfg.
func Dial(addr string, cfg *tls.Config, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	return conn, nil
}
