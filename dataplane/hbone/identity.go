package hbone

import (
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// IdentityError is a peer that presented a valid mesh certificate of another identity than the one the
// client expects for the destination. Its message is ztunnel's, so a user who greps for it finds the same
// line in both meshes.
type IdentityError struct {
	// Expected lists the acceptable identities (any one will do); TrustDomain, if set, replaces it: the
	// peer had to belong to that trust domain.
	Expected    []spiffeid.ID
	TrustDomain spiffeid.TrustDomain
	Presented   spiffeid.ID
}

func (e *IdentityError) Error() string {
	if !e.TrustDomain.IsZero() {
		return fmt.Sprintf("identity verification error: peer did not present the expected trustdomain (%s), got %s", e.TrustDomain, e.Presented)
	}
	ids := make([]string, len(e.Expected))
	for i, id := range e.Expected {
		ids[i] = id.String()
	}
	return fmt.Sprintf("identity verification error: peer did not present the expected SAN (%s), got %s", strings.Join(ids, ","), e.Presented)
}

// AuthorizeIdentity accepts a server whose SPIFFE ID is one of expected: the exact identity of the
// destination workload (or of the waypoint in front of it). A certificate that chains to the mesh root but
// names another service account fails with an *IdentityError.
func AuthorizeIdentity(expected ...spiffeid.ID) tlsconfig.Authorizer {
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		for _, e := range expected {
			if id == e {
				return nil
			}
		}
		return &IdentityError{Expected: expected, Presented: id}
	}
}

// AuthorizeTrustDomain accepts any server of td, failing with an *IdentityError otherwise; it is the check
// for destinations whose identity the client does not know (Istio's trust-domain SAN prefix).
func AuthorizeTrustDomain(td spiffeid.TrustDomain) tlsconfig.Authorizer {
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if id.MemberOf(td) {
			return nil
		}
		return &IdentityError{TrustDomain: td, Presented: id}
	}
}
