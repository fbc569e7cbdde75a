package admin

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// AddressString prints an address as Envoy does: IP:PORT ([IPv6]:PORT), envoy://LISTENER/ENDPOINT_ID for
// an internal address, the path of a pipe.
func AddressString(a *corev3.Address) string {
	switch {
	case a.GetSocketAddress() != nil:
		sa := a.GetSocketAddress()
		return net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
	case a.GetEnvoyInternalAddress() != nil:
		ia := a.GetEnvoyInternalAddress()
		return "envoy://" + ia.GetServerListenerName() + "/" + ia.GetEndpointId()
	case a.GetPipe() != nil:
		return a.GetPipe().GetPath()
	}
	return ""
}

// edsHealth is the health status Envoy reports for a host: UNKNOWN means healthy.
func edsHealth(h corev3.HealthStatus) corev3.HealthStatus {
	if h == corev3.HealthStatus_UNKNOWN {
		return corev3.HealthStatus_HEALTHY
	}
	return h
}

// healthFlags is the health_flags field of Envoy's text /clusters.
func healthFlags(h corev3.HealthStatus) string {
	switch h {
	case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY:
		return "healthy"
	case corev3.HealthStatus_DEGRADED:
		return "/degraded_eds_health"
	}
	return "/failed_eds_health"
}

func weightOf(h HostStatus) uint32 {
	if h.Weight == 0 {
		return 1
	}
	return h.Weight
}

// ClustersJSON is /clusters?format=json: envoy.admin.v3.Clusters, what `istioctl proxy-config endpoints`
// reads. clusters must be sorted.
func ClustersJSON(clusters []ClusterStatus) *adminv3.Clusters {
	out := &adminv3.Clusters{}
	for _, c := range clusters {
		cs := &adminv3.ClusterStatus{Name: c.Name, ObservabilityName: c.Name, AddedViaApi: true, EdsServiceName: c.EDSServiceName}
		for _, h := range c.Hosts {
			cs.HostStatuses = append(cs.HostStatuses, &adminv3.HostStatus{
				Address:      h.Address,
				HealthStatus: &adminv3.HostHealthStatus{EdsHealthStatus: edsHealth(h.Health)},
				Weight:       weightOf(h),
				Locality:     h.Locality,
				Hostname:     h.Hostname,
			})
		}
		out.ClusterStatuses = append(out.ClusterStatuses, cs)
	}
	return out
}

// WriteClusters writes Envoy's /clusters text form: one CLUSTER::FIELD::VALUE or CLUSTER::HOST::FIELD::VALUE
// line per fact. clusters must be sorted. (Envoy's per-host counters are not kept by meshlab's engine;
// /stats has the per-cluster ones.)
func WriteClusters(w io.Writer, clusters []ClusterStatus) {
	var b strings.Builder
	for _, c := range clusters {
		fmt.Fprintf(&b, "%s::observability_name::%s\n", c.Name, c.Name)
		fmt.Fprintf(&b, "%s::added_via_api::true\n", c.Name)
		if c.EDSServiceName != "" {
			fmt.Fprintf(&b, "%s::eds_service_name::%s\n", c.Name, c.EDSServiceName)
		}
		for _, h := range c.Hosts {
			p := c.Name + "::" + AddressString(h.Address) + "::"
			fmt.Fprintf(&b, "%shostname::%s\n", p, h.Hostname)
			fmt.Fprintf(&b, "%shealth_flags::%s\n", p, healthFlags(h.Health))
			fmt.Fprintf(&b, "%sweight::%d\n", p, weightOf(h))
			fmt.Fprintf(&b, "%sregion::%s\n", p, h.Locality.GetRegion())
			fmt.Fprintf(&b, "%szone::%s\n", p, h.Locality.GetZone())
			fmt.Fprintf(&b, "%ssub_zone::%s\n", p, h.Locality.GetSubZone())
			fmt.Fprintf(&b, "%scanary::false\n", p)
			fmt.Fprintf(&b, "%spriority::0\n", p)
			fmt.Fprintf(&b, "%ssuccess_rate::-1\n", p)
			fmt.Fprintf(&b, "%slocal_origin_success_rate::-1\n", p)
		}
	}
	io.WriteString(w, b.String())
}

// listenerAddress is where a listener listens; an internal listener's is its own name.
func listenerAddress(l *listenerv3.Listener) *corev3.Address {
	if l.GetInternalListener() != nil || l.GetAddress() == nil {
		return &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
			AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: l.GetName()}}}}
	}
	return l.GetAddress()
}

// ListenerStatuses is /listeners?format=json: envoy.admin.v3.Listeners.
func ListenerStatuses(listeners []*listenerv3.Listener) *adminv3.Listeners {
	out := &adminv3.Listeners{}
	for _, l := range listeners {
		ls := &adminv3.ListenerStatus{Name: l.GetName(), LocalAddress: listenerAddress(l)}
		for _, a := range l.GetAdditionalAddresses() {
			ls.AdditionalLocalAddresses = append(ls.AdditionalLocalAddresses, a.GetAddress())
		}
		out.ListenerStatuses = append(out.ListenerStatuses, ls)
	}
	return out
}

// WriteListeners writes Envoy's /listeners text form: NAME::ADDRESS per listener.
func WriteListeners(w io.Writer, listeners []*listenerv3.Listener) {
	var b strings.Builder
	for _, l := range listeners {
		addrs := []string{AddressString(listenerAddress(l))}
		for _, a := range l.GetAdditionalAddresses() {
			addrs = append(addrs, AddressString(a.GetAddress()))
		}
		fmt.Fprintf(&b, "%s::%s\n", l.GetName(), strings.Join(addrs, ","))
	}
	io.WriteString(w, b.String())
}

// serverInfo is /server_info: envoy.admin.v3.ServerInfo, state LIVE once ready.
func serverInfo(s *ServerInfo, ready bool) *adminv3.ServerInfo {
	if s == nil {
		s = &ServerInfo{}
	}
	out := &adminv3.ServerInfo{
		Version:            s.Version,
		State:              adminv3.ServerInfo_PRE_INITIALIZING,
		HotRestartVersion:  "disabled",
		CommandLineOptions: &adminv3.CommandLineOptions{Mode: adminv3.CommandLineOptions_Serve},
		Node:               s.Node,
	}
	if ready {
		out.State = adminv3.ServerInfo_LIVE
	}
	if !s.Started.IsZero() {
		up := durationpb.New(time.Since(s.Started).Truncate(time.Second))
		out.UptimeCurrentEpoch, out.UptimeAllEpochs = up, up
	}
	return out
}
