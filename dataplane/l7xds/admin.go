package l7xds

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshlab/meshlab/dataplane/admin"
	"github.com/meshlab/meshlab/dataplane/xdsclient"
)

// AdminOptions say what a proxy's admin interface shows besides its xDS state.
type AdminOptions struct {
	// Registry serves /stats and /stats/prometheus.
	Registry prometheus.Gatherer
	// Ready is the proxy's readiness (/ready, /server_info).
	Ready func() bool
	// SVID and Bundle are shown as the secrets Istio's proxies hold: "default" (the certificate chain,
	// key redacted) and "ROOTCA" (the trust domain's authorities).
	SVID        x509svid.Source
	Bundle      x509bundle.Source
	TrustDomain spiffeid.TrustDomain
	// Version is the proxy's version, for /server_info.
	Version string
	// AdminAddress is the admin listener's address, for the bootstrap dump.
	AdminAddress string
}

// AdminHandler serves the proxy's admin endpoints (dataplane/admin): /config_dump from what the xDS
// client accepted, with each resource's version and accept time, the bootstrap the proxy runs with and
// its certificates; /clusters from the accepted clusters and their endpoints; /stats from the engine's
// metrics; /ready and /server_info from o.Ready.
func (p *Proxy) AdminHandler(o AdminOptions) http.Handler {
	started := time.Now()
	secrets := &secretTimes{seen: map[string]time.Time{}}
	xds := p.XDS
	return admin.Handler(admin.Options{
		ConfigDump: func() *admin.Config {
			snap := xds.Snapshot()
			c := &admin.Config{
				Bootstrap: bootstrap(xds, o.AdminAddress), BootstrapUpdated: started,
				Listeners: snap.Listeners, Routes: snap.Routes, Clusters: snap.Clusters, Endpoints: snap.Endpoints,
				Versions: snap.Versions, Meta: map[string]map[string]admin.ResourceMeta{},
				Secrets: secrets.get(o),
			}
			for t, byName := range snap.Meta {
				m := map[string]admin.ResourceMeta{}
				for n, v := range byName {
					m[n] = admin.ResourceMeta{Version: v.Version, LastUpdated: v.LastUpdated}
				}
				c.Meta[t] = m
			}
			if t := p.Applied.updated.Load(); t != nil {
				c.LastUpdated = *t
			}
			return c
		},
		Clusters: func() []admin.ClusterStatus { return clusterStatuses(xds.Snapshot()) },
		Gatherer: o.Registry,
		Ready:    o.Ready,
		Server:   &admin.ServerInfo{Version: "meshlab/" + o.Version, Node: xds.Node(), Started: started},
	})
}

// clusterStatuses lists each accepted cluster with the endpoints it was given: its EDS assignment, or
// its inline load_assignment (STATIC clusters such as encap). ORIGINAL_DST clusters have no hosts.
func clusterStatuses(snap xdsclient.Snapshot) []admin.ClusterStatus {
	byName := map[string]*endpointv3.ClusterLoadAssignment{}
	for _, e := range snap.Endpoints {
		byName[e.GetClusterName()] = e
	}
	var out []admin.ClusterStatus
	for _, c := range snap.Clusters {
		cs := admin.ClusterStatus{Name: c.GetName()}
		cla := c.GetLoadAssignment()
		if c.GetType() == clusterv3.Cluster_EDS {
			name := c.GetName()
			if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
				name, cs.EDSServiceName = n, n
			}
			cla = byName[name]
		}
		for _, loc := range cla.GetEndpoints() {
			for _, lb := range loc.GetLbEndpoints() {
				cs.Hosts = append(cs.Hosts, admin.HostStatus{
					Address: lb.GetEndpoint().GetAddress(), Health: lb.GetHealthStatus(), Weight: lb.GetLoadBalancingWeight().GetValue(),
					Locality: loc.GetLocality(), Hostname: lb.GetEndpoint().GetHostname(),
				})
			}
		}
		out = append(out, cs)
	}
	return out
}

// bootstrap is the static config the proxy runs with, as an Envoy bootstrap would say it: its node, ADS
// to the control plane (cluster xds-grpc, as in Istio's bootstrap) and the admin address.
func bootstrap(xds *xdsclient.Client, adminAddr string) *bootstrapv3.Bootstrap {
	ads := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, ResourceApiVersion: corev3.ApiVersion_V3}
	b := &bootstrapv3.Bootstrap{
		Node: xds.Node(),
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{ApiType: corev3.ApiConfigSource_GRPC, TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "xds-grpc"}}}}},
			CdsConfig: ads, LdsConfig: ads,
		},
	}
	if a := socketAddress(adminAddr); a != nil {
		b.Admin = &bootstrapv3.Admin{Address: a}
	}
	if a := socketAddress(xds.Address()); a != nil {
		typ := clusterv3.Cluster_STATIC
		if net.ParseIP(a.GetSocketAddress().GetAddress()) == nil {
			typ = clusterv3.Cluster_STRICT_DNS
		}
		b.StaticResources = &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{{
			Name: "xds-grpc", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
			LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "xds-grpc", Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: a}}}}}}},
		}}}
	}
	return b
}

func socketAddress(hostport string) *corev3.Address {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil
	}
	p, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		return nil
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}
}

// secretTimes remembers when the proxy first showed each certificate, for the secrets' last_updated.
type secretTimes struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (s *secretTimes) firstSeen(key string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.seen[key]
	if !ok {
		t = time.Now()
		s.seen[key] = t
	}
	return t
}

// get returns Istio's two secrets: "default", the workload certificate chain (key redacted as Envoy
// redacts it), and "ROOTCA", the trust domain's authorities. Each version is its first certificate's
// serial number.
func (s *secretTimes) get(o AdminOptions) []admin.Secret {
	var out []admin.Secret
	if o.SVID != nil {
		if svid, err := o.SVID.GetX509SVID(); err == nil && len(svid.Certificates) > 0 {
			v := fmt.Sprintf("%x", svid.Certificates[0].SerialNumber)
			out = append(out, admin.Secret{Name: "default", Version: v, LastUpdated: s.firstSeen("default/" + v), Secret: &tlsv3.Secret{
				Name: "default",
				Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
					CertificateChain: inline(pemOf(svid.Certificates)),
					PrivateKey:       inline([]byte("[redacted]")),
				}},
			}})
		}
	}
	if o.Bundle != nil && !o.TrustDomain.IsZero() {
		if b, err := o.Bundle.GetX509BundleForTrustDomain(o.TrustDomain); err == nil && len(b.X509Authorities()) > 0 {
			roots := b.X509Authorities()
			v := fmt.Sprintf("%x", roots[0].SerialNumber)
			out = append(out, admin.Secret{Name: "ROOTCA", Version: v, LastUpdated: s.firstSeen("ROOTCA/" + v), Secret: &tlsv3.Secret{
				Name: "ROOTCA",
				Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(pemOf(roots))}},
			}})
		}
	}
	return out
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

func pemOf(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
