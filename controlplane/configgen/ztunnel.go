package configgen

import (
	"sort"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/model"
)

// The ztunnel seam: plain Go structs shaped like Istio's workload API (istio.workload.Workload, Service and
// istio.security.Authorization). The workload API protos and the Delta ADS server convert these; field names
// follow the protos, JSON uses their camelCase names.

// ZtunnelGatewayAddress says where a waypoint accepts HBONE (istio.workload.GatewayAddress).
type ZtunnelGatewayAddress struct {
	Address       string `json:"address,omitempty"`  // a waypoint VIP
	Hostname      string `json:"hostname,omitempty"` // when it has no VIP
	HBONEMTLSPort uint32 `json:"hboneMtlsPort"`
}

// ZtunnelPort maps a service port to a target port (istio.workload.Port).
type ZtunnelPort struct {
	ServicePort uint32 `json:"servicePort"`
	TargetPort  uint32 `json:"targetPort"`
}

// ZtunnelWorkload is istio.workload.Workload.
type ZtunnelWorkload struct {
	UID               string                 `json:"uid"`
	Name              string                 `json:"name"`
	Namespace         string                 `json:"namespace"`
	Addresses         []string               `json:"addresses"`
	TrustDomain       string                 `json:"trustDomain"`
	ServiceAccount    string                 `json:"serviceAccount"`
	Node              string                 `json:"node"`
	TunnelProtocol    string                 `json:"tunnelProtocol"` // HBONE or NONE
	Waypoint          *ZtunnelGatewayAddress `json:"waypoint,omitempty"`
	CanonicalName     string                 `json:"canonicalName"`
	CanonicalRevision string                 `json:"canonicalRevision"`
	WorkloadType      string                 `json:"workloadType"` // POD
	Status            string                 `json:"status"`       // HEALTHY or UNHEALTHY
	// Services maps "namespace/hostname" to the ports the workload serves for that service.
	Services map[string][]ZtunnelPort `json:"services,omitempty"`
	// AuthorizationPolicies names ("namespace/name") the policies that select this workload.
	AuthorizationPolicies []string `json:"authorizationPolicies,omitempty"`
}

// ZtunnelService is istio.workload.Service.
type ZtunnelService struct {
	Name      string                 `json:"name"`
	Namespace string                 `json:"namespace"`
	Hostname  string                 `json:"hostname"`
	Addresses []string               `json:"addresses"`
	Ports     []ZtunnelPort          `json:"ports"`
	Waypoint  *ZtunnelGatewayAddress `json:"waypoint,omitempty"`
}

// ZtunnelStringMatch is istio.security.StringMatch: exactly one of the fields is set.
type ZtunnelStringMatch struct {
	Exact    string `json:"exact,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	Suffix   string `json:"suffix,omitempty"`
	Presence bool   `json:"presence,omitempty"`
}

// ZtunnelMatch is istio.security.Match: values of one field are ORed, different fields ANDed.
type ZtunnelMatch struct {
	Namespaces          []ZtunnelStringMatch `json:"namespaces,omitempty"`
	NotNamespaces       []ZtunnelStringMatch `json:"notNamespaces,omitempty"`
	Principals          []ZtunnelStringMatch `json:"principals,omitempty"`
	NotPrincipals       []ZtunnelStringMatch `json:"notPrincipals,omitempty"`
	SourceIPs           []string             `json:"sourceIps,omitempty"` // CIDRs
	NotSourceIPs        []string             `json:"notSourceIps,omitempty"`
	DestinationPorts    []uint32             `json:"destinationPorts,omitempty"`
	NotDestinationPorts []uint32             `json:"notDestinationPorts,omitempty"`
}

// ZtunnelRules is istio.security.Rules: its matches are ORed (one from or to clause each).
type ZtunnelRules struct {
	Matches []ZtunnelMatch `json:"matches"`
}

// ZtunnelGroup is istio.security.Group, one AuthorizationPolicy rule: its Rules are ANDed (from, then to).
type ZtunnelGroup struct {
	Rules []ZtunnelRules `json:"rules"`
}

// ZtunnelAuthorization is istio.security.Authorization; the policy matches when any group does.
type ZtunnelAuthorization struct {
	Name      string         `json:"name"`
	Namespace string         `json:"namespace"`
	Scope     string         `json:"scope"`  // GLOBAL, NAMESPACE or WORKLOAD_SELECTOR
	Action    string         `json:"action"` // ALLOW or DENY
	Groups    []ZtunnelGroup `json:"groups"`
}

// ZtunnelConfig returns what the ztunnel on node receives. Like Istio's, a ztunnel learns every workload and
// service (it may have to reach any of them) and the selector-based policies of the workloads on its node,
// which it enforces on inbound connections. Everything is sorted.
func ZtunnelConfig(s *model.Snapshot, node string) ([]ZtunnelWorkload, []ZtunnelService, []ZtunnelAuthorization) {
	var workloads []ZtunnelWorkload
	onNode := map[*model.AuthorizationPolicy]bool{}
	peerAuthnOnNode := map[string]bool{}
	for _, wl := range s.Workloads() {
		zw := ZtunnelWorkload{
			UID:               "Kubernetes//Pod/" + wl.Namespace + "/" + wl.Name,
			Name:              wl.Name,
			Namespace:         wl.Namespace,
			Addresses:         wl.IPs,
			TrustDomain:       model.TrustDomain,
			ServiceAccount:    wl.ServiceAccount,
			Node:              wl.Node,
			TunnelProtocol:    "NONE",
			Waypoint:          gatewayAddress(wl.Waypoint),
			CanonicalName:     firstLabel(wl.Labels, wl.Name, "service.istio.io/canonical-name", "app.kubernetes.io/name", "app"),
			CanonicalRevision: firstLabel(wl.Labels, "latest", "service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"),
			WorkloadType:      "POD",
			Status:            "HEALTHY",
		}
		if wl.Ambient || HBONECapable(wl) { // injected pods terminate HBONE in their sidecar
			zw.TunnelProtocol = "HBONE"
		}
		if wl.Object != nil && !podReady(wl) {
			zw.Status = "UNHEALTHY"
		}
		for _, ws := range wl.Services {
			if zw.Services == nil {
				zw.Services = map[string][]ZtunnelPort{}
			}
			key := ws.Service.Namespace + "/" + ws.Service.FQDN
			for _, pm := range ws.Ports {
				zw.Services[key] = append(zw.Services[key], ZtunnelPort{ServicePort: pm.ServicePort, TargetPort: pm.TargetPort})
			}
		}
		for _, p := range s.PoliciesForWorkload(wl) {
			zw.AuthorizationPolicies = append(zw.AuthorizationPolicies, p.Namespace+"/"+p.Name)
			if wl.Node == node {
				onNode[p] = true
			}
		}
		// After the AuthorizationPolicies, as Istio lists them: the PeerAuthentication-derived ones.
		for _, key := range s.PeerAuthnPolicyKeys(wl) {
			zw.AuthorizationPolicies = append(zw.AuthorizationPolicies, key)
			if wl.Node == node {
				peerAuthnOnNode[key] = true
			}
		}
		workloads = append(workloads, zw)
	}
	var services []ZtunnelService
	for _, svc := range s.Services() {
		zs := ZtunnelService{Name: svc.Name, Namespace: svc.Namespace, Hostname: svc.FQDN, Addresses: svc.VIPs, Waypoint: gatewayAddress(svc.Waypoint)}
		for _, p := range svc.Ports {
			zs.Ports = append(zs.Ports, ZtunnelPort{ServicePort: p.Port, TargetPort: p.TargetPort})
		}
		services = append(services, zs)
	}
	var policies []ZtunnelAuthorization
	for _, p := range s.AuthorizationPolicies() {
		if onNode[p] {
			policies = append(policies, ztunnelAuthorization(p))
		}
	}
	policies = append(policies, peerAuthnPolicies(s, peerAuthnOnNode)...)
	sort.Slice(policies, func(i, j int) bool {
		if policies[i].Namespace != policies[j].Namespace {
			return policies[i].Namespace < policies[j].Namespace
		}
		return policies[i].Name < policies[j].Name
	})
	return workloads, services, policies
}

func podReady(wl *model.Workload) bool {
	for _, c := range wl.Object.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return wl.Object.Status.Phase == "" || wl.Object.Status.Phase == "Running"
}

// firstLabel returns the first of keys set in labels, else fallback (how Istio derives canonical names).
func firstLabel(labels map[string]string, fallback string, keys ...string) string {
	for _, k := range keys {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return fallback
}

func gatewayAddress(w *model.Waypoint) *ZtunnelGatewayAddress {
	if w == nil {
		return nil
	}
	ga := &ZtunnelGatewayAddress{HBONEMTLSPort: mesh.HBONEPort}
	if len(w.Addresses) > 0 {
		ga.Address = w.Addresses[0]
	} else {
		ga.Hostname = model.FQDN(w.Name, w.Namespace)
	}
	return ga
}

// peerAuthnPolicies returns the DENY policies derived from PeerAuthentications: the static STRICT one
// whenever any PeerAuthentication exists (as Istio sends it), and the converted workload policies that a
// workload on this node references.
func peerAuthnPolicies(s *model.Snapshot, onNode map[string]bool) []ZtunnelAuthorization {
	if len(s.PeerAuthentications()) == 0 {
		return nil
	}
	out := []ZtunnelAuthorization{ztunnelDeny(model.StaticStrictPolicy())}
	for _, p := range s.PeerAuthentications() {
		if d, ok := s.ConvertedPeerAuthentication(p); ok && onNode[d.Namespace+"/"+d.Name] {
			out = append(out, ztunnelDeny(d))
		}
	}
	return out
}

// ztunnelDeny writes a derived DENY policy in the workload API's shape: plain text is "no principal"
// (notPrincipals: presence), each condition one Rules of one Match, ANDed within the group.
func ztunnelDeny(d model.L4Deny) ZtunnelAuthorization {
	za := ZtunnelAuthorization{Name: d.Name, Namespace: d.Namespace, Scope: "WORKLOAD_SELECTOR", Action: model.ActionDeny, Groups: []ZtunnelGroup{}}
	for _, conds := range d.Groups {
		var g ZtunnelGroup
		for _, c := range conds {
			m := ZtunnelMatch{DestinationPorts: c.Ports, NotDestinationPorts: c.NotPorts}
			if c.Plaintext {
				m.NotPrincipals = []ZtunnelStringMatch{{Presence: true}}
			}
			g.Rules = append(g.Rules, ZtunnelRules{Matches: []ZtunnelMatch{m}})
		}
		za.Groups = append(za.Groups, g)
	}
	return za
}

func ztunnelAuthorization(p *model.AuthorizationPolicy) ZtunnelAuthorization {
	za := ZtunnelAuthorization{Name: p.Name, Namespace: p.Namespace, Action: p.Action, Scope: "WORKLOAD_SELECTOR", Groups: []ZtunnelGroup{}}
	if len(p.Selector) == 0 {
		za.Scope = "NAMESPACE"
		if p.Namespace == model.RootNamespace {
			za.Scope = "GLOBAL"
		}
	}
	for _, r := range p.Rules {
		// ztunnel sees no HTTP: an ALLOW rule that needs it can never match (fail closed); a DENY rule is
		// enforced on its L4 parts alone, so it denies more, never less.
		if model.RuleHasL7(r) && p.Action == model.ActionAllow {
			continue
		}
		za.Groups = append(za.Groups, ztunnelGroup(r))
	}
	return za
}

func ztunnelGroup(r *securityv1beta1.Rule) ZtunnelGroup {
	var g ZtunnelGroup
	var from ZtunnelRules
	for _, f := range r.From {
		s := f.Source
		if s == nil {
			continue
		}
		m := ZtunnelMatch{
			Namespaces: globs(s.Namespaces), NotNamespaces: globs(s.NotNamespaces),
			Principals: globs(s.Principals), NotPrincipals: globs(s.NotPrincipals),
			SourceIPs: s.IpBlocks, NotSourceIPs: s.NotIpBlocks,
		}
		for _, sa := range s.ServiceAccounts {
			ns, name, _ := strings.Cut(sa, "/")
			m.Principals = append(m.Principals, ZtunnelStringMatch{Exact: model.TrustDomain + "/ns/" + ns + "/sa/" + name})
		}
		from.Matches = append(from.Matches, m)
	}
	if len(from.Matches) > 0 {
		g.Rules = append(g.Rules, from)
	}
	var to ZtunnelRules
	for _, t := range r.To {
		o := t.Operation
		if o == nil {
			continue
		}
		m := ZtunnelMatch{DestinationPorts: ports(o.Ports), NotDestinationPorts: ports(o.NotPorts)}
		if len(m.DestinationPorts)+len(m.NotDestinationPorts) > 0 {
			to.Matches = append(to.Matches, m)
		}
	}
	if len(to.Matches) > 0 {
		g.Rules = append(g.Rules, to)
	}
	return g
}

func globs(values []string) []ZtunnelStringMatch {
	var out []ZtunnelStringMatch
	for _, v := range values {
		switch {
		case v == "*":
			out = append(out, ZtunnelStringMatch{Presence: true})
		case strings.HasPrefix(v, "*"):
			out = append(out, ZtunnelStringMatch{Suffix: v[1:]})
		case strings.HasSuffix(v, "*"):
			out = append(out, ZtunnelStringMatch{Prefix: v[:len(v)-1]})
		default:
			out = append(out, ZtunnelStringMatch{Exact: v})
		}
	}
	return out
}

func ports(values []string) []uint32 {
	var out []uint32
	for _, v := range values {
		if n, err := strconv.ParseUint(v, 10, 32); err == nil {
			out = append(out, uint32(n))
		}
	}
	return out
}
