package fidelity

import (
	"fmt"
	"strings"

	"istio.io/istio/pkg/workloadapi/security"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
)

// The L4 policies derived from PeerAuthentications are compared whole, field by field: facts keyed
// "policy/NAMESPACE/NAME", one per scope, action and match field of each group's rules. (Policies converted
// from AuthorizationPolicies are compared by the workloads that reference them.)

func peerAuthnDerived(name string) bool {
	return name == model.StaticStrictPolicyName || strings.HasPrefix(name, model.ConvertedPeerAuthnNamePrefix)
}

// SummarizeIstioPeerAuthn adds the facts of Istio's PeerAuthentication-derived policies to f, read in
// meshlab's shape of the same proto (configgen.ZtunnelAuthorization) so both sides are summarized alike.
func SummarizeIstioPeerAuthn(f Facts, policies []*security.Authorization) {
	var as []configgen.ZtunnelAuthorization
	for _, p := range policies {
		a := configgen.ZtunnelAuthorization{Name: p.Name, Namespace: p.Namespace, Scope: p.Scope.String(), Action: p.Action.String()}
		for _, g := range p.Groups {
			var zg configgen.ZtunnelGroup
			for _, r := range g.Rules {
				var zr configgen.ZtunnelRules
				for _, m := range r.Matches {
					zr.Matches = append(zr.Matches, configgen.ZtunnelMatch{
						Principals: meshlabMatches(m.Principals), NotPrincipals: meshlabMatches(m.NotPrincipals),
						DestinationPorts: m.DestinationPorts, NotDestinationPorts: m.NotDestinationPorts,
					})
				}
				zg.Rules = append(zg.Rules, zr)
			}
			a.Groups = append(a.Groups, zg)
		}
		as = append(as, a)
	}
	SummarizeMeshlabPeerAuthn(f, as)
}

// SummarizeMeshlabPeerAuthn adds the facts of meshlab's PeerAuthentication-derived policies to f.
func SummarizeMeshlabPeerAuthn(f Facts, policies []configgen.ZtunnelAuthorization) {
	for _, p := range policies {
		if !peerAuthnDerived(p.Name) {
			continue
		}
		k := "policy/" + p.Namespace + "/" + p.Name
		f.add("%s: scope=%s", k, p.Scope)
		f.add("%s: action=%s", k, p.Action)
		for gi, g := range p.Groups {
			for ri, r := range g.Rules {
				for mi, m := range r.Matches {
					mk := fmt.Sprintf("%s group[%d] rule[%d] match[%d]", k, gi, ri, mi)
					addIf(f, mk, "not_principals", matchList(m.NotPrincipals))
					addIf(f, mk, "principals", matchList(m.Principals))
					addIf(f, mk, "destination_ports", portList(m.DestinationPorts))
					addIf(f, mk, "not_destination_ports", portList(m.NotDestinationPorts))
				}
			}
		}
	}
}

// meshlabMatches converts Istio's StringMatches to meshlab's.
func meshlabMatches(ms []*security.StringMatch) []configgen.ZtunnelStringMatch {
	var out []configgen.ZtunnelStringMatch
	for _, m := range ms {
		switch t := m.MatchType.(type) {
		case *security.StringMatch_Exact:
			out = append(out, configgen.ZtunnelStringMatch{Exact: t.Exact})
		case *security.StringMatch_Prefix:
			out = append(out, configgen.ZtunnelStringMatch{Prefix: t.Prefix})
		case *security.StringMatch_Suffix:
			out = append(out, configgen.ZtunnelStringMatch{Suffix: t.Suffix})
		case *security.StringMatch_Presence:
			out = append(out, configgen.ZtunnelStringMatch{Presence: true})
		}
	}
	return out
}

func matchList(ms []configgen.ZtunnelStringMatch) string {
	var out []string
	for _, m := range ms {
		switch {
		case m.Presence:
			out = append(out, "presence")
		case m.Prefix != "":
			out = append(out, "prefix:"+m.Prefix)
		case m.Suffix != "":
			out = append(out, "suffix:"+m.Suffix)
		default:
			out = append(out, "exact:"+m.Exact)
		}
	}
	return strings.Join(out, ",")
}

func portList(ps []uint32) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprint(p))
	}
	return strings.Join(out, ",")
}
