package configgen

import (
	"strconv"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/meshlab/meshlab/controlplane/model"
)

// Cluster names of TCPRoute backends that route nowhere, as istiod names them. No such cluster exists, so the
// proxy closes each connection sent there (Envoy's NC flag).
const (
	// clusterUnknownService is a backendRef that is not a Service.
	clusterUnknownService = "UnknownService"
	// zeroWeightHost, zeroWeightSubset and zeroWeightPort are the destination istiod routes a TCPRoute rule
	// to when every backend has weight 0 (Gateway API: connections are rejected).
	zeroWeightHost   = "internal.cluster.local"
	zeroWeightSubset = "zero-weight"
	zeroWeightPort   = 65535
)

// tcpBackendNames names a TCPRoute's backend clusters in one proxy's scheme (a waypoint's inbound-vip names,
// a sidecar's outbound names): a Service's port, a host that resolves to no Service, the zero-weight
// destination.
type tcpBackendNames struct {
	service    func(svc *model.Service, port uint32) string
	missing    func(host string, port uint32) string
	zeroWeight string
}

// waypointTCPNames are a waypoint's: inbound-vip|PORT|tcp|FQDN for a Service; istiod names a host it does not
// know (its port protocol unknown) as HTTP.
var waypointTCPNames = tcpBackendNames{
	service: func(svc *model.Service, port uint32) string { return InboundVIPName(svc, port, "") },
	missing: func(host string, port uint32) string {
		return "inbound-vip|" + strconv.FormatUint(uint64(port), 10) + "|http|" + host
	},
	zeroWeight: "inbound-vip|" + strconv.Itoa(zeroWeightPort) + "|http/" + zeroWeightSubset + "|" + zeroWeightHost,
}

// outboundTCPNames are a sidecar's and an ingress gateway's: outbound|PORT||FQDN.
var outboundTCPNames = tcpBackendNames{
	service: func(svc *model.Service, port uint32) string { return OutboundName(svc, port, "") },
	missing: func(host string, port uint32) string {
		return "outbound|" + strconv.FormatUint(uint64(port), 10) + "||" + host
	},
	zeroWeight: "outbound|" + strconv.Itoa(zeroWeightPort) + "|" + zeroWeightSubset + "|" + zeroWeightHost,
}

// serviceTCPProxy is the tcp_proxy of a service port's chain: to the port's own cluster, or with a TCPRoute,
// as istiod builds it: one backend is its cluster, several are weighted clusters, none (every weight 0) is
// the zero-weight destination.
func serviceTCPProxy(snap *model.Snapshot, svc *model.Service, port uint32, statPrefix string, names tcpBackendNames) *listenerv3.Filter {
	tr := snap.TCPRouteFor(svc, port)
	if tr == nil {
		return tcpProxy(statPrefix, names.service(svc, port))
	}
	return routedTCPProxy(tr, port, statPrefix, names)
}

// routedTCPProxy is the tcp_proxy of a TCPRoute for connections to port (a service port, or an ingress
// gateway's TCP listener).
func routedTCPProxy(tr *model.TCPRoute, port uint32, statPrefix string, names tcpBackendNames) *listenerv3.Filter {
	cluster := func(be model.TCPBackend) string {
		p := be.PortFor(port)
		switch {
		case be.Service != nil:
			return names.service(be.Service, p)
		case be.Host != "":
			return names.missing(be.Host, p)
		}
		return clusterUnknownService
	}
	switch len(tr.Backends) {
	case 0:
		return tcpProxy(statPrefix, names.zeroWeight)
	case 1:
		return tcpProxy(statPrefix, cluster(tr.Backends[0]))
	}
	wc := &tcpproxyv3.TcpProxy_WeightedCluster{}
	for _, be := range tr.Backends {
		wc.Clusters = append(wc.Clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: cluster(be), Weight: be.Weight})
	}
	return networkFilter(nameTCPProxy, &tcpproxyv3.TcpProxy{StatPrefix: statPrefix, ClusterSpecifier: &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: wc}})
}
