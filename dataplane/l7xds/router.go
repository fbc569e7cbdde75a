package l7xds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"

	"github.com/meshlab/meshlab/dataplane/admin"
)

// RouterOptions are what Istio's router proxies, the waypoint and the ingress gateway, share: where their
// config comes from, who they are, and where they report. Each proxy's Options embed them.
type RouterOptions struct {
	// XDSAddress is the control plane's ADS endpoint (host:port). Required.
	XDSAddress string
	// XDSDialOptions for gRPC; nil means plaintext.
	XDSDialOptions []grpc.DialOption
	// Namespace and Name identify the proxy's Gateway. Required. With Pod and an IP the node ID is Istio's
	// router~IP~POD.NAMESPACE~..., so that each replica is a proxy of its own for proxy-status (the
	// metadata still name the Gateway, whose config every replica gets).
	Namespace, Name, Pod string
	// IPs are the pod's addresses, sent as node metadata.
	IPs []string
	// Version is reported to the control plane.
	Version string

	// SVID is the proxy's own identity, presented to clients and upstreams. Required.
	SVID x509svid.Source
	// Bundle verifies peers. Required.
	Bundle x509bundle.Source
	// TrustDomain is what peers must belong to (default: the SVID's).
	TrustDomain spiffeid.TrustDomain

	// AdminAddress serves the admin interface (default 127.0.0.1:15000; "off" disables it).
	AdminAddress string
	// HealthAddress serves /healthz/ready (default ":15021"; "off" disables it).
	HealthAddress string
	// UpstreamDial opens TCP connections to endpoints and HBONE peers; nil uses a net.Dialer.
	UpstreamDial func(ctx context.Context, network, addr string) (net.Conn, error)

	// AccessLog receives one line per request; nil discards.
	AccessLog io.Writer
	// Logf reports events and errors; nil discards.
	Logf func(format string, args ...any)
	// Registry receives the metrics; nil creates one.
	Registry *prometheus.Registry
	// Rand is passed to the engine (seeded in tests); nil is math/rand/v2.
	Rand func() uint64
}

// Complete checks the required options and fills in the defaults; what names the proxy in errors.
func (o *RouterOptions) Complete(what string) error {
	if o.XDSAddress == "" || o.SVID == nil || o.Bundle == nil || o.Namespace == "" || o.Name == "" {
		return errors.New(what + ": XDSAddress, SVID, Bundle, Namespace and Name are required")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.AdminAddress == "" {
		o.AdminAddress = admin.DefaultAddress
	}
	if o.HealthAddress == "" {
		o.HealthAddress = admin.DefaultHealthAddress
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.TrustDomain.IsZero() {
		svid, err := o.SVID.GetX509SVID()
		if err != nil {
			return fmt.Errorf("reading the %s's SVID: %w", what, err)
		}
		o.TrustDomain = svid.ID.TrustDomain()
	}
	return nil
}
