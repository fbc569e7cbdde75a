package model

import (
	"slices"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/meshlab/meshlab/controlplane/ingest"
)

// RequestAuthentication is a validated Istio RequestAuthentication: the JWT rules a proxy checks tokens
// against. Bound like an AuthorizationPolicy: by selector (or namespace- and mesh-wide) to sidecars, by
// targetRefs to a waypoint Gateway or a Service through it. A token that is present must be valid; none
// at all is accepted (requiring one is an AuthorizationPolicy's job).
type RequestAuthentication struct {
	Name, Namespace string
	Selector        map[string]string
	TargetRefs      []TargetRef
	Rules           []*securityv1beta1.JWTRule
	Source          ingest.Key
}

func (b *builder) buildRequestAuthentications() {
	for _, ra := range b.objs.RequestAuthentications {
		key := ingest.Key{Kind: ingest.KindRequestAuthentication, Namespace: ra.Namespace, Name: ra.Name}
		spec := &ra.Spec
		p := &RequestAuthentication{Name: ra.Name, Namespace: ra.Namespace, Source: key}
		for i, r := range spec.JwtRules {
			if r.Jwks == "" {
				// Validation rejects jwksUri (nothing outside the lab can be fetched); a rule with neither
				// has no keys, so every token would fail. Istio does the same with a key set that matches
				// nothing.
				b.problem(key, "jwtRules[%d] (issuer %q) has no inline jwks: every token it is asked to verify is rejected", i, r.Issuer)
			}
			p.Rules = append(p.Rules, r)
		}
		refs := spec.TargetRefs
		if spec.TargetRef != nil {
			refs = append(refs, spec.TargetRef)
		}
		if len(refs) > 0 && spec.Selector != nil {
			b.problem(key, "selector and targetRefs are mutually exclusive; ignored")
			continue
		}
		if spec.Selector != nil {
			p.Selector = spec.Selector.MatchLabels
		}
		p.TargetRefs = b.policyTargets(key, ra.Namespace, refs)
		if len(refs) > 0 && len(p.TargetRefs) == 0 {
			continue
		}
		b.s.authn = append(b.s.authn, p)
	}
}

// RequestAuthentications returns every valid RequestAuthentication, sorted by namespace and name.
func (s *Snapshot) RequestAuthentications() []*RequestAuthentication { return s.authn }

// JWTRulesForWaypoint returns the RequestAuthentications a waypoint applies to a service's requests (svc
// nil: traffic to workloads): those targeting its Gateway and those targeting that Service.
func (s *Snapshot) JWTRulesForWaypoint(w *Waypoint, svc *Service) []*RequestAuthentication {
	var out []*RequestAuthentication
	for _, ra := range s.authn {
		if slices.ContainsFunc(ra.TargetRefs, func(t TargetRef) bool {
			switch t.Kind {
			case "Gateway":
				return t.Namespace == w.Namespace && t.Name == w.Name
			case "Service":
				return svc != nil && s.byHost[FQDN(t.Name, t.Namespace)] == svc && svc.Waypoint == w
			}
			return false
		}) {
			out = append(out, ra)
		}
	}
	return out
}

// JWTRulesForWorkload returns the selector-based RequestAuthentications that apply to a workload's
// sidecar: those of the root namespace and of its own, selecting it (or without selector).
func (s *Snapshot) JWTRulesForWorkload(wl *Workload) []*RequestAuthentication {
	var out []*RequestAuthentication
	for _, ra := range s.authn {
		if len(ra.TargetRefs) > 0 || (ra.Namespace != RootNamespace && ra.Namespace != wl.Namespace) {
			continue
		}
		if matchLabels(ra.Selector, wl.Labels) {
			out = append(out, ra)
		}
	}
	return out
}

// matchLabels reports whether every selector label is on the workload (an empty selector selects all).
func matchLabels(selector, labels map[string]string) bool {
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}
