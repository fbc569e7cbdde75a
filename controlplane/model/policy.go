package model

import (
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
)

// PolicyFor is the traffic policy of the cluster for port and subset ("" for the service's own cluster),
// merged as istiod merges it: a portLevelSettings entry for the port replaces the rule's policy (its unset
// parts fall back to defaults, not to the rule's), then each part the subset sets (connectionPool,
// loadBalancer, outlierDetection, tls...) replaces the rule's; a subset's portLevelSettings entry for the
// port replaces every part. nil means no policy: Istio's defaults.
func (d *DestinationRule) PolicyFor(port uint32, subset string) *networkingv1alpha3.TrafficPolicy {
	if d == nil {
		return nil
	}
	top, _ := portPolicy(d.Policy, port)
	if subset == "" {
		return top
	}
	ss, ok := d.Subset(subset)
	if !ok || ss.Policy == nil {
		return top
	}
	sub, portLevel := portPolicy(ss.Policy, port)
	if top == nil {
		return sub
	}
	merged := &networkingv1alpha3.TrafficPolicy{
		ConnectionPool:   top.ConnectionPool,
		LoadBalancer:     top.LoadBalancer,
		OutlierDetection: top.OutlierDetection,
		Tls:              top.Tls,
		Tunnel:           top.Tunnel,
		ProxyProtocol:    top.ProxyProtocol,
		RetryBudget:      top.RetryBudget,
	}
	if sub.ConnectionPool != nil || portLevel {
		merged.ConnectionPool = sub.ConnectionPool
	}
	if sub.OutlierDetection != nil || portLevel {
		merged.OutlierDetection = sub.OutlierDetection
	}
	if sub.LoadBalancer != nil || portLevel {
		merged.LoadBalancer = sub.LoadBalancer
	}
	if sub.Tls != nil || portLevel {
		merged.Tls = sub.Tls
	}
	if sub.Tunnel != nil {
		merged.Tunnel = sub.Tunnel
	}
	if sub.ProxyProtocol != nil {
		merged.ProxyProtocol = sub.ProxyProtocol
	}
	if sub.RetryBudget != nil {
		merged.RetryBudget = sub.RetryBudget
	}
	return merged
}

// portPolicy is p's portLevelSettings entry for port as a whole policy (true), or p itself (false).
func portPolicy(p *networkingv1alpha3.TrafficPolicy, port uint32) (*networkingv1alpha3.TrafficPolicy, bool) {
	if p == nil {
		return nil, false
	}
	for _, pl := range p.PortLevelSettings {
		if pl.GetPort().GetNumber() == port {
			return &networkingv1alpha3.TrafficPolicy{
				ConnectionPool:   pl.ConnectionPool,
				LoadBalancer:     pl.LoadBalancer,
				OutlierDetection: pl.OutlierDetection,
				Tls:              pl.Tls,
			}, true
		}
	}
	return p, false
}

// HashFor is the consistent hash a route to this rule's host uses, as istiod picks it for a route
// destination: the subset's port-level setting, else the subset's, else the rule's port-level setting, else
// the rule's. Port-level settings count only for a destination that names its port (destPort != 0); nil
// means the route hashes nothing.
func (d *DestinationRule) HashFor(destPort uint32, subset string) *networkingv1alpha3.LoadBalancerSettings_ConsistentHashLB {
	if d == nil {
		return nil
	}
	hash := d.Policy.GetLoadBalancer().GetConsistentHash()
	portHash := portLevelHash(d.Policy, destPort)
	var subHash, subPortHash *networkingv1alpha3.LoadBalancerSettings_ConsistentHashLB
	if ss, ok := d.Subset(subset); ok && subset != "" {
		subHash = ss.Policy.GetLoadBalancer().GetConsistentHash()
		subPortHash = portLevelHash(ss.Policy, destPort)
	}
	switch {
	case subPortHash != nil:
		return subPortHash
	case subHash != nil:
		return subHash
	case portHash != nil:
		return portHash
	}
	return hash
}

// ServiceHashFor is the consistent hash of a service's default route (no VirtualService or HTTPRoute) on
// port: the rule's port-level setting for it, else the rule's.
func (d *DestinationRule) ServiceHashFor(port uint32) *networkingv1alpha3.LoadBalancerSettings_ConsistentHashLB {
	if d == nil {
		return nil
	}
	if h := portLevelHash(d.Policy, port); h != nil {
		return h
	}
	return d.Policy.GetLoadBalancer().GetConsistentHash()
}

func portLevelHash(p *networkingv1alpha3.TrafficPolicy, port uint32) *networkingv1alpha3.LoadBalancerSettings_ConsistentHashLB {
	if port == 0 {
		return nil
	}
	for _, pl := range p.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() == port {
			return pl.GetLoadBalancer().GetConsistentHash()
		}
	}
	return nil
}
