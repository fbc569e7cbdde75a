// Package mesh holds the names both of meshlab's planes agree on, and nothing that does work: where the
// control plane lives and who it is, where the CA's root is published, the audience proxies' tokens are
// minted for, the ports every proxy listens on and the Go runtime settings proxies run with. Manifests,
// the control plane and the proxies all take them from here, so a name cannot differ between the side
// that sets it and the side that reads it.
package mesh

import "github.com/spiffe/go-spiffe/v2/spiffeid"

// Where proxies find the control plane, and what it is called.
const (
	// Namespace and ServiceName locate the control plane; ServerName is the TLS server name clients ask for.
	Namespace   = "istio-system"
	ServiceName = "istiod"
	ServerName  = ServiceName + "." + Namespace + ".svc"
	// XDSPort serves xDS and the CA API on one TLS listener (istiod's 15012).
	XDSPort = 15012
	// XDSAddress is host:port of the control plane's TLS gRPC listener.
	XDSAddress = ServerName + ":15012"
	// TokenAudience is the audience proxies' projected tokens are minted for (Istio's).
	TokenAudience = "istio-ca"
	// NodeProxyServiceAccount is ztunnel's service account in Namespace, allowed to impersonate by default.
	NodeProxyServiceAccount = "ztunnel"
)

// The CA's root is published like Istio's: ConfigMap istio-ca-root-cert, key root-cert.pem, in every
// namespace. Proxies mount it to verify the control plane and each other.
const (
	RootConfigMapName = "istio-ca-root-cert"
	RootConfigMapKey  = "root-cert.pem"
)

// TrustDomain is the trust domain of every meshlab identity (Istio's default).
var TrustDomain = spiffeid.RequireTrustDomainFromString("cluster.local")

// ControlPlaneID is the SPIFFE identity the control plane's serving certificate carries.
var ControlPlaneID = spiffeid.RequireFromSegments(TrustDomain, "ns", Namespace, "sa", ServiceName)

// HBONEPort is where every proxy (ztunnel, waypoint, sidecar) accepts HBONE: HTTP/2 CONNECT over mutual TLS.
const HBONEPort = 15008

// ProxyGODEBUG keeps the Go runtime's monitor thread (sysmon) out of its deep sleep. Every manifest that
// starts a proxy (the ztunnel DaemonSet, waypoint Deployments, injected sidecars) and the data-plane
// benchmark set it, so that what is measured is what is deployed.
//
// When every P is idle, sysmon sleeps until the next system call wakes it, and then polls every 20 µs
// until the process is idle again. A proxy at a moderate request rate is idle between almost every pair
// of requests, so each request paid a futex wake-up of sysmon plus several 20 µs naps: about half of
// ztunnel's CPU at 1,000 requests/s (docs/benchmarks.md, "sysmon"). With schedtrace set, the runtime
// never lets sysmon sleep deeply; it backs off to one wake-up every 10 ms instead, about 100 a second
// whatever the load. The trace interval is the largest the runtime accepts (2^31-1 ms, 24.8 days), so the
// only visible effect is one "SCHED" line on stderr when the proxy starts.
const ProxyGODEBUG = "schedtrace=2147483647"
