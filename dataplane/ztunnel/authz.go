package ztunnel

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// connInfo is what L4 authorization sees of a connection.
type connInfo struct {
	peer    spiffeid.ID // zero for plaintext
	dstPort uint16
}

// principal renders an identity as Istio's policies spell it: trust domain and path, no scheme.
func principal(id spiffeid.ID) string {
	if id.IsZero() {
		return ""
	}
	return id.TrustDomain().Name() + id.Path()
}

// namespaceOf reads the namespace out of a spiffe://td/ns/N/sa/SA identity.
func namespaceOf(id spiffeid.ID) string {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) == 4 && parts[0] == "ns" && parts[2] == "sa" {
		return parts[1]
	}
	return ""
}

// authorize applies Istio's order: any matching Deny refuses; otherwise, if Allow policies apply, one of
// them must match. It returns nil or an error naming the deciding policy.
func (ix *index) authorize(dst *Workload, c connInfo) error {
	v := ix.decide(dst, c)
	if v.Allowed {
		return nil
	}
	return errors.New(v.Reason)
}

// Verdict is an L4 authorization decision and what decided it.
type Verdict struct {
	Allowed bool
	// Policy is the deciding policy "namespace/name" (the matching Deny, or the matching Allow), empty when
	// no policy applies or no Allow matched.
	Policy string
	// Rule is the index of the deciding policy's rule that matched, -1 for none.
	Rule int
	// Reason says it in words (the text of the connection's rejection).
	Reason string
	// Applicable counts the policies that apply to the destination.
	Applicable int
}

// decide is authorize with the deciding policy and rule.
func (ix *index) decide(dst *Workload, c connInfo) Verdict {
	var applicable []*Policy
	applicable = append(applicable, ix.global...)
	applicable = append(applicable, ix.namespaced[dst.Namespace]...)
	for _, key := range dst.AuthorizationPolicies {
		if p := ix.policies[key]; p != nil {
			applicable = append(applicable, p)
		}
	}
	var allows []*Policy
	for _, p := range applicable {
		if p.Action == ActionDeny {
			if i := p.matchingRule(c); i >= 0 {
				return Verdict{Policy: p.Namespace + "/" + p.Name, Rule: i, Applicable: len(applicable),
					Reason: fmt.Sprintf("denied by policy %s/%s", p.Namespace, p.Name)}
			}
			continue
		}
		allows = append(allows, p)
	}
	if len(allows) == 0 {
		return Verdict{Allowed: true, Rule: -1, Applicable: len(applicable), Reason: "no allow policy applies and no deny policy matched"}
	}
	for _, p := range allows {
		if i := p.matchingRule(c); i >= 0 {
			return Verdict{Allowed: true, Policy: p.Namespace + "/" + p.Name, Rule: i, Applicable: len(applicable),
				Reason: fmt.Sprintf("allowed by policy %s/%s", p.Namespace, p.Name)}
		}
	}
	return Verdict{Rule: -1, Applicable: len(applicable), Reason: fmt.Sprintf("no allow policy matched (%d apply)", len(allows))}
}

// matchingRule returns the index of the first rule that matches c, or -1.
func (p *Policy) matchingRule(c connInfo) int {
	return slices.IndexFunc(p.Rules, func(r Rule) bool { return r.matches(c) })
}

func (p *Policy) matches(c connInfo) bool {
	return slices.ContainsFunc(p.Rules, func(r Rule) bool { return r.matches(c) })
}

func (r Rule) matches(c connInfo) bool {
	pr, ns := principal(c.peer), namespaceOf(c.peer)
	if len(r.Principals) > 0 && (pr == "" || !anyPattern(r.Principals, pr)) {
		return false
	}
	if len(r.NotPrincipals) > 0 && pr != "" && anyPattern(r.NotPrincipals, pr) {
		return false
	}
	if len(r.Namespaces) > 0 && (ns == "" || !anyPattern(r.Namespaces, ns)) {
		return false
	}
	if len(r.NotNamespaces) > 0 && ns != "" && anyPattern(r.NotNamespaces, ns) {
		return false
	}
	if len(r.Ports) > 0 && !slices.Contains(r.Ports, c.dstPort) {
		return false
	}
	if len(r.NotPorts) > 0 && slices.Contains(r.NotPorts, c.dstPort) {
		return false
	}
	return true
}

// anyPattern matches Istio's string patterns: exact, "*", "prefix*" or "*suffix".
func anyPattern(patterns []string, s string) bool {
	for _, p := range patterns {
		switch {
		case p == "*":
			return true
		case strings.HasSuffix(p, "*") && strings.HasPrefix(s, strings.TrimSuffix(p, "*")):
			return true
		case strings.HasPrefix(p, "*") && strings.HasSuffix(s, strings.TrimPrefix(p, "*")):
			return true
		case p == s:
			return true
		}
	}
	return false
}
