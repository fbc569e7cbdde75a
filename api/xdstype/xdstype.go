// Package xdstype names every xDS resource type meshlab serves or asks for: the Envoy types (taken from
// go-control-plane's resource package, the one place they are defined) and Istio's workload API types. It
// is the only place a type URL is spelt out, so the server, the clients and their tests cannot disagree.
package xdstype

import (
	"strings"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// Type URLs.
const (
	Cluster       = resourcev3.ClusterType
	Endpoint      = resourcev3.EndpointType
	Listener      = resourcev3.ListenerType
	Route         = resourcev3.RouteType
	Secret        = resourcev3.SecretType
	Address       = "type.googleapis.com/istio.workload.Address"       // a Workload or a Service, for ztunnel
	Authorization = "type.googleapis.com/istio.security.Authorization" // an L4 policy, for ztunnel
)

// Istio's debug types: not config, but questions a client (istioctl) asks istiod over ADS. The response to
// DebugSyncz holds one envoy.service.status.v3.ClientConfig per connected proxy; the response to
// DebugConfigDump, asked with one resource name (a proxy ID), holds the pieces of that proxy's Envoy
// admin ConfigDump as the control plane sees it.
const (
	DebugPrefix     = "istio.io/debug"
	DebugSyncz      = DebugPrefix + "/syncz"
	DebugConfigDump = DebugPrefix + "/config_dump"
)

// IsDebug reports whether typeURL is one of Istio's debug types (istio.io/debug or istio.io/debug/...).
func IsDebug(typeURL string) bool {
	return typeURL == DebugPrefix || strings.HasPrefix(typeURL, DebugPrefix+"/")
}

// Short returns the short xDS name of a type URL as Istio's tools print it (CDS, LDS, EDS, RDS, SDS; WDS
// for workload addresses, WADS for authorizations, as Istio names them), or the message name for any other type.
func Short(typeURL string) string {
	switch typeURL {
	case Cluster:
		return "CDS"
	case Listener:
		return "LDS"
	case Endpoint:
		return "EDS"
	case Route:
		return "RDS"
	case Secret:
		return "SDS"
	case Address:
		return "WDS"
	case Authorization:
		return "WADS"
	}
	return typeURL[strings.LastIndex(typeURL, "/")+1:]
}
