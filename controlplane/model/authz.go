package model

import (
	"k8s.io/apimachinery/pkg/labels"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/meshlab/meshlab/controlplane/ingest"
)

// Authorization actions meshlab enforces.
const (
	ActionAllow = "ALLOW"
	ActionDeny  = "DENY"
)

// TargetRef is an AuthorizationPolicy targetRef.
type TargetRef struct {
	Group, Kind, Namespace, Name string
}

// AuthorizationPolicy is a validated Istio AuthorizationPolicy. A policy either selects workloads (Selector;
// nil selects the whole namespace, or the mesh in the root namespace), enforced by ztunnel, or targets a
// waypoint Gateway or a Service through it (TargetRefs), enforced by the waypoint.
type AuthorizationPolicy struct {
	Name, Namespace string
	Action          string
	Selector        map[string]string
	TargetRefs      []TargetRef
	Rules           []*securityv1beta1.Rule
	Source          ingest.Key
}

// HasL7 reports whether any rule needs request attributes (methods, paths, hosts, request principals,
// conditions) that only a waypoint can see.
func (p *AuthorizationPolicy) HasL7() bool {
	for _, r := range p.Rules {
		if RuleHasL7(r) {
			return true
		}
	}
	return false
}

// RuleHasL7 reports whether one rule needs request attributes.
func RuleHasL7(r *securityv1beta1.Rule) bool {
	if len(r.When) > 0 {
		return true
	}
	for _, f := range r.From {
		if s := f.Source; s != nil && (len(s.RequestPrincipals) > 0 || len(s.NotRequestPrincipals) > 0) {
			return true
		}
	}
	for _, t := range r.To {
		if o := t.Operation; o != nil && (len(o.Methods)+len(o.NotMethods)+len(o.Paths)+len(o.NotPaths)+len(o.Hosts)+len(o.NotHosts) > 0) {
			return true
		}
	}
	return false
}

func (b *builder) buildAuthorizationPolicies() {
	for _, ap := range b.objs.AuthorizationPolicies {
		key := ingest.Key{Kind: ingest.KindAuthorizationPolicy, Namespace: ap.Namespace, Name: ap.Name}
		spec := &ap.Spec
		p := &AuthorizationPolicy{Name: ap.Name, Namespace: ap.Namespace, Rules: spec.Rules, Source: key}
		switch spec.Action {
		case securityv1beta1.AuthorizationPolicy_ALLOW:
			p.Action = ActionAllow
		case securityv1beta1.AuthorizationPolicy_DENY:
			p.Action = ActionDeny
		default:
			b.problem(key, "action %s is not supported; policy ignored", spec.Action)
			continue
		}
		refs := spec.TargetRefs
		if spec.TargetRef != nil {
			refs = append(refs, spec.TargetRef)
		}
		if len(refs) > 0 && spec.Selector != nil {
			b.problem(key, "selector and targetRefs are mutually exclusive; policy ignored")
			continue
		}
		if spec.Selector != nil {
			p.Selector = spec.Selector.MatchLabels
			if p.Selector == nil {
				p.Selector = map[string]string{}
			}
		}
		p.TargetRefs = b.policyTargets(key, ap.Namespace, refs)
		if len(refs) > 0 && len(p.TargetRefs) == 0 {
			continue
		}
		b.s.authz = append(b.s.authz, p)
	}
}

// policyTargets resolves a policy's targetRefs (AuthorizationPolicy, RequestAuthentication) to the waypoint
// Gateways and waypoint-bound Services of its namespace; the others are reported and dropped.
func (b *builder) policyTargets(key ingest.Key, namespace string, refs []*typev1beta1.PolicyTargetReference) []TargetRef {
	var out []TargetRef
	for _, r := range refs {
		t := TargetRef{Group: r.Group, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
		if t.Namespace == "" {
			t.Namespace = namespace
		}
		if t.Namespace != namespace {
			b.problem(key, "targetRef %s %s/%s is in another namespace; ignored", t.Kind, t.Namespace, t.Name)
			continue
		}
		switch {
		case t.Kind == "Gateway" && (t.Group == "gateway.networking.k8s.io" || t.Group == ""):
			if b.s.waypointBy[t.Namespace+"/"+t.Name] == nil {
				b.problem(key, "targetRef Gateway %s/%s is not a waypoint; ignored", t.Namespace, t.Name)
				continue
			}
		case t.Kind == "Service" && (t.Group == "" || t.Group == "core"):
			svc := b.s.byHost[FQDN(t.Name, t.Namespace)]
			if svc == nil {
				b.problem(key, "targetRef Service %s/%s does not exist; ignored", t.Namespace, t.Name)
				continue
			}
			if svc.Waypoint == nil {
				b.problem(key, "targetRef Service %s/%s is not bound to a waypoint, so nothing enforces this policy", t.Namespace, t.Name)
				continue
			}
		default:
			b.problem(key, "targetRef kind %s/%s is not supported; ignored", t.Group, t.Kind)
			continue
		}
		out = append(out, t)
	}
	return out
}

// AuthorizationPolicies returns every valid policy, sorted by namespace and name.
func (s *Snapshot) AuthorizationPolicies() []*AuthorizationPolicy { return s.authz }

// PoliciesForWaypoint returns the policies a waypoint enforces: those targeting its Gateway, and those
// targeting a Service bound to it (with the service they apply to; nil means every request).
func (s *Snapshot) PoliciesForWaypoint(w *Waypoint) []WaypointPolicy {
	var out []WaypointPolicy
	for _, p := range s.authz {
		for _, t := range p.TargetRefs {
			switch t.Kind {
			case "Gateway":
				if t.Namespace == w.Namespace && t.Name == w.Name {
					out = append(out, WaypointPolicy{Policy: p})
				}
			case "Service":
				if svc := s.byHost[FQDN(t.Name, t.Namespace)]; svc != nil && svc.Waypoint == w {
					out = append(out, WaypointPolicy{Policy: p, Service: svc})
				}
			}
		}
	}
	return out
}

// WaypointPolicy is a policy as a waypoint applies it: to every request, or only to one service's.
type WaypointPolicy struct {
	Policy  *AuthorizationPolicy
	Service *Service // nil: all traffic through the waypoint
}

// PoliciesForWorkload returns the selector-based policies that apply to a workload (ztunnel enforces them).
func (s *Snapshot) PoliciesForWorkload(wl *Workload) []*AuthorizationPolicy {
	var out []*AuthorizationPolicy
	for _, p := range s.authz {
		if p.AppliesTo(wl) {
			out = append(out, p)
		}
	}
	return out
}

// AppliesTo reports whether a selector-based policy applies to the workload.
func (p *AuthorizationPolicy) AppliesTo(wl *Workload) bool {
	if len(p.TargetRefs) > 0 {
		return false
	}
	if p.Namespace != RootNamespace && p.Namespace != wl.Namespace {
		return false
	}
	if len(p.Selector) == 0 {
		return true
	}
	return labels.SelectorFromSet(p.Selector).Matches(labels.Set(wl.Labels))
}
