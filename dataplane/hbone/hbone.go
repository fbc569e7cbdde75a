// Package hbone is meshlab's HBONE tunnel: TCP streams carried as HTTP/2 CONNECT requests over mutual TLS 1.3,
// both ends authenticated by SPIFFE X.509 SVIDs, on port 15008. The client pools TLS+HTTP/2 connections per
// (proxy address, identity) so many streams share one connection; the server verifies the peer's SPIFFE ID,
// checks the CONNECT target and hands each stream to a handler.
package hbone

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Headers meshlab sets on CONNECT requests so that the far end can show where a stream came from.
const (
	// HeaderForwarded carries the original source address, as `for=IP` (RFC 7239).
	HeaderForwarded = "Forwarded"
	// HeaderBaggage carries the source workload's labels in W3C baggage form, as Istio's ztunnel does
	// (k8s.namespace.name, k8s.pod.name, service.name, ...).
	HeaderBaggage = "Baggage"
	// HeaderTraceparent carries W3C trace context through the tunnel.
	HeaderTraceparent = "Traceparent"
)

// ErrUnsupported is returned by operations a tunnelled stream cannot honour.
var ErrUnsupported = errors.ErrUnsupported

// ServerTLSConfig is the TLS configuration for an HBONE listener: TLS 1.3 only, ALPN h2, the server presents
// svid and requires a client SVID that chains to bundle and satisfies authorize (tlsconfig.AuthorizeAny to
// leave identity decisions to Server.Authorize). Go's hostname check does not apply: the peer's identity is
// its URI SAN, verified by go-spiffe.
func ServerTLSConfig(svid x509svid.Source, bundle x509bundle.Source, authorize tlsconfig.Authorizer) *tls.Config {
	cfg := tlsconfig.MTLSServerConfig(svid, bundle, authorize)
	cfg.MinVersion = tls.VersionTLS13
	cfg.NextProtos = []string{"h2"}
	return cfg
}

// ClientTLSConfig is the TLS configuration for dialling an HBONE server: the client presents svid and
// accepts only a server SVID that chains to bundle and satisfies authorize (typically
// AuthorizeIdentity(destination or waypoint identity)).
func ClientTLSConfig(svid x509svid.Source, bundle x509bundle.Source, authorize tlsconfig.Authorizer) *tls.Config {
	cfg := tlsconfig.MTLSClientConfig(svid, bundle, authorize)
	cfg.MinVersion = tls.VersionTLS13
	cfg.NextProtos = []string{"h2"}
	return cfg
}

// PeerID extracts the SPIFFE ID of a verified TLS peer.
func PeerID(cs *tls.ConnectionState) (spiffeid.ID, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, errors.New("peer presented no certificate")
	}
	return idFromCert(cs.PeerCertificates[0])
}

func idFromCert(c *x509.Certificate) (spiffeid.ID, error) {
	id, err := x509svid.IDFromCert(c)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("reading peer SPIFFE ID: %w", err)
	}
	return id, nil
}

// StatusError is what Dial returns when the server answered the CONNECT with a non-2xx status,
// e.g. 403 when authorization denied the stream.
type StatusError struct {
	Code   int
	Target string
	Reason string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("HBONE CONNECT %s: %d %s", e.Target, e.Code, http.StatusText(e.Code))
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}
