package fidelity

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"istio.io/istio/pkg/workloadapi"

	"github.com/meshlab/meshlab/controlplane/configgen"
)

// Ztunnel facts are keyed "workload/NAMESPACE/NAME" and "service/NAMESPACE/HOSTNAME", one per field of the
// workload API (istio.workload.Workload and Service) that is set, with enums by name and addresses as text.

func ip(b []byte) string {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return fmt.Sprintf("bad:%x", b)
	}
	return a.String()
}

func istioGateway(g *workloadapi.GatewayAddress) string {
	if g == nil {
		return ""
	}
	dest := ""
	switch {
	case g.GetHostname() != nil:
		// NAME.NAMESPACE.svc.cluster.local: the waypoint's Service, named after its Gateway.
		h := strings.Split(g.GetHostname().Hostname, ".")
		if len(h) > 2 {
			dest = h[1] + "/" + h[0]
		} else {
			dest = "hostname:" + g.GetHostname().Hostname
		}
	case g.GetAddress() != nil:
		dest = "address:" + ip(g.GetAddress().Address)
	}
	return fmt.Sprintf("%s,hbone_mtls_port:%d", dest, g.HboneMtlsPort)
}

func istioGatewayForm(g *workloadapi.GatewayAddress) string {
	switch {
	case g == nil:
		return ""
	case g.GetHostname() != nil:
		return "hostname"
	}
	return "address"
}

func meshlabGatewayForm(g *configgen.ZtunnelGatewayAddress) string {
	switch {
	case g == nil:
		return ""
	case g.Address != "":
		return "address"
	}
	return "hostname"
}

// meshlabGateway names the waypoint as istioGateway does: NAMESPACE/NAME, found by its address in
// waypoints (address -> NAMESPACE/NAME) or from its hostname.
func meshlabGateway(g *configgen.ZtunnelGatewayAddress, waypoints map[string]string) string {
	if g == nil {
		return ""
	}
	dest := "hostname:" + g.Hostname
	if h := strings.Split(g.Hostname, "."); len(h) > 2 {
		dest = h[1] + "/" + h[0]
	}
	if g.Address != "" {
		dest = "address:" + g.Address
		if w, ok := waypoints[g.Address]; ok {
			dest = w
		}
	}
	return fmt.Sprintf("%s,hbone_mtls_port:%d", dest, g.HBONEMTLSPort)
}

func addIf(f Facts, k, field, v string) {
	if v != "" {
		f.add("%s: %s=%s", k, field, v)
	}
}

// SummarizeIstioZtunnel normalizes Istio's workload API addresses.
func SummarizeIstioZtunnel(addrs []*workloadapi.Address) Facts {
	f := Facts{}
	for _, a := range addrs {
		if w := a.GetWorkload(); w != nil {
			k := "workload/" + w.Namespace + "/" + w.Name
			f.add("%s: exists", k)
			addIf(f, k, "uid", w.Uid)
			for _, b := range w.Addresses {
				f.add("%s: address=%s", k, ip(b))
			}
			addIf(f, k, "hostname", w.Hostname)
			addIf(f, k, "network", w.Network)
			f.add("%s: tunnel_protocol=%s", k, w.TunnelProtocol)
			addIf(f, k, "trust_domain", w.TrustDomain)
			addIf(f, k, "service_account", w.ServiceAccount)
			addIf(f, k, "waypoint", istioGateway(w.Waypoint))
			addIf(f, k, "waypoint_form", istioGatewayForm(w.Waypoint))
			addIf(f, k, "network_gateway", istioGateway(w.NetworkGateway))
			addIf(f, k, "node", w.Node)
			addIf(f, k, "canonical_name", w.CanonicalName)
			addIf(f, k, "canonical_revision", w.CanonicalRevision)
			f.add("%s: workload_type=%s", k, w.WorkloadType)
			addIf(f, k, "workload_name", w.WorkloadName)
			if w.NativeTunnel {
				f.add("%s: native_tunnel=true", k)
			}
			if w.ApplicationTunnel != nil {
				f.add("%s: application_tunnel=%s", k, w.ApplicationTunnel.Protocol)
			}
			for svc, pl := range w.Services {
				for _, p := range pl.Ports {
					f.add("%s: service=%s:%d->%d", k, svc, p.ServicePort, p.TargetPort)
				}
			}
			for _, p := range w.AuthorizationPolicies {
				f.add("%s: authorization_policy=%s", k, p)
			}
			f.add("%s: status=%s", k, w.Status)
			addIf(f, k, "cluster_id", w.ClusterId)
			if l := w.Locality; l != nil {
				f.add("%s: locality=%s/%s/%s", k, l.Region, l.Zone, l.Subzone)
			}
			if w.NetworkMode != workloadapi.NetworkMode_STANDARD {
				f.add("%s: network_mode=%s", k, w.NetworkMode)
			}
		}
		if s := a.GetService(); s != nil {
			k := "service/" + s.Namespace + "/" + s.Hostname
			f.add("%s: exists", k)
			addIf(f, k, "name", s.Name)
			for _, na := range s.Addresses {
				f.add("%s: address=%s/%s", k, na.Network, ip(na.Address))
			}
			for _, p := range s.Ports {
				f.add("%s: port=%d->%d", k, p.ServicePort, p.TargetPort)
			}
			for _, san := range s.SubjectAltNames {
				f.add("%s: subject_alt_name=%s", k, san)
			}
			addIf(f, k, "waypoint", istioGateway(s.Waypoint))
			addIf(f, k, "waypoint_form", istioGatewayForm(s.Waypoint))
			if lb := s.LoadBalancing; lb != nil {
				var scopes []string
				for _, sc := range lb.RoutingPreference {
					scopes = append(scopes, sc.String())
				}
				f.add("%s: load_balancing=%s:%s", k, lb.Mode, strings.Join(scopes, "|"))
			}
			if s.IpFamilies != workloadapi.IPFamilies_AUTOMATIC {
				f.add("%s: ip_families=%s", k, s.IpFamilies)
			}
			if s.Canonical {
				f.add("%s: canonical=true", k)
			}
			if s.IngressUseWaypoint {
				f.add("%s: ingress_use_waypoint=true", k)
			}
		}
	}
	return f
}

// SummarizeMeshlabZtunnel normalizes meshlab's ztunnel config the same way. meshlab's services carry no
// network name; its addresses are written with Istio's default network, "". A waypoint is named
// NAMESPACE/NAME in both (Istio's by its Service's hostname, meshlab's by its address).
func SummarizeMeshlabZtunnel(d *ZtunnelDump) Facts {
	f := Facts{}
	for _, w := range d.Workloads {
		k := "workload/" + w.Namespace + "/" + w.Name
		f.add("%s: exists", k)
		addIf(f, k, "uid", w.UID)
		for _, a := range w.Addresses {
			f.add("%s: address=%s", k, a)
		}
		f.add("%s: tunnel_protocol=%s", k, w.TunnelProtocol)
		addIf(f, k, "trust_domain", w.TrustDomain)
		addIf(f, k, "service_account", w.ServiceAccount)
		addIf(f, k, "waypoint", meshlabGateway(w.Waypoint, d.Waypoints))
		addIf(f, k, "waypoint_form", meshlabGatewayForm(w.Waypoint))
		addIf(f, k, "node", w.Node)
		addIf(f, k, "canonical_name", w.CanonicalName)
		addIf(f, k, "canonical_revision", w.CanonicalRevision)
		f.add("%s: workload_type=%s", k, w.WorkloadType)
		keys := make([]string, 0, len(w.Services))
		for svc := range w.Services {
			keys = append(keys, svc)
		}
		sort.Strings(keys)
		for _, svc := range keys {
			for _, p := range w.Services[svc] {
				f.add("%s: service=%s:%d->%d", k, svc, p.ServicePort, p.TargetPort)
			}
		}
		for _, p := range w.AuthorizationPolicies {
			f.add("%s: authorization_policy=%s", k, p)
		}
		f.add("%s: status=%s", k, w.Status)
	}
	for _, s := range d.Services {
		k := "service/" + s.Namespace + "/" + s.Hostname
		f.add("%s: exists", k)
		addIf(f, k, "name", s.Name)
		for _, a := range s.Addresses {
			f.add("%s: address=/%s", k, a)
		}
		for _, p := range s.Ports {
			f.add("%s: port=%d->%d", k, p.ServicePort, p.TargetPort)
		}
		addIf(f, k, "waypoint", meshlabGateway(s.Waypoint, d.Waypoints))
		addIf(f, k, "waypoint_form", meshlabGatewayForm(s.Waypoint))
	}
	return f
}
