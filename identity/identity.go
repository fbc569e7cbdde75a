// Package identity holds what every holder of a mesh identity needs, whichever plane it is in: reading PEM
// certificates and roots, and presenting an SVID in a TLS handshake. The CA core is in identity/ca, a
// proxy's rotating certificate in identity/svidsource and the proxy's side of the CA API in
// identity/caclient.
package identity

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// TLSCertificate returns src's current SVID as a tls.Certificate: the leaf, then the rest of its chain.
func TLSCertificate(src x509svid.Source) (*tls.Certificate, error) {
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

// ParseCertificates decodes every CERTIFICATE block of PEM data.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
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
