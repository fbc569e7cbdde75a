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

// SummarizeIstioPeerAuthn adds the facts of Istio's PeerAuthentication-derived policies to f.
func SummarizeIstioPeerAuthn(f Facts, policies []*security.Authorization) {
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
					addIf(f, mk, "not_principals", istioStrings(m.NotPrincipals))
					addIf(f, mk, "principals", istioStrings(m.Principals))
					addIf(f, mk, "destination_ports", portList(m.DestinationPorts))
					addIf(f, mk, "not_destination_ports", portList(m.NotDestinationPorts))
				}
			}
		}
	}
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
					addIf(f, mk, "not_principals", meshlabStrings(m.NotPrincipals))
					addIf(f, mk, "principals", meshlabStrings(m.Principals))
					addIf(f, mk, "destination_ports", portList(m.DestinationPorts))
					addIf(f, mk, "not_destination_ports", portList(m.NotDestinationPorts))
				}
			}
		}
	}
}

func istioStrings(ms []*security.StringMatch) string {
	var out []string
	for _, m := range ms {
		switch t := m.MatchType.(type) {
		case *security.StringMatch_Exact:
			out = append(out, "exact:"+t.Exact)
		case *security.StringMatch_Prefix:
			out = append(out, "prefix:"+t.Prefix)
		case *security.StringMatch_Suffix:
			out = append(out, "suffix:"+t.Suffix)
		case *security.StringMatch_Presence:
			out = append(out, "presence")
		}
	}
	return strings.Join(out, ",")
}

func meshlabStrings(ms []configgen.ZtunnelStringMatch) string {
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
