package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/meshlab/meshlab/controlplane/caserver"
	"github.com/meshlab/meshlab/controlplane/xds"
)

// MetaServiceAccount is the node metadata key a client states its service account in (Istio's; istioctl
// sets it on its debug streams).
const MetaServiceAccount = "SERVICE_ACCOUNT"

// DebugAccess decides who may read Istio's debug types over ADS (istio.io/debug/syncz and config_dump,
// which istioctl proxy-status asks for), the way istiod does:
//
//   - over TLS (15012), the caller must prove a service account, by a client certificate from the mesh CA
//     or by a bearer token auth accepts (istioctl sends a token of audience istio-ca for
//     ISTIO_NAMESPACE/default in `authorization` metadata; in the cluster auth is a TokenReview), and its
//     node must not claim another one (metadata NAMESPACE and SERVICE_ACCOUNT, when set: istiod's
//     checkConnectionIdentity). A caller of systemNamespace sees every proxy, any other only the proxies of
//     its own namespace.
//   - on the plaintext listener (15010) anyone may ask. This differs from istiod, which by default refuses
//     debug types on 15010 (there is no identity to check there): meshlab's 15010 is the lab's debugging
//     port, it serves xDS to anyone already, and the same sync state is on 15014's /debug/syncz unguarded.
//
// A nil auth accepts client certificates only.
func DebugAccess(auth caserver.Authenticator, systemNamespace string) xds.DebugAuthorizer {
	return func(ctx context.Context, client *xds.Proxy) (string, error) {
		p, ok := peer.FromContext(ctx)
		if !ok {
			return "", status.Error(codes.Unauthenticated, "no peer")
		}
		if _, tls := p.AuthInfo.(credentials.TLSInfo); !tls {
			return "", nil
		}
		ns, sa, err := debugCaller(ctx, auth)
		if err != nil {
			return "", err
		}
		if client.Namespace != "" && client.Namespace != ns {
			return "", status.Errorf(codes.PermissionDenied, "caller %s/%s presents a node of namespace %s", ns, sa, client.Namespace)
		}
		if claimed := client.Metadata[MetaServiceAccount]; claimed != "" && claimed != sa {
			return "", status.Errorf(codes.PermissionDenied, "caller %s/%s presents a node of service account %s", ns, sa, claimed)
		}
		if ns == systemNamespace {
			return "", nil
		}
		return ns, nil
	}
}

// debugCaller is the service account a TLS caller proves: its client certificate's, else its token's.
func debugCaller(ctx context.Context, auth caserver.Authenticator) (namespace, serviceAccount string, err error) {
	if id, ok := caserver.PeerIdentity(ctx); ok {
		ns, sa, ok := caserver.ParseWorkloadID(id)
		if !ok {
			return "", "", status.Errorf(codes.PermissionDenied, "client certificate %s is not a workload identity", id)
		}
		return ns, sa, nil
	}
	token, err := caserver.BearerToken(ctx)
	if err != nil {
		return "", "", status.Errorf(codes.Unauthenticated, "debug types need a client certificate or a token: %v", err)
	}
	if auth == nil {
		return "", "", status.Error(codes.Unauthenticated, "debug types need a client certificate: tokens are not checked here")
	}
	caller, err := auth.Authenticate(ctx, token)
	if err != nil {
		return "", "", status.Errorf(codes.Unauthenticated, "authenticating: %v", err)
	}
	return caller.Namespace, caller.ServiceAccount, nil
}
