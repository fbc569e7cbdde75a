package inject

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/caserver"
	"github.com/meshlab/meshlab/identity/ca"
)

const webhookDNS = "istiod.istio-system.svc"

// dnsCert makes a self-signed serving certificate for name, as a webhook certificate must be.
func dnsCert(t *testing.T, name string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestProbe(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle(Path, Handler(Options{Values: testValues, NamespaceLabels: staticNamespaces(map[string]map[string]string{"default": nil})}))

	// A certificate with the Service's DNS name: the probe (like the API server) accepts it.
	cert, caPEM := dnsCert(t, webhookDNS)
	good := httptest.NewUnstartedServer(mux)
	good.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	good.Config.ErrorLog = log.New(io.Discard, "", 0)
	good.StartTLS()
	defer good.Close()
	ctx := context.Background()
	addr := strings.TrimPrefix(good.URL, "https://")
	if err := Probe(ctx, addr, caPEM, webhookDNS, "default"); err != nil {
		t.Errorf("Probe() = %v", err)
	}
	if err := Probe(ctx, addr, caPEM, "other.istio-system.svc", "default"); err == nil {
		t.Error("Probe() accepted a certificate for another name")
	}

	// meshlab's CA today issues SPIFFE SVIDs without DNS names: an API server would refuse them, and so
	// does the probe. (The control plane needs a DNS-named serving certificate for the webhook.)
	c, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := caserver.ServerTLSConfig(ctx, c, mesh.ControlPlaneID)
	if err != nil {
		t.Fatal(err)
	}
	svid := httptest.NewUnstartedServer(mux)
	svid.TLS = tlsCfg
	svid.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	svid.StartTLS()
	defer svid.Close()
	err = Probe(ctx, strings.TrimPrefix(svid.URL, "https://"), c.RootPEM(), webhookDNS, "default")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Probe() against a URI-only SVID = %v, want a certificate error", err)
	}
	if err := Probe(ctx, "127.0.0.1:1", caPEM, webhookDNS, "default"); err == nil {
		t.Error("Probe() of a closed port succeeded")
	}
}
