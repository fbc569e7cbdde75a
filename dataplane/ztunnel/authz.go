package ztunnel

import (
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
			if p.matches(c) {
				return fmt.Errorf("denied by policy %s/%s", p.Namespace, p.Name)
			}
			continue
		}
		allows = append(allows, p)
	}
	if len(allows) == 0 {
		return nil
	}
	for _, p := range allows {
		if p.matches(c) {
			return nil
		}
	}
	return fmt.Errorf("no allow policy matched (%d apply)", len(allows))
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
