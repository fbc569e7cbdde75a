package configdump

import (
	"fmt"
	"net/netip"
	"strings"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
)

// WorkloadAPI reads back the workload API resources a ztunnel holds from its dump, keyed as the control
// plane names them (workload uid, "namespace/hostname", "namespace/name"), so that the dump of a running
// ztunnel goes through the same translation (workloadxds.Translate) as the resources the control plane
// sends. It inverts Build for every field ztunnel acts on; what the dump carries and the workload API
// cannot (service-account matches of a real ztunnel's policies) is returned as warnings.
func (d Dump) WorkloadAPI() (map[string]*workloadapi.Address, map[string]*security.Authorization, []string, error) {
	addrs := map[string]*workloadapi.Address{}
	authz := map[string]*security.Authorization{}
	var warnings []string
	// A workload's ports for each of its services are held by the service's endpoint (or the staged
	// endpoints of a service ztunnel has not been sent).
	endpoints := map[string]map[string]Endpoint{}
	for key, eps := range d.StagedServices {
		endpoints[key] = eps
	}
	for _, s := range d.Services {
		key := s.Namespace + "/" + s.Hostname
		endpoints[key] = s.Endpoints
		svc := &workloadapi.Service{Name: s.Name, Namespace: s.Namespace, Hostname: s.Hostname, SubjectAltNames: s.SubjectAltNames}
		for _, vip := range s.VIPs {
			na, err := networkAddressOf(vip)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("service %s: %w", key, err)
			}
			svc.Addresses = append(svc.Addresses, na)
		}
		svc.Ports = portsOf(s.Ports)
		gw, err := gatewayOf(s.Waypoint)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("service %s: waypoint: %w", key, err)
		}
		svc.Waypoint = gw
		addrs[key] = &workloadapi.Address{Type: &workloadapi.Address_Service{Service: svc}}
	}
	for _, w := range d.Workloads {
		if w.UID == "" {
			return nil, nil, nil, fmt.Errorf("workload %s/%s has no uid", w.Namespace, w.Name)
		}
		pw := &workloadapi.Workload{
			Uid: w.UID, Name: w.Name, Namespace: w.Namespace, Hostname: w.Hostname, Network: w.Network,
			TrustDomain: w.TrustDomain, ServiceAccount: w.ServiceAccount, Node: w.Node,
			CanonicalName: w.CanonicalName, CanonicalRevision: w.CanonicalRevision, WorkloadName: w.WorkloadName,
			NativeTunnel: w.NativeTunnel, AuthorizationPolicies: w.AuthorizationPolicies, ClusterId: w.ClusterID,
		}
		for _, ip := range w.WorkloadIPs {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("workload %s: address %q: %w", w.UID, ip, err)
			}
			pw.Addresses = append(pw.Addresses, a.AsSlice())
		}
		if w.Protocol == "HBONE" {
			pw.TunnelProtocol = workloadapi.TunnelProtocol_HBONE
		}
		if w.Status == "Unhealthy" {
			pw.Status = workloadapi.WorkloadStatus_UNHEALTHY
		}
		if t, ok := workloadapi.WorkloadType_value[strings.ToUpper(w.WorkloadType)]; ok {
			pw.WorkloadType = workloadapi.WorkloadType(t)
		}
		var err error
		if pw.Waypoint, err = gatewayOf(w.Waypoint); err != nil {
			return nil, nil, nil, fmt.Errorf("workload %s: waypoint: %w", w.UID, err)
		}
		if pw.NetworkGateway, err = gatewayOf(w.NetworkGateway); err != nil {
			return nil, nil, nil, fmt.Errorf("workload %s: network gateway: %w", w.UID, err)
		}
		if len(w.Services) > 0 {
			pw.Services = map[string]*workloadapi.PortList{}
			for _, key := range w.Services {
				pw.Services[key] = &workloadapi.PortList{Ports: portsOf(endpoints[key][w.UID].Port)}
			}
		}
		addrs[w.UID] = &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: pw}}
	}
	for _, p := range d.Policies {
		a, w, err := authorizationOf(p)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("policy %s/%s: %w", p.Namespace, p.Name, err)
		}
		warnings = append(warnings, w...)
		authz[p.Namespace+"/"+p.Name] = a
	}
	return addrs, authz, warnings, nil
}

func portsOf(m map[uint16]uint16) []*workloadapi.Port {
	var out []*workloadapi.Port
	for sp, tp := range m {
		out = append(out, &workloadapi.Port{ServicePort: uint32(sp), TargetPort: uint32(tp)})
	}
	return out
}

// networkAddressOf reads "network/IP" (the network may be empty).
func networkAddressOf(s string) (*workloadapi.NetworkAddress, error) {
	network, ip, ok := strings.Cut(s, "/")
	if !ok {
		return nil, fmt.Errorf("address %q: want network/IP", s)
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", s, err)
	}
	return &workloadapi.NetworkAddress{Network: network, Address: a.AsSlice()}, nil
}

// gatewayOf reads a destination: "network/IP" for an address, "namespace/hostname" for a service.
func gatewayOf(g *GatewayAddress) (*workloadapi.GatewayAddress, error) {
	if g == nil {
		return nil, nil
	}
	out := &workloadapi.GatewayAddress{HboneMtlsPort: uint32(g.HBONEMtlsPort)}
	left, right, ok := strings.Cut(g.Destination, "/")
	if !ok {
		return nil, fmt.Errorf("destination %q: want network/IP or namespace/hostname", g.Destination)
	}
	if a, err := netip.ParseAddr(right); err == nil {
		out.Destination = &workloadapi.GatewayAddress_Address{Address: &workloadapi.NetworkAddress{Network: left, Address: a.AsSlice()}}
		return out, nil
	}
	out.Destination = &workloadapi.GatewayAddress_Hostname{Hostname: &workloadapi.NamespacedHostname{Namespace: left, Hostname: right}}
	return out, nil
}

func authorizationOf(p Policy) (*security.Authorization, []string, error) {
	a := &security.Authorization{Name: p.Name, Namespace: p.Namespace, DryRun: p.DryRun}
	switch p.Action {
	case "Allow":
	case "Deny":
		a.Action = security.Action_DENY
	default:
		return nil, nil, fmt.Errorf("action %q: want Allow or Deny", p.Action)
	}
	switch p.Scope {
	case "Global":
	case "Namespace":
		a.Scope = security.Scope_NAMESPACE
	case "WorkloadSelector":
		a.Scope = security.Scope_WORKLOAD_SELECTOR
	default:
		return nil, nil, fmt.Errorf("scope %q: want Global, Namespace or WorkloadSelector", p.Scope)
	}
	var warnings []string
	for _, rule := range p.Rules {
		g := &security.Group{}
		for _, clause := range rule {
			r := &security.Rules{}
			for _, m := range clause {
				pm, err := matchOf(m)
				if err != nil {
					return nil, nil, err
				}
				if len(m.ServiceAccounts)+len(m.NotServiceAccounts) > 0 {
					warnings = append(warnings, fmt.Sprintf("policy %s/%s: service-account matches are not in meshlab's workload API; ignored", p.Namespace, p.Name))
				}
				r.Matches = append(r.Matches, pm)
			}
			g.Rules = append(g.Rules, r)
		}
		a.Groups = append(a.Groups, g)
	}
	return a, warnings, nil
}

func matchOf(m Match) (*security.Match, error) {
	out := &security.Match{
		Namespaces: stringMatchesOf(m.Namespaces), NotNamespaces: stringMatchesOf(m.NotNamespaces),
		Principals: stringMatchesOf(m.Principals), NotPrincipals: stringMatchesOf(m.NotPrincipals),
	}
	for _, f := range []struct {
		in  []string
		out *[]*security.Address
	}{{m.SourceIPs, &out.SourceIps}, {m.NotSourceIPs, &out.NotSourceIps}, {m.DestinationIPs, &out.DestinationIps}, {m.NotDestinationIPs, &out.NotDestinationIps}} {
		for _, s := range f.in {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("address %q: %w", s, err)
			}
			*f.out = append(*f.out, &security.Address{Address: p.Addr().AsSlice(), Length: uint32(p.Bits())})
		}
	}
	for _, p := range m.DestinationPorts {
		out.DestinationPorts = append(out.DestinationPorts, uint32(p))
	}
	for _, p := range m.NotDestinationPorts {
		out.NotDestinationPorts = append(out.NotDestinationPorts, uint32(p))
	}
	return out, nil
}

func stringMatchesOf(ms []StringMatch) []*security.StringMatch {
	var out []*security.StringMatch
	for _, m := range ms {
		switch {
		case m.Exact != nil:
			out = append(out, &security.StringMatch{MatchType: &security.StringMatch_Exact{Exact: *m.Exact}})
		case m.Prefix != nil:
			out = append(out, &security.StringMatch{MatchType: &security.StringMatch_Prefix{Prefix: *m.Prefix}})
		case m.Suffix != nil:
			out = append(out, &security.StringMatch{MatchType: &security.StringMatch_Suffix{Suffix: *m.Suffix}})
		case m.Presence != nil:
			out = append(out, &security.StringMatch{MatchType: &security.StringMatch_Presence{Presence: &emptypb.Empty{}}})
		}
	}
	return out
}
