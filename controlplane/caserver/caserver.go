// Package caserver is the control plane's side of meshlab's CA API (api/cav1), in the shape of Istio's
// IstioCertificateService: a proxy sends a CSR with its Kubernetes service-account token as
// `authorization: Bearer <token>` and gets back a short-lived SVID for exactly the identity the token
// proves (spiffe://cluster.local/ns/N/sa/SA), whatever the CSR asks for. A trusted node proxy (ztunnel) may
// instead ask for the identity of a workload running on its own node (impersonation), because it presents
// each source pod's identity on that pod's tunnels.
//
// The control plane serves this API and xDS on one TLS listener, 15012, like istiod. Proxies reach it as
// istiod.istio-system.svc:15012 (api/mesh); their side of the API is identity/caclient and
// the signing core identity/ca.
package caserver

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshlab/meshlab/api/cav1"
	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/identity/ca"
)

// Signer is what the server needs of a CA; *ca.CA implements it.
type Signer interface {
	TrustDomain() spiffeid.TrustDomain
	TTL() time.Duration
	SignCSR(ctx context.Context, csrDER []byte, id spiffeid.ID, ttl time.Duration) ([]*x509.Certificate, error)
}

var _ Signer = (*ca.CA)(nil)

// Options configure a Server.
type Options struct {
	// CA signs the certificates. Required.
	CA Signer
	// Authenticator turns a bearer token into a Caller. Required; TokenReviewer in a cluster.
	Authenticator Authenticator
	// NodeProxies are the "namespace/serviceaccount" callers allowed to impersonate workloads on their node;
	// nil means {"istio-system/ztunnel"}, empty (non-nil) means nobody.
	NodeProxies []string
	// Locator confirms that an impersonated identity has a pod on the caller's node. When nil, a node proxy
	// may obtain any identity in the trust domain (a simplification for tests; the control plane sets it).
	Locator WorkloadLocator
	// MaxTTL caps the lifetime a caller may ask for (default: the CA's TTL).
	MaxTTL time.Duration
	// Logf records every issuance and refusal; nil discards.
	Logf func(format string, args ...any)
}

// Server implements cav1.CertificateServiceServer.
type Server struct {
	cav1.UnimplementedCertificateServiceServer
	opts Options
}

// NewServer checks opts and returns a server; Register it on a grpc.Server.
func NewServer(opts Options) (*Server, error) {
	if opts.CA == nil || opts.Authenticator == nil {
		return nil, errors.New("caservice: CA and Authenticator are required")
	}
	if opts.NodeProxies == nil {
		opts.NodeProxies = []string{mesh.Namespace + "/" + mesh.NodeProxyServiceAccount}
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = opts.CA.TTL()
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return &Server{opts: opts}, nil
}

// Register serves the certificate service on g.
func (s *Server) Register(g grpc.ServiceRegistrar) { cav1.RegisterCertificateServiceServer(g, s) }

// CreateCertificate authenticates the caller, decides the identity and signs the CSR for it.
func (s *Server) CreateCertificate(ctx context.Context, req *cav1.CreateCertificateRequest) (*cav1.CreateCertificateResponse, error) {
	token, err := BearerToken(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	caller, err := s.opts.Authenticator.Authenticate(ctx, token)
	if err != nil {
		s.opts.Logf("ca: refusing a certificate: authenticating: %v", err)
		return nil, status.Errorf(codes.Unauthenticated, "authenticating: %v", err)
	}
	id, err := s.identityFor(ctx, caller, req.GetImpersonatedIdentity())
	if err != nil {
		s.opts.Logf("ca: refusing %s/%s: %v", caller.Namespace, caller.ServiceAccount, err)
		return nil, err
	}
	block, _ := pem.Decode([]byte(req.GetCsr()))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, status.Error(codes.InvalidArgument, "csr: no CERTIFICATE REQUEST PEM block")
	}
	ttl := time.Duration(req.GetValidityDuration()) * time.Second
	if ttl <= 0 {
		ttl = s.opts.CA.TTL()
	}
	ttl = min(ttl, s.opts.MaxTTL)
	chain, err := s.opts.CA.SignCSR(ctx, block.Bytes, id, ttl)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "signing: %v", err)
	}
	resp := &cav1.CreateCertificateResponse{}
	for _, c := range chain {
		resp.CertChain = append(resp.CertChain, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	by := ""
	if id != caller.id(s.opts.CA.TrustDomain()) {
		by = fmt.Sprintf(" for node proxy %s/%s on %s", caller.Namespace, caller.ServiceAccount, caller.NodeName)
	}
	s.opts.Logf("ca: issued %s%s, serial %x, expires %s", id, by, chain[0].SerialNumber, chain[0].NotAfter.UTC().Format(time.RFC3339))
	return resp, nil
}

// identityFor returns the identity to sign: the caller's own, or the impersonated one when the caller is a
// node proxy and the workload runs on its node.
func (s *Server) identityFor(ctx context.Context, caller Caller, impersonated string) (spiffeid.ID, error) {
	td := s.opts.CA.TrustDomain()
	own := caller.id(td)
	if own.IsZero() {
		return spiffeid.ID{}, status.Errorf(codes.Unauthenticated, "caller %q is not a service account", caller.Namespace+"/"+caller.ServiceAccount)
	}
	if impersonated == "" || impersonated == own.String() {
		return own, nil
	}
	if !slices.Contains(s.opts.NodeProxies, caller.Namespace+"/"+caller.ServiceAccount) {
		return spiffeid.ID{}, status.Errorf(codes.PermissionDenied, "%s may not request certificates for %s", own, impersonated)
	}
	want, err := spiffeid.FromString(impersonated)
	if err != nil {
		return spiffeid.ID{}, status.Errorf(codes.InvalidArgument, "impersonated identity: %v", err)
	}
	ns, sa, ok := ParseWorkloadID(want)
	if !ok || want.TrustDomain() != td {
		return spiffeid.ID{}, status.Errorf(codes.InvalidArgument, "impersonated identity %s is not spiffe://%s/ns/N/sa/SA", want, td)
	}
	if s.opts.Locator == nil {
		return want, nil
	}
	if caller.NodeName == "" {
		return spiffeid.ID{}, status.Errorf(codes.PermissionDenied, "node proxy %s presented a token bound to no node; mount a projected token", own)
	}
	on, err := s.opts.Locator.OnNode(ctx, ns, sa, caller.NodeName)
	if err != nil {
		return spiffeid.ID{}, status.Errorf(codes.Unavailable, "looking up pods of %s: %v", want, err)
	}
	if !on {
		return spiffeid.ID{}, status.Errorf(codes.PermissionDenied, "no pod with service account %s/%s runs on node %s", ns, sa, caller.NodeName)
	}
	return want, nil
}

// ParseWorkloadID reads namespace and service account out of spiffe://td/ns/N/sa/SA.
func ParseWorkloadID(id spiffeid.ID) (namespace, serviceAccount string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" || parts[1] == "" || parts[3] == "" {
		return "", "", false
	}
	return parts[1], parts[3], true
}

// BearerToken returns the token of a gRPC caller's `authorization: Bearer <token>` metadata.
func BearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if tok, ok := strings.CutPrefix(v, "Bearer "); ok && tok != "" {
			return strings.TrimSpace(tok), nil
		}
	}
	return "", errors.New("no `authorization: Bearer <service-account token>` metadata")
}
