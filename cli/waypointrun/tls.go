package waypointrun

import (
	"crypto/x509"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/meshlab/meshlab/controlplane/ca/caservice"
)

// tlsDialOption authenticates the xDS connection as ztunnel's does: the control plane's identity checked
// against the mesh roots, the waypoint's SVID presented.
func tlsDialOption(roots []*x509.Certificate, svid x509svid.Source) grpc.DialOption {
	return grpc.WithTransportCredentials(credentials.NewTLS(caservice.ClientTLSConfig(roots, caservice.ServerName, caservice.ControlPlaneID, svid)))
}
