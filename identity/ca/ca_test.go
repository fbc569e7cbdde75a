package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func TestIssueVerifiesAgainstRoot(t *testing.T) {
	c, err := New(WithTTL(time.Hour))
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	for _, tc := range []struct{ ns, sa, want string }{
		{"default", "sleep", "spiffe://cluster.local/ns/default/sa/sleep"},
		{"bookinfo", "bookinfo-reviews", "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews"},
	} {
		id, err := c.WorkloadID(tc.ns, tc.sa)
		if err != nil {
			t.Fatalf("WorkloadID(%q, %q) = %v", tc.ns, tc.sa, err)
		}
		svid, err := c.Issue(id, 0)
		if err != nil {
			t.Fatalf("Issue(%s) = %v", id, err)
		}
		leaf := svid.Certificates[0]
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != tc.want {
			t.Errorf("URI SANs = %v, want exactly [%s]", leaf.URIs, tc.want)
		}
		if len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 0 || len(leaf.EmailAddresses) != 0 {
			t.Errorf("leaf has non-URI SANs: %v %v %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
		}
		if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || leaf.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
			t.Errorf("leaf key is %T, want ECDSA P-256", leaf.PublicKey)
		}
		if got := leaf.NotAfter.Sub(time.Now()); got < 59*time.Minute || got > time.Hour {
			t.Errorf("leaf expires in %v, want about 1h", got)
		}
		gotID, _, err := x509svid.Verify(svid.Certificates, c.Bundle())
		if err != nil {
			t.Fatalf("x509svid.Verify() = %v", err)
		}
		if gotID.String() != tc.want {
			t.Errorf("verified ID = %s, want %s", gotID, tc.want)
		}
	}
}

func TestDefaultTTL(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	id, _ := c.WorkloadID("default", "sleep")
	svid, err := c.Issue(id, 0)
	if err != nil {
		t.Fatalf("Issue() = %v", err)
	}
	if got := time.Until(svid.Certificates[0].NotAfter); got < 23*time.Hour || got > 24*time.Hour {
		t.Errorf("default lifetime %v, want 24h", got)
	}
}

func TestSignCSRIgnoresRequestedSANs(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	evil, _ := url.Parse("spiffe://cluster.local/ns/kube-system/sa/admin")
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{evil}, DNSNames: []string{"x.example"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/sleep")
	chain, err := c.SignCSR(context.Background(), csr, id, 10*time.Minute)
	if err != nil {
		t.Fatalf("SignCSR() = %v", err)
	}
	if len(chain) != 2 || !chain[1].Equal(c.Root()) {
		t.Fatalf("chain has %d certificates, want leaf + root", len(chain))
	}
	leaf := chain[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() || len(leaf.DNSNames) != 0 {
		t.Errorf("SANs = %v %v, want only %s", leaf.URIs, leaf.DNSNames, id)
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Error("leaf is not for the CSR's key")
	}
	if got := time.Until(leaf.NotAfter); got > 10*time.Minute || got < 9*time.Minute {
		t.Errorf("lifetime %v, want 10m", got)
	}
}

func TestSignRejects(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	if _, err := c.SignCSR(context.Background(), []byte("junk"), spiffeid.RequireFromString("spiffe://cluster.local/ns/a/sa/b"), 0); err == nil {
		t.Error("SignCSR(junk) succeeded")
	}
	if _, err := c.Issue(spiffeid.RequireFromString("spiffe://other.domain/ns/a/sa/b"), 0); err == nil {
		t.Error("Issue() in a foreign trust domain succeeded")
	}
}

func TestLoadOrCreateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatalf("LoadOrCreate() = %v", err)
	}
	st, err := os.Stat(filepath.Join(dir, RootKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("root key file: %v, mode %v", err, st)
	}
	second, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatalf("LoadOrCreate() again = %v", err)
	}
	if string(first.RootPEM()) != string(second.RootPEM()) {
		t.Fatal("second LoadOrCreate made a new root")
	}
	// A certificate issued by the reloaded CA verifies against the first CA's bundle.
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/sleep")
	svid, err := second.Issue(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, first.Bundle()); err != nil {
		t.Errorf("Verify() against the original root = %v", err)
	}
	other, _ := New()
	if _, _, err := x509svid.Verify(svid.Certificates, other.Bundle()); err == nil {
		t.Error("SVID verified against an unrelated root")
	}
	if err := os.Remove(filepath.Join(dir, RootCertFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir); err == nil {
		t.Error("LoadOrCreate() with only the key present succeeded")
	}
}

func TestIssueServingHasDNSAndURI(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := c.WorkloadID("istio-system", "istiod")
	svid, err := c.IssueServing(id, []string{"istiod.istio-system.svc"}, time.Hour)
	if err != nil {
		t.Fatalf("IssueServing() = %v", err)
	}
	leaf := svid.Certificates[0]
	roots := x509.NewCertPool()
	roots.AddCert(c.Root())
	// The API server's check: chain plus hostname.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "istiod.istio-system.svc"}); err != nil {
		t.Errorf("Verify(DNSName) = %v", err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() {
		t.Errorf("URIs = %v, want [%s]", leaf.URIs, id)
	}
	if _, err := c.IssueServing(id, nil, time.Hour); err == nil {
		t.Error("IssueServing without DNS names succeeded")
	}
}
