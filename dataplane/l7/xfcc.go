package l7

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

const headerXFCC = "X-Forwarded-Client-Cert"

// xfcc is the connection manager's forward_client_cert_details: what happens to X-Forwarded-Client-Cert,
// which tells the app behind a proxy who called it (Istio's sidecar inbound appends the caller's SPIFFE
// ID; everything else strips what a client sent, Envoy's default).
type xfcc struct {
	mode              hcmv3.HttpConnectionManager_ForwardClientCertDetails
	subject, uri, dns bool // set_current_client_cert_details
}

func compileXFCC(m *hcmv3.HttpConnectionManager) (xfcc, error) {
	x := xfcc{mode: m.GetForwardClientCertDetails()}
	if cur := m.GetSetCurrentClientCertDetails(); cur != nil {
		if err := checkFields(cur, "subject", "uri", "dns"); err != nil {
			return x, fmt.Errorf("set_current_client_cert_details: %w", err)
		}
		x.subject, x.uri, x.dns = cur.GetSubject().GetValue(), cur.GetUri(), cur.GetDns()
	}
	return x, nil
}

// apply rewrites r's X-Forwarded-Client-Cert for a request that arrived on d, as Envoy does: a connection
// without a client certificate gets the header removed unless the mode is ALWAYS_FORWARD_ONLY.
func (x xfcc) apply(r *http.Request, d *Downstream) {
	mtls := d.PeerCert != nil
	switch x.mode {
	case hcmv3.HttpConnectionManager_ALWAYS_FORWARD_ONLY:
	case hcmv3.HttpConnectionManager_FORWARD_ONLY:
		if !mtls {
			r.Header.Del(headerXFCC)
		}
	case hcmv3.HttpConnectionManager_APPEND_FORWARD:
		if !mtls {
			r.Header.Del(headerXFCC)
			return
		}
		prev := strings.Join(r.Header.Values(headerXFCC), ",")
		cur := x.current(d)
		if prev != "" {
			cur = prev + "," + cur
		}
		r.Header.Set(headerXFCC, cur)
	case hcmv3.HttpConnectionManager_SANITIZE_SET:
		r.Header.Del(headerXFCC)
		if mtls {
			r.Header.Set(headerXFCC, x.current(d))
		}
	default: // SANITIZE
		r.Header.Del(headerXFCC)
	}
}

// current is this hop's element, in Envoy's order: By (the proxy's own URI SAN), Hash (SHA-256 of the
// client's certificate), then Subject, URI and DNS as set_current_client_cert_details asks.
func (x xfcc) current(d *Downstream) string {
	var parts []string
	if d.Local != "" {
		parts = append(parts, "By="+d.Local)
	}
	sum := sha256.Sum256(d.PeerCert.Raw)
	parts = append(parts, "Hash="+hex.EncodeToString(sum[:]))
	if x.subject {
		parts = append(parts, `Subject="`+subjectOf(d.PeerCert)+`"`)
	}
	if x.uri {
		for _, u := range d.PeerCert.URIs {
			parts = append(parts, "URI="+u.String())
		}
	}
	if x.dns {
		for _, n := range d.PeerCert.DNSNames {
			parts = append(parts, "DNS="+n)
		}
	}
	return strings.Join(parts, ";")
}

// subjectOf is the subject DN as Envoy writes it (RFC 2253 order); Istio's workload certificates have
// an empty subject.
func subjectOf(c *x509.Certificate) string {
	if len(c.Subject.Names) == 0 {
		return ""
	}
	return strings.ReplaceAll(c.Subject.String(), `"`, `\"`)
}
