package configgen

import (
	"sort"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlab/meshlab/controlplane/model"
)

// GatewayListenerName is an ingress gateway's listener for a port: 0.0.0.0_PORT (Istio's).
func GatewayListenerName(port uint32) string {
	return "0.0.0.0_" + strconv.FormatUint(uint64(port), 10)
}

// GatewayRouteName is an ingress gateway's route configuration for an HTTP port: http.PORT (Istio's).
func GatewayRouteName(port uint32) string { return "http." + strconv.FormatUint(uint64(port), 10) }

// gatewayGen generates for an ingress gateway (a Gateway of class istio), as istiod does for a Gateway API
// gateway: a listener per port whose connection manager takes route configuration http.PORT, a virtual
// host per hostname of the attached HTTPRoutes (a TCP port's listener instead proxies to its TCPRoute's
// backends), and, as Istio sends gateways by default, the
// outbound|PORT|SUBSET|FQDN clusters of every service (a sidecar's outbound clusters).
// Endpoints are reached as sidecars reach them: over HBONE (envoy://connect_originate/IP:PORT) for pods
// that terminate it (ambient or injected), in plain text otherwise. Istio's gateway does the same for
// ambient backends by default; it goes through a service's waypoint only when the service opts in with
// istio.io/ingress-use-waypoint, which meshlab does not implement (the model warns).
type gatewayGen struct {
	snap *model.Snapshot
	gw   *model.IngressGateway
}

func newGatewayGen(s *model.Snapshot, p model.Proxy) (*gatewayGen, error) {
	if _, err := s.Resolve(p); err != nil {
		return nil, err
	}
	return &gatewayGen{snap: s, gw: s.IngressGateway(p.Namespace, p.Name)}, nil
}

func (g *gatewayGen) listeners() []*listenerv3.Listener {
	// connect_originate carries requests to mesh pods over HBONE, as on a waypoint.
	out := []*listenerv3.Listener{connectOriginateListener()}
	for _, p := range g.gw.Ports {
		if p.TCP {
			if p.TCPRoute == nil {
				continue // no route attached: nothing to serve, as istiod builds no listener for it
			}
			out = append(out, &listenerv3.Listener{
				Name:             GatewayListenerName(p.Port),
				Address:          socketAddress("0.0.0.0", p.Port),
				TrafficDirection: corev3.TrafficDirection_OUTBOUND,
				FilterChains:     []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{routedTCPProxy(p.TCPRoute, p.Port, "outbound_"+GatewayListenerName(p.Port), outboundTCPNames)}}},
			})
			continue
		}
		m := hcmConfig("outbound_"+GatewayListenerName(p.Port), GatewayRouteName(p.Port), nil, routeFilters()...)
		m.UseRemoteAddress = wrapperspb.Bool(true) // the gateway is the edge: the client is the peer
		out = append(out, &listenerv3.Listener{
			Name:             GatewayListenerName(p.Port),
			Address:          socketAddress("0.0.0.0", p.Port),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			FilterChains:     []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{networkFilter(nameHCM, m)}}},
		})
	}
	return out
}

func (g *gatewayGen) routes() []*routev3.RouteConfiguration {
	var out []*routev3.RouteConfiguration
	for _, p := range g.gw.Ports {
		if p.TCP {
			continue
		}
		rc := &routev3.RouteConfiguration{Name: GatewayRouteName(p.Port), ValidateClusters: wrapperspb.Bool(false)}
		for _, vh := range p.VirtualHosts {
			rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
				Name:    vh.Hostname + ":" + strconv.FormatUint(uint64(p.Port), 10),
				Domains: []string{vh.Hostname}, // Istio strips the port from Host before matching
				Routes:  ruleRoutes(vh.Rules, p.Port, OutboundName, routeHashes{snap: g.snap}, gatewayOperation),
			})
		}
		out = append(out, rc)
	}
	return out
}

// gatewayOperation names a route's tracing operation as Istio's gateway does: its first backend and the
// path, FQDN:PORT/PATH for an exact path, FQDN:PORT/* otherwise.
func gatewayOperation(r *model.RouteRule) string {
	if len(r.Destinations) == 0 || r.Destinations[0].Service == nil {
		return "-"
	}
	d := r.Destinations[0]
	path := "/*"
	if len(r.Matches) == 1 && r.Matches[0].Path != nil && r.Matches[0].Path.Type == model.MatchExact {
		path = r.Matches[0].Path.Value
	}
	return d.Service.FQDN + ":" + strconv.FormatUint(uint64(d.Port), 10) + path
}

func (g *gatewayGen) clusters() []*clusterv3.Cluster {
	out := append([]*clusterv3.Cluster{{
		Name:                 ClusterBlackHole,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(connectTimeout),
	}, connectOriginateCluster()}, outboundClusters(g.snap, g.snap.Services())...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (g *gatewayGen) endpoints() []*endpointv3.ClusterLoadAssignment {
	return outboundEndpoints(g.snap, g.snap.Services())
}
