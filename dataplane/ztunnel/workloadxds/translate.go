package workloadxds

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
)

// Translate turns workload API resources (keyed by resource name) into ztunnel's config, sorted.
// Malformed resources are errors (the response is NACKed). Policy parts ztunnel cannot evaluate (IP
// blocks) are translated fail-closed: an ALLOW match that needs them never matches, a DENY match is
// enforced without them (it denies more, never less); each such loss is returned as a warning.
func Translate(addrs map[string]*workloadapi.Address, authz map[string]*security.Authorization) (ztunnel.Config, []string, error) {
	var cfg ztunnel.Config
	var warnings []string
	services := map[string]*workloadapi.Service{} // "namespace/hostname"
	var workloads []*workloadapi.Workload
	for name, a := range addrs {
		switch {
		case a.GetService() != nil:
			s := a.GetService()
			services[s.GetNamespace()+"/"+s.GetHostname()] = s
		case a.GetWorkload() != nil:
			workloads = append(workloads, a.GetWorkload())
		default:
			return ztunnel.Config{}, nil, fmt.Errorf("address %q is neither a workload nor a service", name)
		}
	}
	sort.Slice(workloads, func(i, j int) bool { return workloads[i].GetUid() < workloads[j].GetUid() })

	endpoints := map[string][]*workloadapi.Workload{} // service key -> its workloads
	for _, w := range workloads {
		if w.GetUid() == "" {
			return ztunnel.Config{}, nil, fmt.Errorf("workload %s/%s has no uid", w.GetNamespace(), w.GetName())
		}
		if len(w.GetAddresses()) == 0 {
			warnings = append(warnings, fmt.Sprintf("workload %s has no address; skipped", w.GetUid()))
			continue
		}
		ip, err := addr(w.GetAddresses()[0])
		if err != nil {
			return ztunnel.Config{}, nil, fmt.Errorf("workload %s: %w", w.GetUid(), err)
		}
		zw := ztunnel.Workload{
			UID: w.GetUid(), Name: w.GetName(), Namespace: w.GetNamespace(),
			ServiceAccount: w.GetServiceAccount(), TrustDomain: w.GetTrustDomain(), Node: w.GetNode(), IP: ip,
			Protocol:              ztunnel.ProtocolNone,
			AuthorizationPolicies: slices.Clone(w.GetAuthorizationPolicies()),
		}
		if zw.ServiceAccount == "" {
			zw.ServiceAccount = "default"
		}
		if w.GetTunnelProtocol() == workloadapi.TunnelProtocol_HBONE {
			zw.Protocol = ztunnel.ProtocolHBONE
		}
		if zw.Waypoint, err = gateway(w.GetWaypoint(), services, &warnings, "workload "+w.GetUid()); err != nil {
			return ztunnel.Config{}, nil, err
		}
		cfg.Workloads = append(cfg.Workloads, zw)
		for key := range w.GetServices() {
			endpoints[key] = append(endpoints[key], w)
		}
	}

	keys := make([]string, 0, len(services))
	for k := range services {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		s := services[key]
		zs := ztunnel.Service{Name: s.GetName(), Namespace: s.GetNamespace(), Hostname: s.GetHostname(), Ports: map[uint16]uint16{}}
		for _, na := range s.GetAddresses() {
			vip, err := addr(na.GetAddress())
			if err != nil {
				return ztunnel.Config{}, nil, fmt.Errorf("service %s: %w", key, err)
			}
			zs.VIPs = append(zs.VIPs, vip)
		}
		for _, p := range s.GetPorts() {
			if p.GetServicePort() == 0 || p.GetServicePort() > 65535 || p.GetTargetPort() > 65535 {
				return ztunnel.Config{}, nil, fmt.Errorf("service %s: bad port %d -> %d", key, p.GetServicePort(), p.GetTargetPort())
			}
			target := p.GetTargetPort()
			if target == 0 { // a named target port: the workloads say which number it is
				target = workloadTarget(endpoints[key], key, p.GetServicePort())
			}
			zs.Ports[uint16(p.GetServicePort())] = uint16(target)
		}
		for _, w := range endpoints[key] {
			zs.Endpoints = append(zs.Endpoints, w.GetUid())
		}
		var err error
		if zs.Waypoint, err = gateway(s.GetWaypoint(), services, &warnings, "service "+key); err != nil {
			return ztunnel.Config{}, nil, err
		}
		cfg.Services = append(cfg.Services, zs)
	}

	names := make([]string, 0, len(authz))
	for n := range authz {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := authz[names[i]], authz[names[j]]
		return a.GetNamespace()+"/"+a.GetName() < b.GetNamespace()+"/"+b.GetName()
	})
	for _, n := range names {
		p, ok, err := policy(authz[n], &warnings)
		if err != nil {
			return ztunnel.Config{}, nil, err
		}
		if ok {
			cfg.Policies = append(cfg.Policies, p)
		}
	}
	return cfg, warnings, nil
}

func addr(b []byte) (netip.Addr, error) {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return netip.Addr{}, fmt.Errorf("address of %d bytes", len(b))
	}
	return a.Unmap(), nil
}

// workloadTarget finds the target port the endpoints give for a service port (the first that names one).
func workloadTarget(ws []*workloadapi.Workload, key string, servicePort uint32) uint32 {
	for _, w := range ws {
		for _, p := range w.GetServices()[key].GetPorts() {
			if p.GetServicePort() == servicePort && p.GetTargetPort() != 0 {
				return p.GetTargetPort()
			}
		}
	}
	return 0
}

// gateway resolves a waypoint reference. A hostname is looked up among services; one that cannot be
// resolved still yields a waypoint (with no address), so traffic fails rather than skipping the waypoint.
func gateway(g *workloadapi.GatewayAddress, services map[string]*workloadapi.Service, warnings *[]string, owner string) (*ztunnel.GatewayAddress, error) {
	if g == nil {
		return nil, nil
	}
	if g.GetHboneMtlsPort() > 65535 {
		return nil, fmt.Errorf("%s: waypoint port %d", owner, g.GetHboneMtlsPort())
	}
	out := &ztunnel.GatewayAddress{HBONEPort: uint16(g.GetHboneMtlsPort())}
	switch {
	case g.GetAddress() != nil:
		a, err := addr(g.GetAddress().GetAddress())
		if err != nil {
			return nil, fmt.Errorf("%s: waypoint: %w", owner, err)
		}
		out.Address = a
	case g.GetHostname() != nil:
		h := g.GetHostname()
		s := services[h.GetNamespace()+"/"+h.GetHostname()]
		if s == nil || len(s.GetAddresses()) == 0 {
			*warnings = append(*warnings, fmt.Sprintf("%s: waypoint %s/%s is not a known service with an address; its traffic will fail", owner, h.GetNamespace(), h.GetHostname()))
			break
		}
		a, err := addr(s.GetAddresses()[0].GetAddress())
		if err != nil {
			return nil, fmt.Errorf("%s: waypoint %s: %w", owner, h.GetHostname(), err)
		}
		out.Address = a
	default:
		return nil, fmt.Errorf("%s: waypoint has neither an address nor a hostname", owner)
	}
	return out, nil
}

// policy translates one Authorization. ok is false for a policy ztunnel must not enforce (dry run).
func policy(a *security.Authorization, warnings *[]string) (ztunnel.Policy, bool, error) {
	key := a.GetNamespace() + "/" + a.GetName()
	p := ztunnel.Policy{Name: a.GetName(), Namespace: a.GetNamespace()}
	switch a.GetScope() {
	case security.Scope_GLOBAL:
		p.Scope = ztunnel.ScopeGlobal
	case security.Scope_NAMESPACE:
		p.Scope = ztunnel.ScopeNamespace
	case security.Scope_WORKLOAD_SELECTOR:
		p.Scope = ztunnel.ScopeWorkloadSelector
	default:
		return p, false, fmt.Errorf("policy %s: unknown scope %v", key, a.GetScope())
	}
	switch a.GetAction() {
	case security.Action_ALLOW:
		p.Action = ztunnel.ActionAllow
	case security.Action_DENY:
		p.Action = ztunnel.ActionDeny
	default:
		return p, false, fmt.Errorf("policy %s: unknown action %v", key, a.GetAction())
	}
	if a.GetDryRun() {
		*warnings = append(*warnings, fmt.Sprintf("policy %s is a dry run; not enforced", key))
		return p, false, nil
	}
	deny := p.Action == ztunnel.ActionDeny
	warn := func(format string, args ...any) {
		*warnings = append(*warnings, fmt.Sprintf("policy %s: ", key)+fmt.Sprintf(format, args...))
	}
	// A group ANDs its Rules, each of which ORs its Matches; ztunnel's rules are ORed ANDs. Distribute.
	for _, g := range a.GetGroups() {
		combos := []ztunnel.Rule{{}}
		for _, r := range g.GetRules() {
			if len(r.GetMatches()) == 0 {
				continue
			}
			var next []ztunnel.Rule
			for _, m := range r.GetMatches() {
				zm, ok := match(m, deny, warn)
				if !ok {
					continue
				}
				for _, c := range combos {
					if merged, ok := mergeRules(c, zm, deny, warn); ok {
						next = append(next, merged)
					}
				}
			}
			combos = next
		}
		p.Rules = append(p.Rules, combos...)
	}
	return p, true, nil
}

// match translates one Match. ok is false when it can never match as far as ztunnel can tell.
func match(m *security.Match, deny bool, warn func(string, ...any)) (ztunnel.Rule, bool) {
	if n := len(m.GetSourceIps()) + len(m.GetNotSourceIps()) + len(m.GetDestinationIps()) + len(m.GetNotDestinationIps()); n > 0 {
		if !deny {
			warn("an ALLOW match on IP blocks is not supported by ztunnel; it never matches")
			return ztunnel.Rule{}, false
		}
		warn("a DENY match on IP blocks is enforced without them")
	}
	r := ztunnel.Rule{
		Principals: patterns(m.GetPrincipals()), NotPrincipals: patterns(m.GetNotPrincipals()),
		Namespaces: patterns(m.GetNamespaces()), NotNamespaces: patterns(m.GetNotNamespaces()),
	}
	for _, p := range m.GetDestinationPorts() {
		r.Ports = append(r.Ports, uint16(p))
	}
	for _, p := range m.GetNotDestinationPorts() {
		r.NotPorts = append(r.NotPorts, uint16(p))
	}
	return r, true
}

// patterns renders StringMatches as ztunnel's Istio-style patterns.
func patterns(ms []*security.StringMatch) []string {
	var out []string
	for _, m := range ms {
		switch t := m.GetMatchType().(type) {
		case *security.StringMatch_Exact:
			out = append(out, t.Exact)
		case *security.StringMatch_Prefix:
			out = append(out, t.Prefix+"*")
		case *security.StringMatch_Suffix:
			out = append(out, "*"+t.Suffix)
		case *security.StringMatch_Presence:
			out = append(out, "*")
		}
	}
	return out
}

// mergeRules ANDs two rules into one. ok is false when the result can never match.
func mergeRules(a, b ztunnel.Rule, deny bool, warn func(string, ...any)) (ztunnel.Rule, bool) {
	out := ztunnel.Rule{
		NotPrincipals: union(a.NotPrincipals, b.NotPrincipals),
		NotNamespaces: union(a.NotNamespaces, b.NotNamespaces),
		NotPorts:      union(a.NotPorts, b.NotPorts),
	}
	var ok bool
	out.Principals, ok = intersectPatterns(a.Principals, b.Principals, deny, warn)
	if !ok {
		return out, false
	}
	out.Namespaces, ok = intersectPatterns(a.Namespaces, b.Namespaces, deny, warn)
	if !ok {
		return out, false
	}
	switch {
	case len(a.Ports) == 0:
		out.Ports = b.Ports
	case len(b.Ports) == 0:
		out.Ports = a.Ports
	default:
		for _, p := range a.Ports {
			if slices.Contains(b.Ports, p) {
				out.Ports = append(out.Ports, p)
			}
		}
		if len(out.Ports) == 0 {
			return out, false
		}
	}
	return out, true
}

func union[T comparable](a, b []T) []T {
	out := slices.Clone(a)
	for _, v := range b {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// intersectPatterns returns patterns matching what both lists match. Exact values are kept when the other
// list matches them, and identical patterns are kept. Two different wildcard patterns cannot be combined
// into one: an ALLOW then drops the pair (narrower), a DENY keeps both (broader).
func intersectPatterns(a, b []string, deny bool, warn func(string, ...any)) ([]string, bool) {
	if len(a) == 0 {
		return b, true
	}
	if len(b) == 0 {
		return a, true
	}
	var out []string
	inexact := false
	for _, x := range a {
		for _, y := range b {
			wx, wy := strings.Contains(x, "*"), strings.Contains(y, "*")
			switch {
			case x == y:
				out = append(out, x)
			case !wx && matchesPattern(y, x):
				out = append(out, x)
			case !wy && matchesPattern(x, y):
				out = append(out, y)
			case wx && wy:
				inexact = true
				if deny {
					out = append(out, x, y)
				}
			}
		}
	}
	if inexact {
		warn("two wildcard patterns %v and %v are ANDed; approximated", a, b)
	}
	out = union(out, nil)
	return out, len(out) > 0
}

// matchesPattern is ztunnel's pattern match: exact, "*", "prefix*" or "*suffix".
func matchesPattern(p, s string) bool {
	switch {
	case p == "*":
		return true
	case strings.HasSuffix(p, "*"):
		return strings.HasPrefix(s, strings.TrimSuffix(p, "*"))
	case strings.HasPrefix(p, "*"):
		return strings.HasSuffix(s, strings.TrimPrefix(p, "*"))
	}
	return p == s
}
