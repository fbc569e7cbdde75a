// Package ca is meshlab's certificate authority core: a self-signed root (created or loaded) that issues
// short-lived X.509 SVIDs carrying a SPIFFE ID as their only SAN. The gRPC service that authenticates
// proxies with TokenReview is built on top of it; this package knows nothing about Kubernetes.
package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

const (
	// DefaultTTL is the lifetime of an issued SVID unless the CA or the request says otherwise.
	DefaultTTL = 24 * time.Hour
	// DefaultRootTTL is the lifetime of a root the CA creates itself.
	DefaultRootTTL = 10 * 365 * 24 * time.Hour
	// RootCertFile and RootKeyFile are the names LoadOrCreate uses inside its directory.
	RootCertFile = "root-cert.pem"
	RootKeyFile  = "root-key.pem"

	// backdate keeps freshly issued certificates valid on peers whose clocks run slightly behind.
	backdate = time.Minute
)

// CA holds a root key and certificate and signs workload certificates with them.
type CA struct {
	td      spiffeid.TrustDomain
	ttl     time.Duration
	now     func() time.Time
	root    *x509.Certificate
	key     crypto.Signer
	rootPEM []byte
}

// Option configures a CA.
type Option func(*CA)

// WithTTL sets the default lifetime of issued SVIDs.
func WithTTL(d time.Duration) Option { return func(c *CA) { c.ttl = d } }

// WithTrustDomain sets the trust domain (default cluster.local).
func WithTrustDomain(td spiffeid.TrustDomain) Option { return func(c *CA) { c.td = td } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(c *CA) { c.now = now } }

func newCA(opts []Option) *CA {
	c := &CA{td: mesh.TrustDomain, ttl: DefaultTTL, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	return c
}

// New creates a CA with a freshly generated self-signed ECDSA P-256 root.
func New(opts ...Option) (*CA, error) {
	c := newCA(opts)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating root key: %w", err)
	}
	now := c.now()
	tmpl := &x509.Certificate{
		SerialNumber:          mustSerial(),
		Subject:               pkix.Name{Organization: []string{"meshlab"}, CommonName: "meshlab root CA"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(DefaultRootTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		URIs:                  []*url.URL{c.td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating root certificate: %w", err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing root certificate: %w", err)
	}
	c.root, c.key = root, key
	c.rootPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return c, nil
}

// Load builds a CA from a PEM root certificate and its PEM private key (PKCS#8, EC or PKCS#1).
func Load(certPEM, keyPEM []byte, opts ...Option) (*CA, error) {
	c := newCA(opts)
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("parsing root certificate: no CERTIFICATE PEM block")
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing root certificate: %w", err)
	}
	if !root.IsCA {
		return nil, errors.New("root certificate is not a CA")
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if ok, err := publicKeysEqual(key.Public(), root.PublicKey); err != nil || !ok {
		return nil, errors.New("root key does not match root certificate")
	}
	c.root, c.key = root, key
	c.rootPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})
	return c, nil
}

// LoadOrCreate loads root-cert.pem and root-key.pem from dir, or creates a new root and writes them there
// (the key with mode 0600) when neither exists.
func LoadOrCreate(dir string, opts ...Option) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, RootCertFile), filepath.Join(dir, RootKeyFile)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		return Load(certPEM, keyPEM, opts...)
	case !errors.Is(certErr, os.ErrNotExist) && certErr != nil:
		return nil, fmt.Errorf("reading %s: %w", certPath, certErr)
	case !errors.Is(keyErr, os.ErrNotExist) && keyErr != nil:
		return nil, fmt.Errorf("reading %s: %w", keyPath, keyErr)
	case certErr == nil || keyErr == nil:
		return nil, fmt.Errorf("only one of %s and %s exists in %s", RootCertFile, RootKeyFile, dir)
	}
	c, err := New(opts...)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return nil, fmt.Errorf("marshalling root key: %w", err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", keyPath, err)
	}
	if err := os.WriteFile(certPath, c.rootPEM, 0o644); err != nil {
		return nil, fmt.Errorf("writing %s: %w", certPath, err)
	}
	return c, nil
}

// TrustDomain is the trust domain the CA issues identities in.
func (c *CA) TrustDomain() spiffeid.TrustDomain { return c.td }

// Root returns the root certificate.
func (c *CA) Root() *x509.Certificate { return c.root }

// RootPEM returns the root certificate in PEM, as published to proxies.
func (c *CA) RootPEM() []byte { return append([]byte(nil), c.rootPEM...) }

// Bundle returns the trust bundle (the root) for the CA's trust domain.
func (c *CA) Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(c.td, []*x509.Certificate{c.root})
}

// TTL is the default lifetime of issued SVIDs.
func (c *CA) TTL() time.Duration { return c.ttl }

// WorkloadID is the SPIFFE ID of a Kubernetes service account in the CA's trust domain:
// spiffe://<td>/ns/<namespace>/sa/<serviceaccount>.
func (c *CA) WorkloadID(namespace, serviceAccount string) (spiffeid.ID, error) {
	return WorkloadID(c.td, namespace, serviceAccount)
}

// WorkloadID builds spiffe://<td>/ns/<namespace>/sa/<serviceaccount>.
func WorkloadID(td spiffeid.TrustDomain, namespace, serviceAccount string) (spiffeid.ID, error) {
	id, err := spiffeid.FromSegments(td, "ns", namespace, "sa", serviceAccount)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("building SPIFFE ID for %s/%s: %w", namespace, serviceAccount, err)
	}
	return id, nil
}

// SignCSR signs a PKCS#10 request for id. The CSR proves possession of the key; its subject and SANs are
// ignored: the certificate carries exactly one URI SAN, id, decided by the caller (who authenticated the
// requester). ttl <= 0 means the CA's default. It returns the chain, leaf first. The context is unused
// locally; it is there so that *CA satisfies the same Issuer interface as a remote CA client.
func (c *CA) SignCSR(_ context.Context, csrDER []byte, id spiffeid.ID, ttl time.Duration) ([]*x509.Certificate, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("parsing CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("checking CSR signature: %w", err)
	}
	leaf, err := c.sign(csr.PublicKey, id, ttl)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{leaf, c.root}, nil
}

// Issue generates an ECDSA P-256 key and signs an SVID for id. ttl <= 0 means the CA's default.
func (c *CA) Issue(id spiffeid.ID, ttl time.Duration) (*x509svid.SVID, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	leaf, err := c.sign(&key.PublicKey, id, ttl)
	if err != nil {
		return nil, err
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{leaf}, PrivateKey: key}, nil
}

// IssueServing issues a certificate for a server that non-mesh clients reach by DNS name (the Kubernetes
// API server calling the injection webhook, for one): the SPIFFE ID as a URI SAN plus dnsNames, which Go's
// (and the API server's) hostname check needs. Mesh peers keep verifying the URI SAN.
func (c *CA) IssueServing(id spiffeid.ID, dnsNames []string, ttl time.Duration) (*x509svid.SVID, error) {
	if len(dnsNames) == 0 {
		return nil, errors.New("issuing serving certificate: no DNS names")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	leaf, err := c.sign(&key.PublicKey, id, ttl, dnsNames...)
	if err != nil {
		return nil, err
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{leaf}, PrivateKey: key}, nil
}

func (c *CA) sign(pub any, id spiffeid.ID, ttl time.Duration, dnsNames ...string) (*x509.Certificate, error) {
	if id.IsZero() {
		return nil, errors.New("signing SVID: empty SPIFFE ID")
	}
	if id.TrustDomain() != c.td {
		return nil, fmt.Errorf("signing SVID: %s is not in trust domain %s", id, c.td)
	}
	if ttl <= 0 {
		ttl = c.ttl
	}
	now := c.now()
	notAfter := now.Add(ttl)
	if notAfter.After(c.root.NotAfter) {
		notAfter = c.root.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          mustSerial(),
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URL()},
		DNSNames:              dnsNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.root, pub, c.key)
	if err != nil {
		return nil, fmt.Errorf("signing SVID for %s: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing SVID for %s: %w", id, err)
	}
	return leaf, nil
}

func mustSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(fmt.Sprintf("reading random serial: %v", err)) // crypto/rand does not fail on Linux
	}
	return n
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("parsing root key: no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing root key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parsing root key: %T cannot sign", key)
	}
	return signer, nil
}

func publicKeysEqual(a, b crypto.PublicKey) (bool, error) {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	if !ok {
		return false, fmt.Errorf("comparing keys: %T", a)
	}
	return e.Equal(b), nil
}
