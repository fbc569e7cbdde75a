// Package ztunnel is meshlab's node proxy. For every enrolled pod on its node it installs in-pod capture,
// serves that pod's outbound (15001), inbound plaintext (15006) and inbound HBONE (15008) sockets from
// inside the pod's network namespace, carries outbound TCP over HBONE with the pod's own SVID, enforces L4
// authorization on the way in, and records connections and access-log lines.
//
// Configuration is plain Go structs here (Config); the xDS client for the workload API will translate into
// them.
package ztunnel

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Protocol is how a workload accepts mesh traffic.
type Protocol string

const (
	// ProtocolHBONE: the workload is captured; peers tunnel to its 15008.
	ProtocolHBONE Protocol = "HBONE"
	// ProtocolNone: not in the mesh; peers connect to it directly.
	ProtocolNone Protocol = "NONE"
)

// DefaultTrustDomain is used when a workload names none.
const DefaultTrustDomain = "cluster.local"

// GatewayAddress points at a waypoint: a service VIP or a workload IP, and its HBONE port.
type GatewayAddress struct {
	Address   netip.Addr
	HBONEPort uint16 // 0 means 15008
}

// Workload is one pod, as the workload API describes it.
type Workload struct {
	UID            string
	Name           string
	Namespace      string
	ServiceAccount string
	TrustDomain    string
	Node           string
	IP             netip.Addr
	Protocol       Protocol
	// Waypoint, if set, receives all traffic addressed to this workload.
	Waypoint *GatewayAddress
	// AuthorizationPolicies lists "namespace/name" of workload-scoped policies selecting this workload.
	AuthorizationPolicies []string
}

// Identity is the workload's SPIFFE ID.
func (w *Workload) Identity() spiffeid.ID {
	td := w.TrustDomain
	if td == "" {
		td = DefaultTrustDomain
	}
	id, err := spiffeid.FromSegments(spiffeid.RequireTrustDomainFromString(td), "ns", w.Namespace, "sa", w.ServiceAccount)
	if err != nil {
		return spiffeid.ID{}
	}
	return id
}

// Service is a Kubernetes service: VIPs, ports and endpoint workloads.
type Service struct {
	Name      string
	Namespace string
	Hostname  string
	VIPs      []netip.Addr
	// Ports maps a service port to the target port on endpoints (0 or absent: the same number).
	Ports map[uint16]uint16
	// Endpoints are workload UIDs.
	Endpoints []string
	// Waypoint, if set, receives all traffic addressed to the service.
	Waypoint *GatewayAddress
}

// Scope says which workloads a policy applies to.
type Scope string

const (
	ScopeGlobal           Scope = "Global"           // every workload
	ScopeNamespace        Scope = "Namespace"        // every workload in the policy's namespace
	ScopeWorkloadSelector Scope = "WorkloadSelector" // workloads listing the policy in AuthorizationPolicies
)

// Action is what a matching policy does.
type Action string

const (
	ActionAllow Action = "Allow"
	ActionDeny  Action = "Deny"
)

// Policy is an L4 AuthorizationPolicy.
type Policy struct {
	Name      string
	Namespace string
	Scope     Scope
	Action    Action
	// Rules are ORed; an Allow policy with no rules allows nothing, a Deny policy with no rules denies
	// nothing (as in Istio, where `rules: [{}]` is the match-all).
	Rules []Rule
}

// Rule matches when every non-empty field matches. Principals are Istio-style
// ("cluster.local/ns/default/sa/sleep", with a leading or trailing "*" wildcard).
type Rule struct {
	Principals    []string
	NotPrincipals []string
	Namespaces    []string
	NotNamespaces []string
	Ports         []uint16
	NotPorts      []uint16
}

// Config is everything ztunnel knows about the mesh.
type Config struct {
	Workloads []Workload
	Services  []Service
	Policies  []Policy
}

// index is an immutable, looked-up form of Config.
type index struct {
	byUID      map[string]*Workload
	byIP       map[netip.Addr]*Workload
	byVIP      map[netip.Addr]*serviceEntry
	policies   map[string]*Policy // "ns/name"
	namespaced map[string][]*Policy
	global     []*Policy
}

type serviceEntry struct {
	*Service
	next atomic.Uint64 // round-robin cursor
}

func buildIndex(cfg Config) (*index, error) {
	ix := &index{
		byUID: map[string]*Workload{}, byIP: map[netip.Addr]*Workload{}, byVIP: map[netip.Addr]*serviceEntry{},
		policies: map[string]*Policy{}, namespaced: map[string][]*Policy{},
	}
	for i := range cfg.Workloads {
		w := &cfg.Workloads[i]
		if w.UID == "" || !w.IP.IsValid() {
			return nil, fmt.Errorf("workload %s/%s: needs a UID and an IP", w.Namespace, w.Name)
		}
		if _, dup := ix.byUID[w.UID]; dup {
			return nil, fmt.Errorf("workload UID %s appears twice", w.UID)
		}
		if w.Protocol == "" {
			w.Protocol = ProtocolNone
		}
		ix.byUID[w.UID] = w
		ix.byIP[w.IP] = w
	}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		e := &serviceEntry{Service: s}
		for _, vip := range s.VIPs {
			ix.byVIP[vip] = e
		}
	}
	for i := range cfg.Policies {
		p := &cfg.Policies[i]
		switch p.Action {
		case ActionAllow, ActionDeny:
		default:
			return nil, fmt.Errorf("policy %s/%s: unknown action %q", p.Namespace, p.Name, p.Action)
		}
		switch p.Scope {
		case ScopeGlobal:
			ix.global = append(ix.global, p)
		case ScopeNamespace:
			ix.namespaced[p.Namespace] = append(ix.namespaced[p.Namespace], p)
		case ScopeWorkloadSelector, "":
			ix.policies[p.Namespace+"/"+p.Name] = p
		default:
			return nil, fmt.Errorf("policy %s/%s: unknown scope %q", p.Namespace, p.Name, p.Scope)
		}
	}
	return ix, nil
}

func (g *GatewayAddress) port() uint16 {
	if g.HBONEPort == 0 {
		return mesh.HBONEPort
	}
	return g.HBONEPort
}

// pick returns the next endpoint workload of s, round robin, skipping UIDs that are unknown.
func (ix *index) pick(s *serviceEntry) *Workload {
	n := len(s.Endpoints)
	for range n {
		i := s.next.Add(1) - 1
		if w := ix.byUID[s.Endpoints[i%uint64(n)]]; w != nil {
			return w
		}
	}
	return nil
}

// gateway resolves a waypoint address to the workload that will answer (a VIP is load-balanced).
func (ix *index) gateway(g *GatewayAddress) (*Workload, error) {
	if s := ix.byVIP[g.Address]; s != nil {
		if w := ix.pick(s); w != nil {
			return w, nil
		}
		return nil, fmt.Errorf("waypoint service %s has no endpoints", g.Address)
	}
	if w := ix.byIP[g.Address]; w != nil {
		return w, nil
	}
	return nil, fmt.Errorf("waypoint %s is not a known service or workload", g.Address)
}
