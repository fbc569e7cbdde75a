// Package proxyboot is what the L7 proxy processes (sidecar, waypoint) do before their proxy starts, as
// istio-agent does for Envoy: get the certificate (from the control plane's CA with the pod's projected
// token, or from PEM files in a directory) and build the xDS connection's credentials from it.
package proxyboot

import (
	"context"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/identity"
	"github.com/meshlab/meshlab/identity/ca"
	"github.com/meshlab/meshlab/identity/caclient"
	"github.com/meshlab/meshlab/identity/svidsource"
)

// Files read from --cert-dir (Istio's names).
const (
	CertChainFile = "cert-chain.pem"
	KeyFile       = "key.pem"
	RootCertFile  = "root-cert.pem"
)

// Default paths inside a proxy's pod (the injection template's and the waypoint's mounts, as ztunnel's).
const (
	DefaultTokenPath    = "/var/run/secrets/tokens/istio-token"
	DefaultRootCertPath = "/var/run/secrets/istio/" + mesh.RootConfigMapKey
)

// CertSource says where a proxy gets its certificate: from CertDir if set, else from the CA at CAAddress,
// trusted through RootCert and shown the token at TokenPath.
type CertSource struct {
	CAAddress string
	CertDir   string
	TokenPath string
	RootCert  string
}

// Certificates returns the proxy's SVID source and the trust roots, and a function that releases them.
// From CertDir the files are read once; from the CA the identity is namespace/serviceAccount in the
// default trust domain, the source rotates the certificate itself, and the first signing is retried with
// backoff (the control plane may still be starting) until ctx ends. role ("sidecar", "waypoint") names
// the proxy in errors and logs.
func (c *CertSource) Certificates(ctx context.Context, role, namespace, serviceAccount string, logf func(string, ...any)) (x509svid.Source, []*x509.Certificate, func(), error) {
	if c.CertDir != "" {
		svid, err := x509svid.Load(filepath.Join(c.CertDir, CertChainFile), filepath.Join(c.CertDir, KeyFile))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("loading the %s certificate from %s: %w", role, c.CertDir, err)
		}
		roots, err := identity.LoadRoots(filepath.Join(c.CertDir, RootCertFile))
		if err != nil {
			return nil, nil, nil, err
		}
		return svid, roots, func() {}, nil
	}
	roots, err := identity.LoadRoots(c.RootCert)
	if err != nil {
		return nil, nil, nil, err
	}
	conn, err := caclient.Dial(c.CAAddress, caclient.ClientTLSConfig(roots, mesh.ServerName, mesh.ControlPlaneID, nil))
	if err != nil {
		return nil, nil, nil, err
	}
	id, err := ca.WorkloadID(mesh.TrustDomain, namespace, serviceAccount)
	if err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	var src *svidsource.Source
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		src, err = svidsource.New(ctx, caclient.NewClient(conn, c.TokenPath), id, svidsource.WithLogf(logf))
		if err == nil {
			break
		}
		logf("fetching the %s certificate for %s from %s: %v; retrying in %v", role, id, c.CAAddress, err, delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			conn.Close()
			return nil, nil, nil, ctx.Err()
		}
	}
	return src, roots, func() { src.Close(); conn.Close() }, nil
}

// XDSDialOptions are the gRPC options of a proxy's ADS connection: plaintext (local test servers), or,
// as ztunnel does, TLS that checks the control plane's identity against the mesh roots and presents the
// proxy's SVID.
func XDSDialOptions(plaintext bool, roots []*x509.Certificate, svid x509svid.Source) []grpc.DialOption {
	if plaintext {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(
		caclient.ClientTLSConfig(roots, mesh.ServerName, mesh.ControlPlaneID, svid)))}
}

// Identity is what a booted proxy starts with: its certificate source, the mesh's trust bundle and the
// dial options of its ADS connection. Close releases the certificate source.
type Identity struct {
	SVID    x509svid.Source
	Bundle  *x509bundle.Bundle
	XDSDial []grpc.DialOption
	Close   func()
}

// Boot gets the proxy's certificate for namespace/serviceAccount and the credentials of its xDS
// connection (plaintext for local test servers).
func (c *CertSource) Boot(ctx context.Context, role, namespace, serviceAccount string, xdsPlaintext bool, logf func(string, ...any)) (*Identity, error) {
	svid, roots, closeCerts, err := c.Certificates(ctx, role, namespace, serviceAccount, logf)
	if err != nil {
		return nil, err
	}
	return &Identity{
		SVID: svid, Bundle: x509bundle.FromX509Authorities(mesh.TrustDomain, roots),
		XDSDial: XDSDialOptions(xdsPlaintext, roots, svid), Close: closeCerts,
	}, nil
}
