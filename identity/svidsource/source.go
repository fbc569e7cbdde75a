// Package svidsource keeps a proxy's X.509 SVID fresh: it holds the current certificate and key and asks an
// Issuer for a new one at half of the certificate's life, long before it expires. A Source plugs into
// go-spiffe's tlsconfig as an x509svid.Source.
package svidsource

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Issuer signs a CSR for a SPIFFE ID and returns the chain, leaf first. ttl <= 0 asks for the issuer's
// default. meshlab's *ca.CA implements it in-process; the control plane's CA client implements it over gRPC.
type Issuer interface {
	SignCSR(ctx context.Context, csrDER []byte, id spiffeid.ID, ttl time.Duration) ([]*x509.Certificate, error)
}

// Source holds the current SVID of one identity and rotates it in the background.
type Source struct {
	issuer   Issuer
	id       spiffeid.ID
	ttl      time.Duration
	now      func() time.Time
	logf     func(string, ...any)
	onRotate func(*x509svid.SVID)
	minRetry time.Duration
	maxRetry time.Duration

	mu      sync.RWMutex
	svid    *x509svid.SVID
	renewAt time.Time

	cancel context.CancelFunc
	done   chan struct{}
}

var _ x509svid.Source = (*Source)(nil)

// Option configures a Source.
type Option func(*Source)

// WithTTL asks the issuer for certificates of this lifetime (default: the issuer's).
func WithTTL(d time.Duration) Option { return func(s *Source) { s.ttl = d } }

// WithLogf sets where rotation failures are reported.
func WithLogf(logf func(string, ...any)) Option { return func(s *Source) { s.logf = logf } }

// WithOnRotate registers a callback run after every successful fetch, the first included.
func WithOnRotate(fn func(*x509svid.SVID)) Option { return func(s *Source) { s.onRotate = fn } }

// WithRetry sets the backoff bounds after a failed renewal (default 500ms to 30s).
func WithRetry(minDelay, maxDelay time.Duration) Option {
	return func(s *Source) { s.minRetry, s.maxRetry = minDelay, maxDelay }
}

// New fetches the first SVID for id (failing if that fails) and starts rotating it until Close or until
// ctx is done.
func New(ctx context.Context, issuer Issuer, id spiffeid.ID, opts ...Option) (*Source, error) {
	s := &Source{
		issuer: issuer, id: id, now: time.Now,
		logf:     func(string, ...any) {},
		minRetry: 500 * time.Millisecond, maxRetry: 30 * time.Second,
		done: make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	if err := s.fetch(ctx); err != nil {
		return nil, err
	}
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go s.run(ctx)
	return s, nil
}

// ID is the identity this source holds.
func (s *Source) ID() spiffeid.ID { return s.id }

// GetX509SVID returns the current SVID.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.svid == nil {
		return nil, fmt.Errorf("no SVID for %s", s.id)
	}
	return s.svid, nil
}

// RenewAt is when the current SVID will be replaced.
func (s *Source) RenewAt() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.renewAt
}

// Close stops rotation. The last SVID stays readable.
func (s *Source) Close() error {
	s.cancel()
	<-s.done
	return nil
}

func (s *Source) run(ctx context.Context) {
	defer close(s.done)
	retry := s.minRetry
	for {
		wait := time.Until(s.RenewAt())
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := s.fetch(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.logf("renewing SVID for %s (retrying in %v): %v", s.id, retry, err)
			s.mu.Lock()
			s.renewAt = s.now().Add(retry)
			s.mu.Unlock()
			retry = min(2*retry, s.maxRetry)
			continue
		}
		retry = s.minRetry
	}
}

func (s *Source) fetch(ctx context.Context) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{s.id.URL()}}, key)
	if err != nil {
		return fmt.Errorf("creating CSR: %w", err)
	}
	chain, err := s.issuer.SignCSR(ctx, csr, s.id, s.ttl)
	if err != nil {
		return fmt.Errorf("signing CSR for %s: %w", s.id, err)
	}
	chain = withoutRoots(chain)
	if len(chain) == 0 {
		return fmt.Errorf("signing CSR for %s: issuer returned no certificate", s.id)
	}
	leafID, err := x509svid.IDFromCert(chain[0])
	if err != nil {
		return fmt.Errorf("checking issued SVID: %w", err)
	}
	if leafID != s.id {
		return fmt.Errorf("checking issued SVID: got %s, want %s", leafID, s.id)
	}
	if !chain[0].PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		return errors.New("checking issued SVID: certificate is not for the requested key")
	}
	svid := &x509svid.SVID{ID: s.id, Certificates: chain, PrivateKey: key}
	// Half of the remaining life, measured from now rather than NotBefore, which the CA backdates.
	now := s.now()
	renewAt := now.Add(chain[0].NotAfter.Sub(now) / 2)
	s.mu.Lock()
	s.svid, s.renewAt = svid, renewAt
	s.mu.Unlock()
	if s.onRotate != nil {
		s.onRotate(svid)
	}
	return nil
}

// withoutRoots drops self-signed certificates: peers hold the root already, so sending it is waste.
func withoutRoots(chain []*x509.Certificate) []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(chain))
	for _, c := range chain {
		if bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
			continue
		}
		out = append(out, c)
	}
	return out
}
