package xdsgen

import (
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/xds"
)

// Affects reports whether req can change what proxy receives (see the package doc).
func (g *Generator) Affects(p *xds.Proxy, req *xds.PushRequest) bool {
	if req.Full && len(req.ConfigsUpdated) == 0 {
		return true
	}
	switch p.Kind {
	case xds.KindZtunnel:
		for k := range req.ConfigsUpdated {
			if ztunnelKinds[ingest.Kind(k.Kind)] {
				return true
			}
		}
		return false
	case xds.KindSidecar, xds.KindGateway:
		// An ingress gateway's config is built from its Gateway, its HTTPRoutes and their backends: any
		// kind a sidecar depends on.
		for k := range req.ConfigsUpdated {
			if ingest.Kind(k.Kind) != ingest.KindGatewayClass && ingest.Kind(k.Kind) != ingest.KindServiceAccount {
				return true
			}
		}
		return false
	case xds.KindWaypoint:
		g.mu.Lock()
		cur, prev := g.cur, g.prev
		g.mu.Unlock()
		found := false
		for _, s := range []*model.Snapshot{cur, prev} {
			if s == nil {
				continue
			}
			ns, name := waypointOf(s, p)
			w := s.Waypoint(ns, name)
			if w == nil {
				continue
			}
			found = true
			st := g.state(s)
			if st == nil {
				return true
			}
			deps := st.waypointDeps(s, w)
			for k := range req.ConfigsUpdated {
				if _, ok := deps[k]; ok {
					return true
				}
			}
		}
		return !found // a waypoint the model does not know yet: any change may create it
	}
	return true
}

// ztunnelKinds are the kinds the workload API is built from; L7 routing never reaches ztunnel.
var ztunnelKinds = map[ingest.Kind]bool{
	ingest.KindNamespace: true, ingest.KindService: true, ingest.KindPod: true, ingest.KindEndpointSlice: true,
	ingest.KindGateway: true, ingest.KindAuthorizationPolicy: true, ingest.KindPeerAuthentication: true,
}

// waypointDeps lists the configs waypoint w's resources are built from in snapshot s.
func waypointDeps(s *model.Snapshot, w *model.Waypoint) map[xds.ConfigKey]struct{} {
	deps := map[xds.ConfigKey]struct{}{}
	add := func(k ingest.Key) {
		deps[xds.ConfigKey{Kind: string(k.Kind), Namespace: k.Namespace, Name: k.Name}] = struct{}{}
	}
	add(w.Key())
	add(ingest.Key{Kind: ingest.KindNamespace, Name: w.Namespace})
	sc := s.Scope(w)
	for _, svc := range append(append([]*model.Service(nil), sc.Services...), sc.Backends...) {
		add(svc.Key())
		add(ingest.Key{Kind: ingest.KindEndpointSlice, Namespace: svc.Namespace, Name: svc.Name})
		add(ingest.Key{Kind: ingest.KindNamespace, Name: svc.Namespace})
		if k, ok := s.RouteSource(svc.FQDN); ok {
			add(k)
		}
		for _, k := range s.TCPRouteSources(svc.FQDN) {
			add(k)
		}
		if dr := s.DestinationRule(svc.FQDN); dr != nil {
			add(dr.Source)
		}
		for _, ep := range svc.Endpoints {
			if ep.Workload != nil {
				add(ep.Workload.Key())
			}
		}
	}
	for _, wl := range sc.Workloads {
		add(wl.Key())
		add(ingest.Key{Kind: ingest.KindNamespace, Name: wl.Namespace})
	}
	for _, wp := range s.PoliciesForWaypoint(w) {
		add(wp.Policy.Source)
	}
	for _, svc := range append([]*model.Service{nil}, sc.Services...) {
		for _, ra := range s.JWTRulesForWaypoint(w, svc) {
			add(ra.Source)
		}
	}
	for _, wl := range s.Workloads() {
		if wl.Namespace == w.Namespace && wl.Labels[model.LabelGatewayName] == w.Name {
			add(wl.Key()) // the waypoint's own pods
		}
	}
	return deps
}
