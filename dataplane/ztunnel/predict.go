package ztunnel

import (
	"net/netip"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Predictor answers what ztunnel would do with a connection, from a Config and without sockets, by running
// the same lookups the proxy runs (outbound resolution, L4 authorization). `meshlab explain` uses it.
type Predictor struct{ ix *index }

// NewPredictor indexes cfg as SetConfig does.
func NewPredictor(cfg Config) (*Predictor, error) {
	ix, err := buildIndex(cfg)
	if err != nil {
		return nil, err
	}
	return &Predictor{ix: ix}, nil
}

// OutboundPlan is where ztunnel sends an outbound connection.
type OutboundPlan struct {
	// HBONE: the connection is tunnelled to ProxyAddr (a waypoint's or the destination pod's 15008) with
	// :authority Target, and the server must present Expect. Otherwise ProxyAddr is dialled in plain text.
	HBONE     bool
	ProxyAddr string
	Target    string
	Expect    string
	// Service is the service whose VIP was dialled, if any.
	Service *Service
	// Waypoint is the waypoint workload the tunnel goes to, nil when it goes straight to the destination.
	Waypoint *Workload
	// Destination is the destination workload, when ztunnel knows it (nil through a service's waypoint,
	// which picks the endpoint, or for a destination outside the mesh).
	Destination *Workload
}

// Outbound resolves a connection from the workload at src to dst. Service endpoints are picked round robin,
// as the proxy does: the first call picks the first endpoint.
func (p *Predictor) Outbound(src netip.Addr, dst netip.AddrPort) (OutboundPlan, error) {
	rt, err := p.ix.resolve(p.ix.byIP[src], dst)
	if err != nil {
		return OutboundPlan{}, err
	}
	out := OutboundPlan{HBONE: rt.hbone, ProxyAddr: rt.proxyAddr, Target: rt.target, Service: rt.service, Destination: rt.dst}
	if !rt.expect.IsZero() {
		out.Expect = rt.expect.String()
	}
	if rt.hbone {
		if ap, err := netip.ParseAddrPort(rt.proxyAddr); err == nil {
			if w := p.ix.byIP[ap.Addr()]; w != nil && w != rt.dst {
				out.Waypoint = w
			}
		}
	}
	return out, nil
}

// Authorize decides an inbound connection to the workload at dst (its port port) from peer, a SPIFFE ID
// (empty for plaintext), as the destination's ztunnel does before accepting it. ok is false when dst is
// not a workload this config knows.
func (p *Predictor) Authorize(dst netip.Addr, peer string, port uint16) (v Verdict, ok bool) {
	w := p.ix.byIP[dst]
	if w == nil {
		return Verdict{}, false
	}
	var id spiffeid.ID
	if peer != "" {
		parsed, err := spiffeid.FromString(peer)
		if err != nil {
			return Verdict{Rule: -1, Reason: "peer identity " + peer + " is not a SPIFFE ID"}, true
		}
		id = parsed
	}
	return p.ix.decide(w, connInfo{peer: id, dstPort: port}), true
}

// Workload returns the workload with address ip, or nil.
func (p *Predictor) Workload(ip netip.Addr) *Workload { return p.ix.byIP[ip] }

// Service returns the service with VIP ip, or nil.
func (p *Predictor) Service(ip netip.Addr) *Service {
	if s := p.ix.byVIP[ip]; s != nil {
		return s.Service
	}
	return nil
}

// Endpoints returns the workloads behind service s that this config knows, in the order round robin visits them.
func (p *Predictor) Endpoints(s *Service) []*Workload {
	var out []*Workload
	for _, uid := range s.Endpoints {
		if w := p.ix.byUID[uid]; w != nil {
			out = append(out, w)
		}
	}
	return out
}
