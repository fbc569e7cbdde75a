package l7

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	internalupstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/internal_upstream/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlab/meshlab/api/mesh"
)

// ConnectOriginate is the internal listener that tunnels a connection to its destination over HBONE; an
// Endpoint reached through it is dialled as an HBONE stream (see Endpoint).
const ConnectOriginate = "connect_originate"

// MainInternal is the internal listener that receives HBONE-terminated streams.
const MainInternal = "main_internal"

// Endpoint is one upstream host.
type Endpoint struct {
	// Address is the destination "IP:PORT" (the application's socket).
	Address string
	// InternalListener, if set, is the internal listener that carries connections to Address; meshlab
	// executes only connect_originate, which means an HBONE stream to TunnelAddress with target Address.
	InternalListener string
	// TunnelAddress is the HBONE server "IP:PORT" for connect_originate endpoints.
	TunnelAddress string
	// Identity is the SPIFFE ID the HBONE server must present (the endpoint's metadata tunnel.identity: the
	// destination workload's identity); empty when the control plane does not know it (original-destination
	// clusters), and the proxy then checks the trust domain only.
	Identity string
	Healthy  bool
	// BindAddress, if valid, is the source address to dial from (the cluster's upstream_bind_config,
	// e.g. Istio's 127.0.0.6 for inbound passthrough).
	BindAddress netip.Addr

	active atomic.Int64 // requests in flight, for LEAST_REQUEST
}

// String is the endpoint as Envoy prints it: envoy://connect_originate/IP:PORT or IP:PORT.
func (e *Endpoint) String() string {
	if e.InternalListener != "" {
		return "envoy://" + e.InternalListener + "/" + e.Address
	}
	return e.Address
}

// Cluster is a compiled cluster with its endpoints.
type Cluster struct {
	Name string
	// Type is EDS, STATIC or ORIGINAL_DST.
	Type           string
	ConnectTimeout time.Duration
	// BindAddress is the upstream source address (upstream_bind_config), if any.
	BindAddress netip.Addr
	// originalDst: every connection goes to the downstream's original destination (ORIGINAL_DST
	// clusters, and STATIC clusters whose endpoint is an internal listener without an endpoint id, like
	// Istio's encap), through internalListener if set.
	originalDst      bool
	internalListener string
	portOverride     uint32
	edsName          string
	lb               clusterv3.Cluster_LbPolicy
	// upstreamProto is how HTTP is spoken upstream: "" (HTTP/1.1, Envoy's default), "http2" (h2c) or
	// "downstream" (whatever the client used).
	upstreamProto string
	// From the HTTP protocol options' common_http_protocol_options, for HTTP/1.1 upstream connections:
	// requests per connection (0: unlimited) and idle timeout (0: the engine's).
	maxRequestsPerConn int
	idleTimeout        time.Duration
	panicPercent       float64
	Hosts              []*Endpoint
	healthy            []*Endpoint
	rr                 atomic.Uint64

	// breaker enforces circuit_breakers; outlier, if set, ejects failing hosts (outlier_detection).
	breaker *breaker
	outlier *outlierDetector
	// ringSize (RING_HASH minimum_ring_size) or tableSize (MAGLEV table_size), 0 for Envoy's default; the
	// ring or table is built from the hosts on first use.
	ringSize, tableSize uint64
	hashOnce            sync.Once
	ring                *hashRing
	maglev              *maglevTable
}

func compileCluster(c *clusterv3.Cluster) (*Cluster, error) {
	if err := checkFields(c, "name", "type", "eds_cluster_config", "connect_timeout", "lb_policy", "load_assignment",
		"transport_socket", "original_dst_lb_config", "typed_extension_protocol_options", "common_lb_config", "metadata",
		"alt_stat_name", "upstream_bind_config", "circuit_breakers", "outlier_detection", "ring_hash_lb_config",
		"maglev_lb_config"); err != nil {
		return nil, err
	}
	out := &Cluster{Name: c.GetName(), ConnectTimeout: 10 * time.Second, lb: c.GetLbPolicy(), panicPercent: 50}
	var err error
	if out.breaker, err = compileBreaker(c.GetCircuitBreakers()); err != nil {
		return nil, fmt.Errorf("circuit_breakers: %w", err)
	}
	if out.outlier, err = compileOutlier(c.GetOutlierDetection()); err != nil {
		return nil, fmt.Errorf("outlier_detection: %w", err)
	}
	if r := c.GetRingHashLbConfig(); r != nil {
		if err := checkFields(r, "minimum_ring_size", "maximum_ring_size", "hash_function"); err != nil {
			return nil, fmt.Errorf("ring_hash_lb_config: %w", err)
		}
		out.ringSize = r.GetMinimumRingSize().GetValue()
	}
	if m := c.GetMaglevLbConfig(); m != nil {
		if err := checkFields(m, "table_size"); err != nil {
			return nil, fmt.Errorf("maglev_lb_config: %w", err)
		}
		out.tableSize = m.GetTableSize().GetValue()
	}
	if d := c.GetConnectTimeout(); d != nil {
		out.ConnectTimeout = d.AsDuration()
	}
	if b := c.GetUpstreamBindConfig(); b != nil {
		if err := checkFields(b, "source_address"); err != nil {
			return nil, fmt.Errorf("upstream_bind_config: %w", err)
		}
		ip, err := netip.ParseAddr(b.GetSourceAddress().GetAddress())
		if err != nil {
			return nil, fmt.Errorf("upstream_bind_config.source_address: %w", err)
		}
		out.BindAddress = ip
	}
	switch c.GetType() {
	case clusterv3.Cluster_EDS:
		out.Type = "EDS"
		if err := checkFields(c.GetEdsClusterConfig(), "eds_config", "service_name"); err != nil {
			return nil, fmt.Errorf("eds_cluster_config: %w", err)
		}
		if err := checkADS(c.GetEdsClusterConfig().GetEdsConfig()); err != nil {
			return nil, fmt.Errorf("eds_cluster_config.eds_config: %w", err)
		}
		out.edsName = c.GetEdsClusterConfig().GetServiceName()
		if out.edsName == "" {
			out.edsName = c.GetName()
		}
	case clusterv3.Cluster_STATIC:
		out.Type = "STATIC"
	case clusterv3.Cluster_ORIGINAL_DST:
		out.Type = "ORIGINAL_DST"
		out.originalDst = true
		if o := c.GetOriginalDstLbConfig(); o != nil {
			if err := checkFields(o, "upstream_port_override"); err != nil {
				return nil, fmt.Errorf("original_dst_lb_config: %w", err)
			}
			out.portOverride = o.GetUpstreamPortOverride().GetValue()
		}
	default:
		return nil, fmt.Errorf("type: unsupported discovery type %s", c.GetType())
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN, clusterv3.Cluster_RANDOM, clusterv3.Cluster_LEAST_REQUEST, clusterv3.Cluster_RING_HASH, clusterv3.Cluster_MAGLEV:
	case clusterv3.Cluster_CLUSTER_PROVIDED:
		if !out.originalDst {
			return nil, fmt.Errorf("lb_policy: CLUSTER_PROVIDED needs an ORIGINAL_DST cluster")
		}
	default:
		return nil, fmt.Errorf("lb_policy: unsupported policy %s", c.GetLbPolicy())
	}
	if cl := c.GetCommonLbConfig(); cl != nil {
		if err := checkFields(cl, "healthy_panic_threshold"); err != nil {
			return nil, fmt.Errorf("common_lb_config: %w", err)
		}
		if p := cl.GetHealthyPanicThreshold(); p != nil {
			out.panicPercent = p.GetValue()
		}
	}
	if err := checkUpstreamSocket(c.GetTransportSocket(), out.originalDst); err != nil {
		return nil, fmt.Errorf("transport_socket: %w", err)
	}
	for name, opt := range c.GetTypedExtensionProtocolOptions() {
		msg, err := opt.UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("typed_extension_protocol_options %s: %w", name, err)
		}
		hpo, ok := msg.(*httpv3.HttpProtocolOptions)
		if !ok {
			return nil, fmt.Errorf("typed_extension_protocol_options %s: unsupported options %s", name, opt.GetTypeUrl())
		}
		if err := checkFields(hpo, "explicit_http_config", "use_downstream_protocol_config", "common_http_protocol_options"); err != nil {
			return nil, fmt.Errorf("typed_extension_protocol_options %s: %w", name, err)
		}
		if co := hpo.GetCommonHttpProtocolOptions(); co != nil {
			if err := checkFields(co, "idle_timeout", "max_requests_per_connection"); err != nil {
				return nil, fmt.Errorf("typed_extension_protocol_options %s: common_http_protocol_options: %w", name, err)
			}
			out.idleTimeout = co.GetIdleTimeout().AsDuration()
			out.maxRequestsPerConn = int(co.GetMaxRequestsPerConnection().GetValue())
		}
		switch {
		case hpo.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil:
			out.upstreamProto = "http2"
		case hpo.GetUseDownstreamProtocolConfig() != nil:
			out.upstreamProto = "downstream"
		}
	}
	if la := c.GetLoadAssignment(); la != nil {
		if out.Type == "EDS" {
			return nil, fmt.Errorf("load_assignment: not allowed on an EDS cluster")
		}
		scratch := &Cluster{}
		if err := scratch.setEndpoints(la); err != nil {
			return nil, fmt.Errorf("load_assignment: %w", err)
		}
		out.adopt(scratch.Hosts)
		// A static endpoint that is an internal listener with no endpoint id forwards to the original
		// destination through that listener (Istio's encap and main_internal clusters).
		if len(out.Hosts) == 1 && out.Hosts[0].InternalListener != "" && out.Hosts[0].Address == "" {
			out.originalDst = true
			out.internalListener = out.Hosts[0].InternalListener
			out.Hosts, out.healthy = nil, nil
		}
	}
	return out, nil
}

func checkADS(cs *corev3.ConfigSource) error {
	if cs == nil {
		return fmt.Errorf("missing config source")
	}
	if err := checkFields(cs, "ads", "resource_api_version", "initial_fetch_timeout"); err != nil {
		return fmt.Errorf("only ADS config sources are supported: %w", err)
	}
	if cs.GetAds() == nil {
		return fmt.Errorf("only ADS config sources are supported")
	}
	return nil
}

// checkUpstreamSocket accepts what meshlab does natively: plain connections, internal upstream with the
// tunnel metadata passed through, and TLS only on ORIGINAL_DST clusters (the HBONE originator, whose
// certificate comes from the proxy's own SVID source rather than SDS).
func checkUpstreamSocket(ts *corev3.TransportSocket, originalDst bool) error {
	if ts == nil {
		return nil
	}
	msg, err := ts.GetTypedConfig().UnmarshalNew()
	if err != nil {
		return fmt.Errorf("%s: %w", ts.GetName(), err)
	}
	switch m := msg.(type) {
	case *rawbufferv3.RawBuffer:
		return nil
	case *internalupstreamv3.InternalUpstreamTransport:
		if err := checkFields(m, "passthrough_metadata", "transport_socket"); err != nil {
			return fmt.Errorf("%s: %w", ts.GetName(), err)
		}
		return checkUpstreamSocket(m.GetTransportSocket(), false)
	case *tlsv3.UpstreamTlsContext:
		if !originalDst {
			return fmt.Errorf("%s: upstream TLS is supported only on ORIGINAL_DST (HBONE) clusters", ts.GetName())
		}
		return nil
	}
	return fmt.Errorf("unsupported transport socket %s (%s)", ts.GetName(), ts.GetTypedConfig().GetTypeUrl())
}

// setEndpoints replaces the cluster's hosts with those of a ClusterLoadAssignment.
func (c *Cluster) setEndpoints(cla *endpointv3.ClusterLoadAssignment) error {
	if err := checkFields(cla, "cluster_name", "endpoints"); err != nil {
		return err
	}
	var hosts []*Endpoint
	for i, lle := range cla.GetEndpoints() {
		if err := checkFields(lle, "lb_endpoints", "load_balancing_weight", "locality"); err != nil {
			return fmt.Errorf("endpoints %d: %w", i, err)
		}
		for j, lb := range lle.GetLbEndpoints() {
			ep, err := compileEndpoint(lb)
			if err != nil {
				return fmt.Errorf("endpoints %d: lb_endpoints %d: %w", i, j, err)
			}
			hosts = append(hosts, ep)
		}
	}
	c.Hosts = hosts
	c.healthy = nil
	for _, h := range hosts {
		if h.Healthy {
			c.healthy = append(c.healthy, h)
		}
	}
	return nil
}

func compileEndpoint(lb *endpointv3.LbEndpoint) (*Endpoint, error) {
	if err := checkFields(lb, "endpoint", "health_status", "metadata", "load_balancing_weight"); err != nil {
		return nil, err
	}
	if err := checkFields(lb.GetEndpoint(), "address", "hostname"); err != nil {
		return nil, fmt.Errorf("endpoint: %w", err)
	}
	ep := &Endpoint{}
	switch lb.GetHealthStatus() {
	case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY, corev3.HealthStatus_DEGRADED:
		ep.Healthy = true
	}
	switch a := lb.GetEndpoint().GetAddress().GetAddress().(type) {
	case *corev3.Address_SocketAddress:
		ip, err := netip.ParseAddr(a.SocketAddress.GetAddress())
		if err != nil {
			return nil, fmt.Errorf("endpoint.address: %w", err)
		}
		ep.Address = netip.AddrPortFrom(ip, uint16(a.SocketAddress.GetPortValue())).String()
	case *corev3.Address_EnvoyInternalAddress:
		ep.InternalListener = a.EnvoyInternalAddress.GetServerListenerName()
		ep.Address = a.EnvoyInternalAddress.GetEndpointId()
		// connect_originate is executed by the embedding proxy's Dial; main_internal only as the target of
		// connect_terminate, which the waypoint runs natively.
		if ep.InternalListener != ConnectOriginate && !(ep.InternalListener == MainInternal && ep.Address == "") {
			return nil, fmt.Errorf("endpoint.address: unsupported internal listener %q", ep.InternalListener)
		}
		tunnel := lb.GetMetadata().GetFilterMetadata()["tunnel"].GetFields()
		if d := tunnel["destination"].GetStringValue(); d != "" && ep.Address == "" {
			ep.Address = d
		}
		if ep.Address != "" {
			ap, err := netip.ParseAddrPort(ep.Address)
			if err != nil {
				return nil, fmt.Errorf("endpoint.address.endpoint_id: %q is not IP:PORT", ep.Address)
			}
			ep.TunnelAddress = netip.AddrPortFrom(ap.Addr(), mesh.HBONEPort).String()
		}
		if t := tunnel["address"].GetStringValue(); t != "" {
			if _, err := netip.ParseAddrPort(t); err != nil {
				return nil, fmt.Errorf("metadata tunnel.address: %q is not IP:PORT", t)
			}
			ep.TunnelAddress = t
		}
		if id, ok := tunnel["identity"]; ok {
			if _, err := spiffeid.FromString(id.GetStringValue()); err != nil {
				return nil, fmt.Errorf("metadata tunnel.identity: %q is not a SPIFFE ID: %w", id.GetStringValue(), err)
			}
			ep.Identity = id.GetStringValue()
		}
	default:
		return nil, fmt.Errorf("endpoint.address: unsupported address %T", a)
	}
	return ep, nil
}

// adopt takes copies of hosts as the cluster's own, stamped with its bind address.
func (c *Cluster) adopt(hosts []*Endpoint) {
	c.Hosts, c.healthy = nil, nil
	for _, h := range hosts {
		cp := &Endpoint{Address: h.Address, InternalListener: h.InternalListener, TunnelAddress: h.TunnelAddress, Identity: h.Identity, Healthy: h.Healthy, BindAddress: c.BindAddress}
		c.Hosts = append(c.Hosts, cp)
		if cp.Healthy {
			c.healthy = append(c.healthy, cp)
		}
	}
}

// pick chooses a host. avoid lists hosts already tried (the previous_hosts retry predicate); selection is
// retried up to reselect times before the last choice is used anyway, as Envoy does. dst is the
// downstream's original destination, used by original-destination clusters.
//
// hash, when ok, is the request's hash (requestHash) for a RING_HASH or MAGLEV cluster; without one those
// pick at random, as Envoy does.
func (c *Cluster) pick(dst netip.AddrPort, avoid map[string]bool, reselect int, rnd func() uint64, hash uint64, hashed bool) *Endpoint {
	if c.originalDst {
		port := dst.Port()
		if c.portOverride != 0 && c.internalListener == "" {
			port = uint16(c.portOverride)
		}
		ep := &Endpoint{Address: netip.AddrPortFrom(dst.Addr(), port).String(), InternalListener: c.internalListener, Healthy: true, BindAddress: c.BindAddress}
		if ep.InternalListener != "" {
			ep.TunnelAddress = net.JoinHostPort(dst.Addr().String(), strconv.Itoa(mesh.HBONEPort))
		}
		return ep
	}
	healthy := c.healthy
	if c.outlier != nil && c.outlier.anyEjected() {
		// An ejected host counts as unhealthy.
		healthy = nil
		for _, h := range c.healthy {
			if !c.outlier.ejected(h) {
				healthy = append(healthy, h)
			}
		}
	}
	hosts := healthy
	// Panic mode: with too few healthy hosts, Envoy balances over all of them.
	if float64(len(healthy))*100 < c.panicPercent*float64(len(c.Hosts)) {
		hosts = c.Hosts
	}
	if len(hosts) == 0 {
		return nil
	}
	if hashed && (c.lb == clusterv3.Cluster_RING_HASH || c.lb == clusterv3.Cluster_MAGLEV) {
		if h := c.pickHashed(hash, hosts); h != nil {
			return h
		}
	}
	var h *Endpoint
	for i := 0; i <= reselect; i++ {
		h = c.choose(hosts, rnd)
		if !avoid[h.Address] {
			return h
		}
	}
	return h
}

// pickHashed finds the host for hash on the ring (or table) of all the cluster's hosts; when that host is
// not among hosts (unhealthy or ejected), the ring is walked on (Envoy's behaviour: the next host) by
// rehashing, a bounded number of times.
func (c *Cluster) pickHashed(hash uint64, hosts []*Endpoint) *Endpoint {
	c.hashOnce.Do(func() {
		if len(c.Hosts) == 0 {
			return
		}
		if c.lb == clusterv3.Cluster_MAGLEV {
			c.maglev = newMaglevTable(c.Hosts, c.tableSize)
		} else {
			c.ring = newHashRing(c.Hosts, c.ringSize)
		}
	})
	usable := func(ep *Endpoint) bool {
		if len(hosts) == len(c.Hosts) {
			return true
		}
		for _, h := range hosts {
			if h == ep {
				return true
			}
		}
		return false
	}
	for i := 0; i < 32; i++ {
		var ep *Endpoint
		switch {
		case c.maglev != nil:
			ep = c.maglev.pick(hash)
		case c.ring != nil:
			ep = c.ring.pick(hash)
		default:
			return nil
		}
		if usable(ep) {
			return ep
		}
		hash = hash*0x9E3779B97F4A7C15 + 1
	}
	return nil
}

func (c *Cluster) choose(hosts []*Endpoint, rnd func() uint64) *Endpoint {
	n := uint64(len(hosts))
	switch c.lb {
	case clusterv3.Cluster_RANDOM:
		return hosts[rnd()%n]
	case clusterv3.Cluster_LEAST_REQUEST:
		// Power of two choices, Envoy's default for LEAST_REQUEST.
		a, b := hosts[rnd()%n], hosts[rnd()%n]
		if b.active.Load() < a.active.Load() {
			return b
		}
		return a
	}
	return hosts[(c.rr.Add(1)-1)%n]
}
