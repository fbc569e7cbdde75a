package l7

import (
	"net/http"
)

// Decision is what the engine would do with one HTTP request on a connection, worked out by the code that
// serves it (filter-chain selection, route matching, RBAC, the fault filter) without sending anything:
// `meshlab explain` prints it. Random choices (weighted clusters, fault percentages) are reported as
// probabilities rather than drawn.
type Decision struct {
	Listener string
	// Chain is the selected filter chain, nil when none matched (Envoy closes the connection).
	Chain *FilterChain
	// ChainMatch says how the chain was selected, step by step.
	ChainMatch []string
	// RouteConfig and VirtualHost name what the HTTP connection manager looked up; empty for TCP chains
	// or when the route configuration has not arrived.
	RouteConfig string
	VirtualHost string
	// Checked lists the virtual host's routes in order, up to and including the one that matched (all of
	// them when none did).
	Checked []RouteCheck
	// Route is the route that matched, nil for none (Envoy answers 404, flag NR).
	Route *Route
	// RBAC holds the verdict of each RBAC filter in chain order, up to the first that refuses.
	RBAC []RBACVerdict
	// Denied: an RBAC filter refuses the request (403 "RBAC: access denied").
	Denied bool
	// Fault is the fault filter's effective config for this request (the route's override, else the
	// filter's), nil when the chain has no fault filter or the config neither delays nor aborts.
	Fault *Fault
	// JWT says the chain authenticates JWTs first; explain does not evaluate tokens.
	JWT bool
}

// RouteCheck is one route tried against the request.
type RouteCheck struct {
	Route *Route
	// Why the route did not match; empty when it did.
	Why string
}

// RBACVerdict is one RBAC filter's verdict.
type RBACVerdict struct {
	// Deny is the filter's action: DENY (a matching policy refuses) or ALLOW (a policy must match).
	Deny    bool
	Allowed bool
	// Policy names the policy that matched ("ns[default]-policy[deny-get]-rule[0]"), empty for none.
	Policy string
}

// WeightedChoice is one cluster a route may send to, with the chance it is picked.
type WeightedChoice struct {
	Name        string
	Weight      uint32
	Probability float64
	// Cluster is nil when the proxy has no such cluster (Envoy answers 503, flag NC).
	Cluster *Cluster
}

// Explain decides what the listener would do with request r arriving on connection d. It runs the same
// lookups as the serving path: Table.Chain's filter-chain match, RouteTable.Match's virtual host and route
// order, each RBAC filter's policies, and the fault filter's per-route override.
func (t *Table) Explain(r *http.Request, d Downstream) *Decision {
	dec := &Decision{Listener: d.Listener}
	l := t.Listeners[d.Listener]
	if l == nil {
		return dec
	}
	dec.Chain, dec.ChainMatch = l.MatchTrail(d.Destination)
	if dec.Chain == nil || dec.Chain.HTTP == nil {
		return dec
	}
	h := dec.Chain.HTTP
	dec.JWT = h.jwt != nil
	if rt := t.RouteTableFor(h); rt != nil {
		dec.RouteConfig = rt.Name
		if vh := rt.virtualHost(r.Host); vh != nil {
			dec.VirtualHost = vh.name
			for _, route := range vh.routes {
				why := route.mismatch(r)
				dec.Checked = append(dec.Checked, RouteCheck{Route: route, Why: why})
				if why == "" {
					dec.Route = route
					break
				}
			}
		}
	}
	ri := &requestInfo{r: r, down: &d}
	for _, f := range h.rbac {
		ok, policy := f.allowed(ri)
		dec.RBAC = append(dec.RBAC, RBACVerdict{Deny: f.Deny, Allowed: ok, Policy: policy})
		if !ok {
			dec.Denied = true
			break
		}
	}
	if f := h.fault; f != nil {
		if dec.Route != nil && dec.Route.Fault != nil {
			f = dec.Route.Fault
		}
		if (f.Delay > 0 && f.DelayPPM > 0) || (f.AbortStatus != 0 && f.AbortPPM > 0) {
			dec.Fault = f
		}
	}
	return dec
}

// Choices lists the clusters the route sends to, with their probabilities (one at 1 for a single cluster).
func (t *Table) Choices(rt *Route) []WeightedChoice {
	if rt == nil || rt.Direct != nil || rt.Redirect != nil {
		return nil
	}
	if len(rt.Weighted) == 0 {
		return []WeightedChoice{{Name: rt.Cluster, Probability: 1, Cluster: t.Clusters[rt.Cluster]}}
	}
	out := make([]WeightedChoice, 0, len(rt.Weighted))
	for _, w := range rt.Weighted {
		out = append(out, WeightedChoice{Name: w.Name, Weight: w.Weight, Probability: float64(w.Weight) / float64(rt.totalWeight), Cluster: t.Clusters[w.Name]})
	}
	return out
}

// TCPChoices lists the clusters a TCP proxy chain sends to, with their probabilities.
func (t *Table) TCPChoices(p *TCPProxy) []WeightedChoice {
	if p == nil {
		return nil
	}
	if len(p.Weighted) == 0 {
		return []WeightedChoice{{Name: p.Cluster, Probability: 1, Cluster: t.Clusters[p.Cluster]}}
	}
	out := make([]WeightedChoice, 0, len(p.Weighted))
	for _, w := range p.Weighted {
		out = append(out, WeightedChoice{Name: w.Name, Weight: w.Weight, Probability: float64(w.Weight) / float64(p.total), Cluster: t.Clusters[w.Name]})
	}
	return out
}

// Percent is a parts-per-million fraction as a percentage.
func Percent(ppm uint64) float64 { return float64(ppm) / 10_000 }
