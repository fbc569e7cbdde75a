package svidsource_test

import (
	"context"
	"crypto/x509"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshlab/meshlab/identity/ca"
	"github.com/meshlab/meshlab/identity/svidsource"
)

var _ svidsource.Issuer = (*ca.CA)(nil)

// flakyIssuer fails its first n calls after the first, to exercise retries.
type flakyIssuer struct {
	*ca.CA
	calls, failFrom, failCount atomic.Int32
}

func (f *flakyIssuer) SignCSR(ctx context.Context, csr []byte, id spiffeid.ID, ttl time.Duration) ([]*x509.Certificate, error) {
	n := f.calls.Add(1)
	if n >= f.failFrom.Load() && n < f.failFrom.Load()+f.failCount.Load() {
		return nil, errors.New("ca unavailable")
	}
	return f.CA.SignCSR(ctx, csr, id, ttl)
}

func TestRotatesBeforeExpiry(t *testing.T) {
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/sleep")
	var mu sync.Mutex
	var seen []*x509svid.SVID
	const ttl = 2 * time.Second
	src, err := svidsource.New(context.Background(), authority, id, svidsource.WithTTL(ttl),
		svidsource.WithOnRotate(func(s *x509svid.SVID) { mu.Lock(); seen = append(seen, s); mu.Unlock() }))
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	defer src.Close()
	first, _ := src.GetX509SVID()
	if len(first.Certificates) != 1 {
		t.Errorf("SVID carries %d certificates, want the leaf only (root dropped)", len(first.Certificates))
	}
	if _, _, err := x509svid.Verify(first.Certificates, authority.Bundle()); err != nil {
		t.Fatalf("first SVID does not verify: %v", err)
	}
	deadline := time.Now().Add(3 * ttl)
	for {
		cur, _ := src.GetX509SVID()
		if cur != first {
			// Rotation must happen while the previous certificate is still valid (at half life).
			if now := time.Now(); !now.Before(first.Certificates[0].NotAfter) {
				t.Fatalf("rotated at %v, after the old certificate expired at %v", now, first.Certificates[0].NotAfter)
			}
			if time.Since(first.Certificates[0].NotAfter.Add(-ttl)) < ttl/2-200*time.Millisecond {
				t.Errorf("rotated too early")
			}
			if cur.Certificates[0].SerialNumber.Cmp(first.Certificates[0].SerialNumber) == 0 {
				t.Error("rotated SVID has the same serial")
			}
			if cur.ID != id {
				t.Errorf("rotated SVID ID = %s", cur.ID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no rotation within 3 TTLs")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 2 {
		t.Errorf("OnRotate ran %d times, want >= 2", len(seen))
	}
}

func TestRetriesAfterFailure(t *testing.T) {
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	iss := &flakyIssuer{CA: authority}
	iss.failFrom.Store(2)
	iss.failCount.Store(2)
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/sleep")
	src, err := svidsource.New(context.Background(), iss, id, svidsource.WithTTL(time.Second),
		svidsource.WithRetry(50*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	defer src.Close()
	first, _ := src.GetX509SVID()
	deadline := time.Now().Add(3 * time.Second)
	for {
		if cur, _ := src.GetX509SVID(); cur != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rotation after transient failures (%d calls)", iss.calls.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := iss.calls.Load(); got < 4 {
		t.Errorf("issuer called %d times, want >= 4 (1 + 2 failures + success)", got)
	}
}

func TestNewFailsWhenIssuerFails(t *testing.T) {
	authority, _ := ca.New()
	iss := &flakyIssuer{CA: authority}
	iss.failFrom.Store(1)
	iss.failCount.Store(1)
	if _, err := svidsource.New(context.Background(), iss, spiffeid.RequireFromString("spiffe://cluster.local/ns/a/sa/b")); err == nil {
		t.Fatal("New() succeeded although the first signing failed")
	}
}
