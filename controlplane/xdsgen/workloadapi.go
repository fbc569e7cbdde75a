package xdsgen

import (
	"fmt"
	"net/netip"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/xds"
)

// The workload API conversion: generate's plain ztunnel structs become the protos ztunnel receives.
// Addresses are sent as bytes (4 or 16), as in Istio's API; a string that is not an IP is dropped (the
// model already reported it as a problem).

func ipBytes(s string) ([]byte, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil, false
	}
	return a.Unmap().AsSlice(), true
}

func gatewayAddress(g *configgen.ZtunnelGatewayAddress, namespace string) *workloadapi.GatewayAddress {
	if g == nil {
		return nil
	}
	out := &workloadapi.GatewayAddress{HboneMtlsPort: g.HBONEMTLSPort}
	if b, ok := ipBytes(g.Address); ok {
		out.Destination = &workloadapi.GatewayAddress_Address{Address: &workloadapi.NetworkAddress{Address: b}}
	} else if g.Hostname != "" {
		out.Destination = &workloadapi.GatewayAddress_Hostname{Hostname: &workloadapi.NamespacedHostname{Namespace: namespace, Hostname: g.Hostname}}
	}
	return out
}

func ports(ps []configgen.ZtunnelPort) []*workloadapi.Port {
	out := make([]*workloadapi.Port, 0, len(ps))
	for _, p := range ps {
		out = append(out, &workloadapi.Port{ServicePort: p.ServicePort, TargetPort: p.TargetPort})
	}
	return out
}

// WorkloadAddress converts a ztunnel workload into an Address resource, named by its uid.
func WorkloadAddress(w configgen.ZtunnelWorkload) *workloadapi.Address {
	pw := &workloadapi.Workload{
		Uid:                   w.UID,
		Name:                  w.Name,
		Namespace:             w.Namespace,
		TrustDomain:           w.TrustDomain,
		ServiceAccount:        w.ServiceAccount,
		Node:                  w.Node,
		Waypoint:              gatewayAddress(w.Waypoint, w.Namespace),
		CanonicalName:         w.CanonicalName,
		CanonicalRevision:     w.CanonicalRevision,
		WorkloadName:          w.CanonicalName,
		AuthorizationPolicies: w.AuthorizationPolicies,
	}
	for _, a := range w.Addresses {
		if b, ok := ipBytes(a); ok {
			pw.Addresses = append(pw.Addresses, b)
		}
	}
	if w.TunnelProtocol == "HBONE" {
		pw.TunnelProtocol = workloadapi.TunnelProtocol_HBONE
	}
	switch w.WorkloadType {
	case "POD":
		pw.WorkloadType = workloadapi.WorkloadType_POD
	case "JOB":
		pw.WorkloadType = workloadapi.WorkloadType_JOB
	case "CRONJOB":
		pw.WorkloadType = workloadapi.WorkloadType_CRONJOB
	}
	if w.Status == "UNHEALTHY" {
		pw.Status = workloadapi.WorkloadStatus_UNHEALTHY
	}
	if len(w.Services) > 0 {
		pw.Services = make(map[string]*workloadapi.PortList, len(w.Services))
		for k, ps := range w.Services {
			pw.Services[k] = &workloadapi.PortList{Ports: ports(ps)}
		}
	}
	return &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: pw}}
}

// ServiceAddress converts a ztunnel service into an Address resource, named namespace/hostname.
func ServiceAddress(s configgen.ZtunnelService) *workloadapi.Address {
	ps := &workloadapi.Service{
		Name:      s.Name,
		Namespace: s.Namespace,
		Hostname:  s.Hostname,
		Ports:     ports(s.Ports),
		Waypoint:  gatewayAddress(s.Waypoint, s.Namespace),
	}
	for _, a := range s.Addresses {
		if b, ok := ipBytes(a); ok {
			ps.Addresses = append(ps.Addresses, &workloadapi.NetworkAddress{Address: b})
		}
	}
	return &workloadapi.Address{Type: &workloadapi.Address_Service{Service: ps}}
}

func stringMatches(ms []configgen.ZtunnelStringMatch) []*security.StringMatch {
	out := make([]*security.StringMatch, 0, len(ms))
	for _, m := range ms {
		sm := &security.StringMatch{}
		switch {
		case m.Presence:
			sm.MatchType = &security.StringMatch_Presence{Presence: &emptypb.Empty{}}
		case m.Prefix != "":
			sm.MatchType = &security.StringMatch_Prefix{Prefix: m.Prefix}
		case m.Suffix != "":
			sm.MatchType = &security.StringMatch_Suffix{Suffix: m.Suffix}
		default:
			sm.MatchType = &security.StringMatch_Exact{Exact: m.Exact}
		}
		out = append(out, sm)
	}
	return out
}

// cidrs converts "IP" or "IP/LEN" strings; an unparsable one is dropped.
func cidrs(vs []string) []*security.Address {
	var out []*security.Address
	for _, v := range vs {
		addr, bits := v, -1
		if i := strings.IndexByte(v, '/'); i >= 0 {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				continue
			}
			addr, bits = p.Addr().String(), p.Bits()
		}
		a, err := netip.ParseAddr(addr)
		if err != nil {
			continue
		}
		a = a.Unmap()
		if bits < 0 {
			bits = a.BitLen()
		}
		out = append(out, &security.Address{Address: a.AsSlice(), Length: uint32(bits)})
	}
	return out
}

// Authorization converts a ztunnel policy into an Authorization resource, named namespace/name.
func Authorization(a configgen.ZtunnelAuthorization) *security.Authorization {
	pa := &security.Authorization{Name: a.Name, Namespace: a.Namespace}
	switch a.Scope {
	case "NAMESPACE":
		pa.Scope = security.Scope_NAMESPACE
	case "WORKLOAD_SELECTOR":
		pa.Scope = security.Scope_WORKLOAD_SELECTOR
	}
	if a.Action == "DENY" {
		pa.Action = security.Action_DENY
	}
	for _, g := range a.Groups {
		pg := &security.Group{}
		for _, r := range g.Rules {
			pr := &security.Rules{}
			for _, m := range r.Matches {
				pr.Matches = append(pr.Matches, &security.Match{
					Namespaces:          stringMatches(m.Namespaces),
					NotNamespaces:       stringMatches(m.NotNamespaces),
					Principals:          stringMatches(m.Principals),
					NotPrincipals:       stringMatches(m.NotPrincipals),
					SourceIps:           cidrs(m.SourceIPs),
					NotSourceIps:        cidrs(m.NotSourceIPs),
					DestinationPorts:    m.DestinationPorts,
					NotDestinationPorts: m.NotDestinationPorts,
				})
			}
			pg.Rules = append(pg.Rules, pr)
		}
		pa.Groups = append(pa.Groups, pg)
	}
	return pa
}

// ZtunnelResources is what the ztunnel on node receives over the workload API, keyed by resource name as
// the server names them (xds.ResourceName): every workload's and service's Address, and the node's
// Authorizations. Tools that replay a ztunnel's view (explain's offline source, its tests) read it, so they
// see what the server sends.
func ZtunnelResources(s *model.Snapshot, node string) (map[string]*workloadapi.Address, map[string]*security.Authorization) {
	workloads, services, policies := configgen.ZtunnelConfig(s, node)
	addrs := make(map[string]*workloadapi.Address, len(workloads)+len(services))
	for _, w := range workloads {
		a := WorkloadAddress(w)
		addrs[mustName(a)] = a
	}
	for _, svc := range services {
		a := ServiceAddress(svc)
		addrs[mustName(a)] = a
	}
	authz := make(map[string]*security.Authorization, len(policies))
	for _, p := range policies {
		a := Authorization(p)
		authz[mustName(a)] = a
	}
	return addrs, authz
}

// mustName names a resource this package built (never an empty Address).
func mustName(m proto.Message) string {
	name, err := xds.ResourceName(m)
	if err != nil {
		panic(fmt.Sprintf("naming a generated workload API resource: %v", err))
	}
	return name
}
