package configgen

import (
	"fmt"
	"math"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshlab/meshlab/controlplane/model"
)

// This file turns a DestinationRule's traffic policy into cluster settings and route hash policies as
// istiod does. Every proxy kind (waypoint, sidecar, and gateways) builds its service clusters with
// serviceCluster, so they all read a DestinationRule the same way.

// serviceCluster is the EDS cluster name for a service port, or for one subset of it, with the traffic
// policy dr gives that port and subset (model.DestinationRule.PolicyFor) applied as istiod applies it.
func serviceCluster(name string, svc *model.Service, dr *model.DestinationRule, port uint32, subset string) *clusterv3.Cluster {
	c := edsCluster(name, svc, dr)
	// Istio names the subset as it appears in the cluster name (a waypoint's "http/v1", or "http" for the
	// service itself; a sidecar's "v1"), for istioctl's SUBSET column.
	if parts := strings.Split(name, "|"); len(parts) == 4 && parts[2] != "" {
		c.Metadata.FilterMetadata[metadataIstio].Fields["subset"] = structpb.NewStringValue(parts[2])
	}
	applyTrafficPolicy(c, dr.PolicyFor(port, subset))
	if sp, ok := svc.Port(port); ok {
		setUpstreamProtocol(c, sp.Protocol)
	}
	return c
}

// setUpstreamProtocol makes an HTTP/2 or gRPC port's cluster speak HTTP/2 upstream, as istiod's cluster
// builder does, keeping the common options a connection pool set; other ports keep HTTP/1.1 (gRPC cannot
// be carried over it: it needs trailers on a stream of its own).
func setUpstreamProtocol(c *clusterv3.Cluster, p model.Protocol) {
	if p != model.ProtocolHTTP2 && p != model.ProtocolGRPC {
		return
	}
	opts := &httpv3.HttpProtocolOptions{}
	if prev := c.TypedExtensionProtocolOptions[nameHTTPProtocol]; prev != nil {
		if err := prev.UnmarshalTo(opts); err != nil {
			panic(fmt.Sprintf("re-reading %s: %v", nameHTTPProtocol, err)) // written by this package
		}
	}
	opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
		ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
	}}
	if c.TypedExtensionProtocolOptions == nil {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{}
	}
	c.TypedExtensionProtocolOptions[nameHTTPProtocol] = mustAny(opts)
}

// applyTrafficPolicy sets the connection pool (circuit breakers, connect timeout, HTTP options), outlier
// detection and load balancer of p on c; a nil p leaves Istio's defaults: unlimited circuit breakers and
// LEAST_REQUEST.
func applyTrafficPolicy(c *clusterv3.Cluster, p *networking.TrafficPolicy) {
	applyConnectionPool(c, p.GetConnectionPool())
	applyOutlierDetection(c, p.GetOutlierDetection())
	applyLoadBalancer(c, p.GetLoadBalancer())
}

// defaultCircuitBreakers are Istio's thresholds for every cluster without a connection pool: unlimited
// (2^32-1), so that Envoy's own defaults (1024 connections, pending and active requests, 3 retries) never
// throttle mesh traffic. (track_remaining stays off: istiod's DISABLE_TRACK_REMAINING_CB_METRICS default.)
func defaultCircuitBreakers() *clusterv3.CircuitBreakers {
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{defaultThresholds()}}
}

func defaultThresholds() *clusterv3.CircuitBreakers_Thresholds {
	return &clusterv3.CircuitBreakers_Thresholds{
		MaxRetries:         wrapperspb.UInt32(math.MaxUint32),
		MaxRequests:        wrapperspb.UInt32(math.MaxUint32),
		MaxConnections:     wrapperspb.UInt32(math.MaxUint32),
		MaxPendingRequests: wrapperspb.UInt32(math.MaxUint32),
	}
}

// applyConnectionPool: the limits that are set (> 0) replace the unlimited defaults; connectTimeout
// replaces the mesh's; idleTimeout and maxRequestsPerConnection become the cluster's HTTP protocol options
// (the HTTP idle timeout wins over the TCP one, as in Istio).
func applyConnectionPool(c *clusterv3.Cluster, cp *networking.ConnectionPoolSettings) {
	t := defaultThresholds()
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{t}}
	if cp == nil {
		return
	}
	var idle *durationpb.Duration
	var perConn uint32
	if h := cp.Http; h != nil {
		if h.Http2MaxRequests > 0 {
			t.MaxRequests = wrapperspb.UInt32(uint32(h.Http2MaxRequests))
		}
		if h.Http1MaxPendingRequests > 0 {
			t.MaxPendingRequests = wrapperspb.UInt32(uint32(h.Http1MaxPendingRequests))
		}
		if h.MaxRetries > 0 {
			t.MaxRetries = wrapperspb.UInt32(uint32(h.MaxRetries))
		}
		idle = h.IdleTimeout
		perConn = uint32(h.MaxRequestsPerConnection)
	}
	if tcp := cp.Tcp; tcp != nil {
		if tcp.ConnectTimeout != nil {
			c.ConnectTimeout = tcp.ConnectTimeout
		}
		if tcp.MaxConnections > 0 {
			t.MaxConnections = wrapperspb.UInt32(uint32(tcp.MaxConnections))
		}
		if idle == nil {
			idle = tcp.IdleTimeout
		}
	}
	if idle == nil && perConn == 0 {
		return
	}
	common := &corev3.HttpProtocolOptions{IdleTimeout: idle}
	if perConn > 0 {
		common.MaxRequestsPerConnection = wrapperspb.UInt32(perConn)
	}
	opts := &httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: common,
		// Envoy requires the upstream protocol; HTTP/1.1 is what an unset one means.
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{},
		}},
	}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{nameHTTPProtocol: mustAny(opts)}
}

// applyOutlierDetection: Istio's outlier detection ejects on consecutive errors only (success-rate
// ejection off), enforces each error kind it is given fully, and sets the panic threshold to
// minHealthPercent (0 unless set), so that ejected hosts are not used again when few are left.
func applyOutlierDetection(c *clusterv3.Cluster, od *networking.OutlierDetection) {
	if od == nil {
		return
	}
	out := &clusterv3.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(0)}
	enforce := func(v uint32) *wrapperspb.UInt32Value {
		if v > 0 {
			v = 100
		}
		return wrapperspb.UInt32(v)
	}
	if e := od.Consecutive_5XxErrors; e != nil {
		out.Consecutive_5Xx = wrapperspb.UInt32(e.GetValue())
		out.EnforcingConsecutive_5Xx = enforce(e.GetValue())
	}
	if e := od.ConsecutiveGatewayErrors; e != nil {
		out.ConsecutiveGatewayFailure = wrapperspb.UInt32(e.GetValue())
		out.EnforcingConsecutiveGatewayFailure = enforce(e.GetValue())
	}
	out.Interval = od.Interval
	out.BaseEjectionTime = od.BaseEjectionTime
	if od.MaxEjectionPercent > 0 {
		out.MaxEjectionPercent = wrapperspb.UInt32(uint32(od.MaxEjectionPercent))
	}
	c.OutlierDetection = out
	if od.MinHealthPercent >= 0 {
		if c.CommonLbConfig == nil {
			c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{}
		}
		c.CommonLbConfig.HealthyPanicThreshold = &typev3.Percent{Value: float64(od.MinHealthPercent)}
	}
}

// applyLoadBalancer: simple RANDOM and ROUND_ROBIN as named, LEAST_REQUEST for LEAST_REQUEST, the
// deprecated LEAST_CONN and an unset policy (Istio's default), PASSTHROUGH as an original-destination
// cluster; a consistent hash then makes it RING_HASH (ringHash, or the deprecated minimumRingSize with
// Envoy's 1024 by default) or MAGLEV.
//
// Istio sends a service's unready endpoints too, so it turns Envoy's panic mode off (threshold 0) unless
// outlier detection has set minHealthPercent: traffic never spills onto unready or ejected hosts.
func applyLoadBalancer(c *clusterv3.Cluster, lb *networking.LoadBalancerSettings) {
	if c.CommonLbConfig == nil {
		c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{}
	}
	if c.CommonLbConfig.HealthyPanicThreshold == nil {
		c.CommonLbConfig.HealthyPanicThreshold = &typev3.Percent{Value: 0}
	}
	switch lb.GetSimple() {
	case networking.LoadBalancerSettings_RANDOM:
		c.LbPolicy = clusterv3.Cluster_RANDOM
	case networking.LoadBalancerSettings_ROUND_ROBIN:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	case networking.LoadBalancerSettings_PASSTHROUGH:
		c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
		c.EdsClusterConfig = nil
		c.LoadAssignment = nil
	default:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	}
	ch := lb.GetConsistentHash()
	if ch == nil {
		return
	}
	switch {
	case ch.GetMaglev() != nil:
		c.LbPolicy = clusterv3.Cluster_MAGLEV
		if n := ch.GetMaglev().TableSize; n != 0 {
			c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(n)}}
		}
	case ch.GetRingHash() != nil:
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		if n := ch.GetRingHash().MinimumRingSize; n != 0 {
			c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(n)}}
		}
	default:
		size := uint64(1024)
		if n := ch.MinimumRingSize; n != 0 { //nolint:staticcheck // the deprecated field is still Istio's API
			size = n
		}
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(size)}}
	}
}

// hashPolicy is a route's hash policy for a consistent hash: a header, a cookie (Envoy issues it with the
// ttl when the request lacks it), the source IP or a query parameter; nil for none.
func hashPolicy(ch *networking.LoadBalancerSettings_ConsistentHashLB) *routev3.RouteAction_HashPolicy {
	switch key := ch.GetHashKey().(type) {
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: key.HttpHeaderName},
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		ck := key.HttpCookie
		cookie := &routev3.RouteAction_HashPolicy_Cookie{Name: ck.GetName(), Ttl: ck.GetTtl(), Path: ck.GetPath()}
		for _, a := range ck.GetAttributes() {
			cookie.Attributes = append(cookie.Attributes, &routev3.RouteAction_HashPolicy_CookieAttribute{Name: a.GetName(), Value: a.GetValue()})
		}
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: cookie}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: key.UseSourceIp},
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
			QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: key.HttpQueryParameterName},
		}}
	}
	return nil
}
