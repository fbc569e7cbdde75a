package caserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/meshlab/meshlab/api/cav1"
	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/caserver"
	"github.com/meshlab/meshlab/identity"
	"github.com/meshlab/meshlab/identity/ca"
	"github.com/meshlab/meshlab/identity/caclient"
	"github.com/meshlab/meshlab/identity/svidsource"
)

// tokens is the in-test authenticator: a fixed token -> caller table, recording what it saw. The real
// TokenReviewer needs an API server; it is exercised on kind (ztunnel and waypoints fetch their SVIDs
// through it), and CallerFromReview, its parsing, is tested below.
type tokens struct {
	mu         sync.Mutex
	table      map[string]caserver.Caller
	tokensSeen []string
}

func (a *tokens) Authenticate(_ context.Context, token string) (caserver.Caller, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tokensSeen = append(a.tokensSeen, token)
	c, ok := a.table[token]
	if !ok {
		return caserver.Caller{}, errors.New("unknown token")
	}
	return c, nil
}

func (a *tokens) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.tokensSeen...)
}

// locator says which service accounts have pods on which node.
type locator map[string][]string // node -> "ns/sa"

func (l locator) OnNode(_ context.Context, ns, sa, node string) (bool, error) {
	for _, v := range l[node] {
		if v == ns+"/"+sa {
			return true, nil
		}
	}
	return false, nil
}

type fixture struct {
	ca    *ca.CA
	auth  *tokens
	addr  string
	dir   string
	conns []*grpc.ClientConn
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c, err := ca.New(ca.WithTTL(time.Hour))
	if err != nil {
		t.Fatalf("ca.New() = %v", err)
	}
	auth := &tokens{table: map[string]caserver.Caller{
		"sleep-token":    {Namespace: "default", ServiceAccount: "sleep"},
		"ztunnel-token":  {Namespace: "istio-system", ServiceAccount: "ztunnel", NodeName: "worker"},
		"ztunnel-nonode": {Namespace: "istio-system", ServiceAccount: "ztunnel"},
		"node":           {Namespace: "", ServiceAccount: ""},
	}}
	srv, err := caserver.NewServer(caserver.Options{
		CA: c, Authenticator: auth, MaxTTL: 2 * time.Hour, Logf: t.Logf,
		Locator: locator{"worker": {"default/productpage", "default/sleep"}, "worker2": {"default/reviews"}},
	})
	if err != nil {
		t.Fatalf("NewServer() = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	tlsCfg, err := caserver.ServerTLSConfig(ctx, c, mesh.ControlPlaneID)
	if err != nil {
		t.Fatalf("ServerTLSConfig() = %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	srv.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return &fixture{ca: c, auth: auth, addr: lis.Addr().String(), dir: t.TempDir()}
}

// dial connects over TLS verifying the control plane by its SPIFFE ID and the test CA's root.
func (f *fixture) dial(t *testing.T, roots []*x509.Certificate, serverID spiffeid.ID) *grpc.ClientConn {
	t.Helper()
	conn, err := caclient.Dial(f.addr, caclient.ClientTLSConfig(roots, mesh.ServerName, serverID, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func (f *fixture) client(t *testing.T, token string) (*caclient.Client, string) {
	t.Helper()
	path := filepath.Join(f.dir, token)
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return caclient.NewClient(f.dial(t, []*x509.Certificate{f.ca.Root()}, mesh.ControlPlaneID), path), path
}

func csrFor(t *testing.T, uri string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(uri)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}, DNSNames: []string{"evil.example"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func TestCreateCertificate(t *testing.T) {
	// The server's pieces are built once: real gRPC over loopback TLS, real CSR signing.
	f := newFixture(t)
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	id := func(ns, sa string) spiffeid.ID { return spiffeid.RequireFromSegments(td, "ns", ns, "sa", sa) }
	cases := []struct {
		name  string
		token string // "" sends no authorization metadata
		ask   string // impersonated_identity
		want  spiffeid.ID
		code  codes.Code
		ttl   time.Duration
	}{
		{name: "own identity; the CSR's SANs are ignored", token: "sleep-token", want: id("default", "sleep")},
		{name: "asking for itself is not impersonation", token: "sleep-token", ask: "spiffe://cluster.local/ns/default/sa/sleep", want: id("default", "sleep")},
		{name: "requested lifetime", token: "sleep-token", ttl: 10 * time.Minute, want: id("default", "sleep")},
		{name: "lifetime capped at MaxTTL", token: "sleep-token", ttl: 48 * time.Hour, want: id("default", "sleep")},
		{name: "no token", code: codes.Unauthenticated},
		{name: "unknown token", token: "forged", code: codes.Unauthenticated},
		{name: "a token of no service account", token: "node", code: codes.Unauthenticated},
		{name: "workload may not impersonate", token: "sleep-token", ask: "spiffe://cluster.local/ns/default/sa/productpage", code: codes.PermissionDenied},
		{name: "ztunnel impersonates a pod on its node", token: "ztunnel-token", ask: "spiffe://cluster.local/ns/default/sa/productpage", want: id("default", "productpage")},
		{name: "ztunnel may not impersonate a pod elsewhere", token: "ztunnel-token", ask: "spiffe://cluster.local/ns/default/sa/reviews", code: codes.PermissionDenied},
		{name: "ztunnel token bound to no node", token: "ztunnel-nonode", ask: "spiffe://cluster.local/ns/default/sa/productpage", code: codes.PermissionDenied},
		{name: "foreign trust domain", token: "ztunnel-token", ask: "spiffe://evil.org/ns/default/sa/productpage", code: codes.InvalidArgument},
		{name: "not a workload identity", token: "ztunnel-token", ask: "spiffe://cluster.local/admin", code: codes.InvalidArgument},
	}
	cc := cav1.NewCertificateServiceClient(f.dial(t, []*x509.Certificate{f.ca.Root()}, mesh.ControlPlaneID))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if tc.token != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tc.token)
			}
			der, key := csrFor(t, "spiffe://cluster.local/ns/kube-system/sa/admin")
			resp, err := cc.CreateCertificate(ctx, &cav1.CreateCertificateRequest{
				Csr:                  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
				ValidityDuration:     int64(tc.ttl / time.Second),
				ImpersonatedIdentity: tc.ask,
			})
			if tc.code != codes.OK {
				if status.Code(err) != tc.code {
					t.Fatalf("CreateCertificate() = %v, want code %v", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("CreateCertificate() = %v", err)
			}
			if len(resp.CertChain) != 2 {
				t.Fatalf("chain has %d certificates, want leaf and root", len(resp.CertChain))
			}
			chain, err := identity.ParseCertificates([]byte(resp.CertChain[0] + resp.CertChain[1]))
			if err != nil {
				t.Fatal(err)
			}
			leaf := chain[0]
			got, err := x509svid.IDFromCert(leaf)
			if err != nil || got != tc.want {
				t.Errorf("certificate identity = %v (%v), want %v", got, err, tc.want)
			}
			if len(leaf.DNSNames) != 0 || len(leaf.URIs) != 1 {
				t.Errorf("certificate SANs = DNS %v URI %v, want exactly one URI", leaf.DNSNames, leaf.URIs)
			}
			if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
				t.Error("certificate is not for the CSR's key")
			}
			if !chain[1].Equal(f.ca.Root()) {
				t.Error("chain does not end with the CA's root")
			}
			wantTTL := time.Hour // the CA's default
			if tc.ttl > 0 {
				wantTTL = min(tc.ttl, 2*time.Hour)
			}
			if life := time.Until(leaf.NotAfter); life > wantTTL || life < wantTTL-time.Minute {
				t.Errorf("certificate expires in %v, want about %v", life, wantTTL)
			}
		})
	}
}

func TestClientIsARotatingIssuer(t *testing.T) {
	f := newFixture(t)
	client, path := f.client(t, "ztunnel-token")
	ctx := context.Background()
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/sleep")
	rotated := make(chan *x509svid.SVID, 10)
	// 2s certificates are renewed after about 1s.
	src, err := svidsource.New(ctx, client, id, svidsource.WithTTL(2*time.Second),
		svidsource.WithOnRotate(func(s *x509svid.SVID) { rotated <- s }))
	if err != nil {
		t.Fatalf("svidsource.New() = %v", err)
	}
	defer src.Close()
	first := <-rotated
	if first.ID != id {
		t.Fatalf("first SVID is for %s, want %s", first.ID, id)
	}
	// The kubelet rotates the token file: the next renewal must use the new token.
	f.auth.mu.Lock()
	f.auth.table["ztunnel-token-2"] = f.auth.table["ztunnel-token"]
	f.auth.mu.Unlock()
	if err := os.WriteFile(path, []byte("ztunnel-token-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case second := <-rotated:
		if second.Certificates[0].SerialNumber.Cmp(first.Certificates[0].SerialNumber) == 0 {
			t.Error("rotation returned the same certificate")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SVID not rotated within 10s")
	}
	seen := f.auth.seen()
	if last := seen[len(seen)-1]; last != "ztunnel-token-2" {
		t.Errorf("last token presented = %q, want the rotated one", last)
	}
}

func TestClientRefusesAnUntrustedControlPlane(t *testing.T) {
	f := newFixture(t)
	other, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(f.dir, "tok")
	os.WriteFile(path, []byte("sleep-token"), 0o600)
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/sleep")
	der, _ := csrFor(t, id.String())
	cases := []struct {
		name     string
		roots    []*x509.Certificate
		serverID spiffeid.ID
		ok       bool
	}{
		{"right root and identity", []*x509.Certificate{f.ca.Root()}, mesh.ControlPlaneID, true},
		{"another CA's root", []*x509.Certificate{other.Root()}, mesh.ControlPlaneID, false},
		{"another identity", []*x509.Certificate{f.ca.Root()}, spiffeid.RequireFromString("spiffe://cluster.local/ns/x/sa/y"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := caclient.NewClient(f.dial(t, tc.roots, tc.serverID), path).SignCSR(ctx, der, id, 0)
			if (err == nil) != tc.ok {
				t.Fatalf("SignCSR() = %v, want ok=%t", err, tc.ok)
			}
			if !tc.ok && status.Code(err) != codes.Unavailable {
				t.Errorf("SignCSR() code = %v, want Unavailable (TLS handshake refused)", status.Code(err))
			}
		})
	}
}

func TestCallerFromReview(t *testing.T) {
	aud := []string{"istio-ca"}
	cases := []struct {
		name string
		st   authenticationv1.TokenReviewStatus
		want caserver.Caller
		err  bool
	}{
		{name: "pod-bound token", st: authenticationv1.TokenReviewStatus{
			Authenticated: true, Audiences: aud,
			User: authenticationv1.UserInfo{Username: "system:serviceaccount:istio-system:ztunnel", Extra: map[string]authenticationv1.ExtraValue{
				caserver.ExtraNodeName: {"meshlab-worker"}, caserver.ExtraPodName: {"ztunnel-abcde"}}},
		}, want: caserver.Caller{Namespace: "istio-system", ServiceAccount: "ztunnel", NodeName: "meshlab-worker", PodName: "ztunnel-abcde"}},
		{name: "unbound token", st: authenticationv1.TokenReviewStatus{Authenticated: true,
			User: authenticationv1.UserInfo{Username: "system:serviceaccount:default:sleep"}},
			want: caserver.Caller{Namespace: "default", ServiceAccount: "sleep"}},
		{name: "not authenticated", st: authenticationv1.TokenReviewStatus{User: authenticationv1.UserInfo{Username: "system:serviceaccount:default:sleep"}}, err: true},
		{name: "review error", st: authenticationv1.TokenReviewStatus{Error: "token expired"}, err: true},
		{name: "wrong audience", st: authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"kubernetes"},
			User: authenticationv1.UserInfo{Username: "system:serviceaccount:default:sleep"}}, err: true},
		{name: "a user", st: authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "kubernetes-admin"}}, err: true},
		{name: "a node", st: authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "system:node:meshlab-worker"}}, err: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := caserver.CallerFromReview(tc.st, aud)
			if (err != nil) != tc.err {
				t.Fatalf("CallerFromReview() = %v, want error %t", err, tc.err)
			}
			if got != tc.want {
				t.Errorf("CallerFromReview() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPodLocator(t *testing.T) {
	pod := func(name, sa, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.PodSpec{ServiceAccountName: sa, NodeName: node}}
	}
	l := caserver.PodLocator{Client: fake.NewClientset(pod("sleep-1", "sleep", "worker"), pod("reviews-1", "reviews", "worker2"), pod("bare", "", "worker"))}
	cases := []struct {
		sa, node string
		want     bool
	}{
		{"sleep", "worker", true},
		{"sleep", "worker2", false},
		{"reviews", "worker2", true},
		{"default", "worker", true}, // no serviceAccountName means "default"
		{"ratings", "worker", false},
	}
	for _, tc := range cases {
		got, err := l.OnNode(context.Background(), "default", tc.sa, tc.node)
		if err != nil || got != tc.want {
			t.Errorf("OnNode(default, %s, %s) = %t, %v; want %t", tc.sa, tc.node, got, err, tc.want)
		}
	}
}

func TestPublishRoot(t *testing.T) {
	client := fake.NewClientset()
	ctx := context.Background()
	for _, root := range []string{"one", "one", "two"} { // create, no-op, update
		if err := caserver.PublishRoot(ctx, client, []byte(root), "istio-system"); err != nil {
			t.Fatalf("PublishRoot() = %v", err)
		}
		cm, err := client.CoreV1().ConfigMaps("istio-system").Get(ctx, mesh.RootConfigMapName, metav1.GetOptions{})
		if err != nil || cm.Data[mesh.RootConfigMapKey] != root {
			t.Fatalf("ConfigMap = %v, %v; want root %q", cm, err, root)
		}
	}
}
