package model

import (
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/meshlab/meshlab/controlplane/ingest"
)

// MTLSMode is a PeerAuthentication mutual TLS mode; "" is UNSET (inherit).
type MTLSMode string

// The PeerAuthentication modes.
const (
	MTLSUnset      MTLSMode = ""
	MTLSStrict     MTLSMode = "STRICT"
	MTLSPermissive MTLSMode = "PERMISSIVE"
	MTLSDisable    MTLSMode = "DISABLE"
)

// Names Istio gives the L4 policies it derives from PeerAuthentications for ztunnel: one static STRICT
// policy in the root namespace that every effectively-STRICT workload references, and one per workload
// policy with port-level exceptions ("_" cannot appear in a Kubernetes name, so they never collide).
const (
	StaticStrictPolicyName       = "istio_converted_static_strict"
	ConvertedPeerAuthnNamePrefix = "converted_peer_authentication_"
)

// PeerAuthentication is a PeerAuthentication as the mesh applies it: mesh-wide (root namespace, no
// selector), namespace-wide (no selector) or for the workloads it selects, with per-port modes.
type PeerAuthentication struct {
	Name, Namespace string
	Selector        map[string]string // empty: the namespace (or the mesh)
	Mode            MTLSMode
	PortModes       map[uint32]MTLSMode
	Created         time.Time
	Source          ingest.Key
}

func mtlsMode(m *securityv1beta1.PeerAuthentication_MutualTLS) MTLSMode {
	switch m.GetMode() {
	case securityv1beta1.PeerAuthentication_MutualTLS_STRICT:
		return MTLSStrict
	case securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE:
		return MTLSPermissive
	case securityv1beta1.PeerAuthentication_MutualTLS_DISABLE:
		return MTLSDisable
	}
	return MTLSUnset
}

func (b *builder) buildPeerAuthentications() {
	for _, pa := range b.objs.PeerAuthentications {
		p := &PeerAuthentication{
			Name: pa.Name, Namespace: pa.Namespace, Selector: pa.Spec.GetSelector().GetMatchLabels(),
			Mode: mtlsMode(pa.Spec.Mtls), Created: pa.CreationTimestamp.Time,
			Source: ingest.Key{Kind: ingest.KindPeerAuthentication, Namespace: pa.Namespace, Name: pa.Name},
		}
		for port, m := range pa.Spec.PortLevelMtls {
			if p.PortModes == nil {
				p.PortModes = map[uint32]MTLSMode{}
			}
			p.PortModes[port] = mtlsMode(m)
		}
		b.s.peerAuthn = append(b.s.peerAuthn, p)
	}
	b.warnSidecarPeerAuthn()
}

// labelTLSMode is the label injection puts on sidecar pods (security.istio.io/tlsMode: istio).
const labelTLSMode = "security.istio.io/tlsMode"

// warnSidecarPeerAuthn reports a PeerAuthentication that makes pods with a meshlab sidecar STRICT (on
// some port): ztunnel enforces it for ambient pods, but meshlab's sidecars still accept plain text, which a
// user must not mistake for enforcement. The most specific policy in effect for the pod is named.
func (b *builder) warnSidecarPeerAuthn() {
	pods := map[*PeerAuthentication][]string{}
	for _, wl := range b.s.Workloads() {
		if wl.Ambient || wl.Labels[labelTLSMode] != "istio" || len(b.s.PeerAuthnPolicyKeys(wl)) == 0 {
			continue
		}
		var deciding *PeerAuthentication
		for _, p := range b.s.peerAuthn {
			if p.appliesTo(wl) && (deciding == nil || p.specificity() > deciding.specificity()) {
				deciding = p
			}
		}
		pods[deciding] = append(pods[deciding], wl.Name)
	}
	for _, p := range b.s.peerAuthn {
		if names := pods[p]; len(names) > 0 {
			b.problem(p.Source, "STRICT is not enforced on pods with a meshlab sidecar (%s): they still accept plain text; meshlab enforces PeerAuthentication in ztunnel, for ambient pods only",
				strings.Join(names, ", "))
		}
	}
}

// specificity orders the levels: mesh-wide 0, namespace 1, workload 2.
func (p *PeerAuthentication) specificity() int {
	switch {
	case len(p.Selector) > 0:
		return 2
	case p.Namespace != RootNamespace:
		return 1
	}
	return 0
}

// appliesTo reports whether the policy is one of the levels that decide a workload's mode.
func (p *PeerAuthentication) appliesTo(wl *Workload) bool {
	switch {
	case p.Namespace == RootNamespace:
		return len(p.Selector) == 0
	case p.Namespace != wl.Namespace:
		return false
	case len(p.Selector) == 0:
		return true
	}
	return labels.SelectorFromSet(p.Selector).Matches(labels.Set(wl.Labels))
}

// PeerAuthentications returns every PeerAuthentication, sorted by namespace and name.
func (s *Snapshot) PeerAuthentications() []*PeerAuthentication { return s.peerAuthn }

// oldest keeps, among the policies that pass keep, the one created first (then by name), as Istio resolves
// a conflict between policies of one level.
func oldest(ps []*PeerAuthentication, keep func(*PeerAuthentication) bool) *PeerAuthentication {
	var out *PeerAuthentication
	for _, p := range ps {
		if keep(p) && (out == nil || p.Created.Before(out.Created)) {
			out = p
		}
	}
	return out
}

// peerAuthnLevels returns the mesh-wide and namespace-wide policies in effect for namespace ns.
func (s *Snapshot) peerAuthnLevels(ns string) (mesh, namespace *PeerAuthentication) {
	mesh = oldest(s.peerAuthn, func(p *PeerAuthentication) bool { return p.Namespace == RootNamespace && len(p.Selector) == 0 })
	if ns != RootNamespace {
		namespace = oldest(s.peerAuthn, func(p *PeerAuthentication) bool { return p.Namespace == ns && len(p.Selector) == 0 })
	}
	return mesh, namespace
}

// PeerAuthnPolicyKeys returns the names ("namespace/name") of the L4 policies derived from
// PeerAuthentications that a workload references, in Istio's way: the static STRICT policy when the mode in
// effect for the workload (workload over namespace over mesh, UNSET inheriting) is STRICT with no
// port-level exception, and the workload policy's converted form when its port-level modes differ from that.
func (s *Snapshot) PeerAuthnPolicyKeys(wl *Workload) []string {
	mesh, ns := s.peerAuthnLevels(wl.Namespace)
	workload := oldest(s.peerAuthn, func(p *PeerAuthentication) bool { return len(p.Selector) > 0 && p.appliesTo(wl) })
	strict := mesh != nil && mesh.Mode == MTLSStrict
	if ns != nil && ns.Mode != MTLSUnset {
		strict = ns.Mode == MTLSStrict
	}
	ported := false // the workload policy's converted form carries the port-level modes
	if workload != nil {
		switch workload.Mode {
		case MTLSStrict:
			strict = true
		case MTLSPermissive, MTLSDisable:
			strict = false
		}
		if len(workload.PortModes) > 0 {
			switch workload.Mode {
			case MTLSStrict:
				ported = workload.hasPortMode(MTLSPermissive, MTLSDisable)
			case MTLSPermissive, MTLSDisable:
				ported = workload.hasPortMode(MTLSStrict)
			default:
				if strict {
					// Istio looks for PERMISSIVE ports only here (not DISABLE); kept as Istio has it.
					ported = workload.hasPortMode(MTLSPermissive)
				} else {
					ported = workload.hasPortMode(MTLSStrict)
				}
			}
			if ported && strict {
				strict = false // the converted policy carries the STRICT default itself
			}
		}
	}
	var keys []string
	if strict {
		keys = append(keys, RootNamespace+"/"+StaticStrictPolicyName)
	}
	if ported {
		keys = append(keys, workload.Namespace+"/"+ConvertedPeerAuthnNamePrefix+workload.Name)
	}
	slices.Sort(keys)
	return keys
}

func (p *PeerAuthentication) hasPortMode(modes ...MTLSMode) bool {
	for _, m := range p.PortModes {
		if slices.Contains(modes, m) {
			return true
		}
	}
	return false
}

// L4Deny is a DENY rule set derived from a PeerAuthentication: a connection is refused when any group
// matches, a group matching when all its conditions do.
type L4Deny struct {
	Name, Namespace string
	Groups          [][]L4Condition
}

// L4Condition is one condition of a derived DENY rule: the connection has no peer identity (plain text)
// and/or its destination port is or is not one of Ports.
type L4Condition struct {
	Plaintext bool
	Ports     []uint32
	NotPorts  []uint32
}

// StaticStrictPolicy is the DENY-plaintext policy every effectively STRICT workload references; Istio sends
// it whenever any PeerAuthentication exists.
func StaticStrictPolicy() L4Deny {
	return L4Deny{Name: StaticStrictPolicyName, Namespace: RootNamespace, Groups: [][]L4Condition{{{Plaintext: true}}}}
}

// ConvertedPeerAuthentication is the DENY policy Istio derives for ztunnel from a workload PeerAuthentication
// with port-level modes, merging in the namespace's or mesh's STRICT default; ok is false when the
// policy needs no converted form (no selector, the root namespace, no port-level modes, or nothing
// beyond what the static STRICT policy already does).
func (s *Snapshot) ConvertedPeerAuthentication(p *PeerAuthentication) (L4Deny, bool) {
	if p.Namespace == RootNamespace || len(p.Selector) == 0 || len(p.PortModes) == 0 {
		return L4Deny{}, false
	}
	root, ns := s.peerAuthnLevels(p.Namespace)
	isStrict := func(q *PeerAuthentication) bool { return q != nil && q.Mode == MTLSStrict }
	nsUnset := ns == nil || ns.Mode == MTLSUnset
	// Whether a STRICT port is already covered by the levels above (Istio's three cases, with its
	// precedence: the mesh case is not limited to an UNSET workload mode).
	parentStrict := p.Mode == MTLSStrict || (p.Mode == MTLSUnset && isStrict(ns)) || (nsUnset && isStrict(root))

	var groups [][]L4Condition
	var rules []L4Condition // one group, ANDed: plaintext and not one of the exempt ports
	if p.Mode == MTLSStrict {
		rules = append(rules, L4Condition{Plaintext: true})
	}
	exempted := false
	ports := make([]uint32, 0, len(p.PortModes))
	for port := range p.PortModes {
		ports = append(ports, port)
	}
	slices.Sort(ports)
	for _, port := range ports {
		switch p.PortModes[port] {
		case MTLSStrict:
			if parentStrict {
				continue
			}
			groups = append(groups, []L4Condition{{Plaintext: true, Ports: []uint32{port}}})
		case MTLSPermissive, MTLSDisable:
			if p.Mode == MTLSPermissive || p.Mode == MTLSDisable {
				continue
			}
			if p.Mode == MTLSUnset && ((ns != nil && !isStrict(ns)) || (ns == nil && root != nil && !isStrict(root)) || (ns == nil && root == nil)) {
				continue
			}
			exempted = true
			rules = append(rules, L4Condition{NotPorts: []uint32{port}})
		}
	}
	if p.Mode == MTLSStrict && !exempted {
		return L4Deny{}, false // plain STRICT: the static policy does it
	}
	if len(rules) == 0 && len(groups) == 0 {
		return L4Deny{}, false
	}
	mergeStrict := (isStrict(root) && (nsUnset || isStrict(ns))) || isStrict(ns)
	if mergeStrict && exempted {
		rules = append(rules, L4Condition{Plaintext: true})
	}
	if len(rules) > 0 {
		groups = append(groups, rules)
	}
	return L4Deny{Name: ConvertedPeerAuthnNamePrefix + p.Name, Namespace: p.Namespace, Groups: groups}, true
}
