package caservice

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/meshlab/meshlab/controlplane/ca/caservice/cav1"
	"github.com/meshlab/meshlab/controlplane/ca/svidsource"
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
	chain, err := ParseCertificates([]byte(strings.Join(resp.GetCertChain(), "\n")))
	if err != nil {
		return nil, fmt.Errorf("parsing the certificate for %s: %w", id, err)
	}
	if len(chain) == 0 {
		return nil, errors.New("CA returned an empty chain")
	}
	return chain, nil
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
