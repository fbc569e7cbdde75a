package tables

import (
	"fmt"
	"strconv"
	"strings"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// The filters below have the meaning of `istioctl proxy-config`'s flags of the same names; a zero field
// does not filter.

// ClusterFilter is `proxy-config clusters --fqdn --port --subset --direction`: FQDN, Subset and Direction
// are substrings of the cluster name, Port matches "|PORT|" in it.
type ClusterFilter struct {
	FQDN      string
	Port      int
	Subset    string
	Direction string
}

// Match reports whether c passes the filter.
func (f ClusterFilter) Match(c *clusterv3.Cluster) bool {
	name := c.GetName()
	switch {
	case f.FQDN != "" && !strings.Contains(name, f.FQDN),
		f.Direction != "" && !strings.Contains(name, f.Direction),
		f.Subset != "" && !strings.Contains(name, f.Subset),
		f.Port != 0 && !strings.Contains(name, fmt.Sprintf("|%d|", f.Port)):
		return false
	}
	return true
}

// ListenerFilter is `proxy-config listeners --address --port --type`: Address is one of the listener's
// addresses (case-insensitive), Port its port, Type its kind as ListenerType says (case-insensitive).
type ListenerFilter struct {
	Address string
	Port    uint32
	Type    string
}

// Match reports whether l passes the filter.
func (f ListenerFilter) Match(l *listenerv3.Listener) bool {
	if f.Address != "" {
		found := strings.EqualFold(listenerAddress(l), f.Address)
		for _, a := range l.GetAdditionalAddresses() {
			found = found || strings.EqualFold(a.GetAddress().GetSocketAddress().GetAddress(), f.Address)
		}
		if !found {
			return false
		}
	}
	if f.Port != 0 && listenerPort(l) != f.Port {
		return false
	}
	return f.Type == "" || strings.EqualFold(ListenerType(l), f.Type)
}

// ListenerType classifies a listener as istioctl does: HTTP, TCP, HTTP+TCP or UNKNOWN, by the HTTP
// connection managers and TCP proxies in its filter chains (a TCP proxy to the BlackHoleCluster not
// counting).
func ListenerType(l *listenerv3.Listener) string {
	var http, tcp int
	for _, fc := range chains(l) {
		for _, f := range fc.GetFilters() {
			switch f.GetName() {
			case "envoy.filters.network.http_connection_manager":
				http++
			case "envoy.filters.network.tcp_proxy":
				if !strings.Contains(string(f.GetTypedConfig().GetValue()), "BlackHoleCluster") {
					tcp++
				}
			}
		}
	}
	switch {
	case http > 0 && tcp == 0:
		return "HTTP"
	case http > 0:
		return "HTTP+TCP"
	case tcp > 0:
		return "TCP"
	}
	return "UNKNOWN"
}

// RouteFilter is `proxy-config routes --name`: the route configuration's exact name.
type RouteFilter struct {
	Name string
}

// Match reports whether rc passes the filter.
func (f RouteFilter) Match(rc *routev3.RouteConfiguration) bool {
	return f.Name == "" || f.Name == rc.GetName()
}

// EndpointFilter is `proxy-config endpoints --address --port --cluster --status`: Cluster is the cluster
// name and Status the health status name (both case-insensitive), Port the endpoint's port. Address is
// compared (case-insensitively) as istioctl does, which differs by source: with Envoy's
// /clusters?format=json the endpoint's IP alone (MatchHost), with a config dump ADDRESS:PORT, including
// the additional addresses (MatchEndpoint).
type EndpointFilter struct {
	Address string
	Port    uint32
	Cluster string
	Status  string
	// ByIP makes MatchEndpoint compare Address with the endpoint's IP alone and take an UNKNOWN status for
	// HEALTHY, as the endpoints command shows them (meshlab's endpoints table of a config dump stands for
	// istioctl's of /clusters?format=json, where Envoy reports HEALTHY).
	ByIP bool
}

func (f EndpointFilter) matchRest(port uint32, cluster string, status corev3.HealthStatus) bool {
	switch {
	case f.Port != 0 && port != f.Port,
		f.Cluster != "" && !strings.EqualFold(cluster, f.Cluster),
		f.Status != "" && !strings.EqualFold(status.String(), f.Status):
		return false
	}
	return true
}

// MatchHost reports whether a host of cluster in Envoy's /clusters?format=json passes the filter.
func (f EndpointFilter) MatchHost(h *adminv3.HostStatus, cluster string) bool {
	addr, port := endpointAddress(h.GetAddress())
	if f.Address != "" && !strings.EqualFold(addr, f.Address) {
		return false
	}
	return f.matchRest(port, cluster, h.GetHealthStatus().GetEdsHealthStatus())
}

// MatchEndpoint reports whether an endpoint of cluster in a config dump passes the filter.
func (f EndpointFilter) MatchEndpoint(ep *endpointv3.LbEndpoint, cluster string) bool {
	if f.Address != "" && f.ByIP {
		if addr, _ := endpointAddress(ep.GetEndpoint().GetAddress()); !strings.EqualFold(addr, f.Address) {
			return false
		}
	} else if f.Address != "" {
		found := false
		addrs := []*corev3.Address{ep.GetEndpoint().GetAddress()}
		for _, a := range ep.GetEndpoint().GetAdditionalAddresses() {
			addrs = append(addrs, a.GetAddress())
		}
		for _, a := range addrs {
			found = found || strings.EqualFold(dumpEndpointAddress(a), f.Address)
		}
		if !found {
			return false
		}
	}
	status := ep.GetHealthStatus()
	if f.ByIP && status == corev3.HealthStatus_UNKNOWN {
		status = corev3.HealthStatus_HEALTHY // as the endpoints table shows it
	}
	return f.matchRest(ep.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue(), cluster, status)
}

// dumpEndpointAddress is how istioctl names a config dump's endpoint address for --address.
func dumpEndpointAddress(a *corev3.Address) string {
	switch {
	case a.GetSocketAddress() != nil:
		return a.GetSocketAddress().GetAddress() + ":" + strconv.Itoa(int(a.GetSocketAddress().GetPortValue()))
	case a.GetPipe() != nil:
		return a.GetPipe().GetPath()
	case a.GetEnvoyInternalAddress().GetServerListenerName() != "":
		return "envoy://" + a.GetEnvoyInternalAddress().GetServerListenerName() + "/" + a.GetEnvoyInternalAddress().GetEndpointId()
	}
	return "unknown"
}

// Filter is what `proxy-config all` filters by; each table uses its part.
type Filter struct {
	Cluster  ClusterFilter
	Listener ListenerFilter
	Route    RouteFilter
	Endpoint EndpointFilter
}

// Filter returns the part of d that passes f: the clusters, listeners and route configurations that
// match, and the endpoints that match (a load assignment keeps only those; the endpoints table reads
// the EDS assignments and the inline ones of every cluster of d, filtered or not).
func (d *Dump) Filter(f Filter) *Dump {
	out := &Dump{Bootstrap: d.Bootstrap, Secrets: d.Secrets}
	for _, c := range d.Clusters {
		if f.Cluster.Match(c) {
			out.Clusters = append(out.Clusters, c)
		}
	}
	for _, l := range d.Listeners {
		if f.Listener.Match(l) {
			out.Listeners = append(out.Listeners, l)
		}
	}
	for _, rc := range d.Routes {
		if f.Route.Match(rc) {
			out.Routes = append(out.Routes, rc)
		}
	}
	for _, cla := range d.Endpoints {
		if c := filterAssignment(cla, cla.GetClusterName(), f.Endpoint); c != nil {
			out.Endpoints = append(out.Endpoints, c)
		}
	}
	out.inline = map[string]*endpointv3.ClusterLoadAssignment{}
	for _, c := range d.Clusters {
		la := c.GetLoadAssignment()
		if d.inline != nil {
			la = d.inline[c.GetName()]
		}
		if la == nil {
			continue
		}
		if fc := filterAssignment(la, c.GetName(), f.Endpoint); fc != nil {
			out.inline[c.GetName()] = fc
		}
	}
	return out
}

// filterAssignment returns cla with only the endpoints that pass f, nil if none does.
func filterAssignment(cla *endpointv3.ClusterLoadAssignment, cluster string, f EndpointFilter) *endpointv3.ClusterLoadAssignment {
	if f == (EndpointFilter{}) {
		return cla
	}
	out := proto.Clone(cla).(*endpointv3.ClusterLoadAssignment)
	out.Endpoints = nil
	for _, loc := range cla.GetEndpoints() {
		l := proto.Clone(loc).(*endpointv3.LocalityLbEndpoints)
		l.LbEndpoints = nil
		for _, ep := range loc.GetLbEndpoints() {
			if f.MatchEndpoint(ep, cluster) {
				l.LbEndpoints = append(l.LbEndpoints, ep)
			}
		}
		if len(l.LbEndpoints) > 0 {
			out.Endpoints = append(out.Endpoints, l)
		}
	}
	if len(out.Endpoints) == 0 {
		return nil
	}
	return out
}

// FilterClusters returns the clusters of an Envoy /clusters?format=json answer with only the hosts that
// pass f (for the table), and the clusters with at least one host that does, whole (for -o json, as
// istioctl prints them).
func FilterClusters(cs *adminv3.Clusters, f EndpointFilter) (hosts *adminv3.Clusters, whole []*adminv3.ClusterStatus) {
	hosts = &adminv3.Clusters{}
	for _, c := range cs.GetClusterStatuses() {
		fc := proto.Clone(c).(*adminv3.ClusterStatus)
		fc.HostStatuses = nil
		for _, h := range c.GetHostStatuses() {
			if f.MatchHost(h, c.GetName()) {
				fc.HostStatuses = append(fc.HostStatuses, h)
			}
		}
		if len(fc.HostStatuses) > 0 {
			hosts.ClusterStatuses = append(hosts.ClusterStatuses, fc)
			whole = append(whole, c)
		}
	}
	return hosts, whole
}
