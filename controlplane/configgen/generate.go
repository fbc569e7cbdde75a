// Package configgen turns a model snapshot into what one proxy receives: Envoy listeners, routes, clusters and
// endpoints for waypoints and sidecars (go-control-plane types, in Istio's shapes), and workload API structs
// for ztunnel. Every generator is a pure, deterministic function of (snapshot, proxy): same inputs, same
// output, sorted, so a cache can key on its inputs.
package configgen

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/controlplane/model"
)

// Config is everything an Envoy-style proxy receives, each list sorted by name.
type Config struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
}

// envoyGen is what the waypoint and sidecar generators share.
type envoyGen interface {
	listeners() []*listenerv3.Listener
	routes() []*routev3.RouteConfiguration
	clusters() []*clusterv3.Cluster
	endpoints() []*endpointv3.ClusterLoadAssignment
}

func newGen(s *model.Snapshot, p model.Proxy) (envoyGen, error) {
	switch p.Kind {
	case model.KindWaypoint:
		return newWaypointGen(s, p)
	case model.KindSidecar:
		return newSidecarGen(s, p)
	case model.KindGateway:
		return newGatewayGen(s, p)
	case model.KindZtunnel:
		return nil, fmt.Errorf("proxy %s: ztunnel does not take Envoy config; use ZtunnelConfig", p.ID())
	}
	return nil, fmt.Errorf("proxy %s: unknown kind %q", p.ID(), p.Kind)
}

// Envoy generates all four resource types for a waypoint, gateway or sidecar proxy. The error is a
// *model.NotFoundError when the proxy names nothing in the snapshot.
func Envoy(s *model.Snapshot, p model.Proxy) (*Config, error) {
	g, err := newGen(s, p)
	if err != nil {
		return nil, err
	}
	return &Config{Listeners: g.listeners(), Routes: g.routes(), Clusters: g.clusters(), Endpoints: g.endpoints()}, nil
}

// Resources generates one xDS type for a waypoint or sidecar proxy (typeURL is one of xdstype.Listener,
// xdstype.Route, xdstype.Cluster, xdstype.Endpoint), for servers that push types separately (for example EDS alone).
func Resources(s *model.Snapshot, p model.Proxy, typeURL string) ([]proto.Message, error) {
	g, err := newGen(s, p)
	if err != nil {
		return nil, err
	}
	var out []proto.Message
	switch typeURL {
	case xdstype.Listener:
		for _, r := range g.listeners() {
			out = append(out, r)
		}
	case xdstype.Route:
		for _, r := range g.routes() {
			out = append(out, r)
		}
	case xdstype.Cluster:
		for _, r := range g.clusters() {
			out = append(out, r)
		}
	case xdstype.Endpoint:
		for _, r := range g.endpoints() {
			out = append(out, r)
		}
	default:
		return nil, fmt.Errorf("proxy %s: no generator for type %s", p.ID(), typeURL)
	}
	return out, nil
}
