package model

import (
	"fmt"
	"sort"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/ingest"
)

func (b *builder) buildWaypoints() {
	for _, gw := range b.objs.Gateways {
		if string(gw.Spec.GatewayClassName) != WaypointGatewayClass {
			continue
		}
		key := ingest.Key{Kind: ingest.KindGateway, Namespace: gw.Namespace, Name: gw.Name}
		w := &Waypoint{Name: gw.Name, Namespace: gw.Namespace, For: TrafficService, Object: gw,
			ServiceAccount: gw.Annotations[AnnotationForServiceAcount]}
		if v, ok := gw.Labels[LabelWaypointFor]; ok {
			switch t := TrafficType(v); t {
			case TrafficService, TrafficWorkload, TrafficAll, TrafficNone:
				w.For = t
			default:
				b.problem(key, "label %s=%q is not one of service, workload, all, none; using service", LabelWaypointFor, v)
			}
		}
		if !hasHBONEListener(gw) {
			b.problem(key, "a waypoint needs a listener with protocol HBONE on port %d", mesh.HBONEPort)
		}
		for _, a := range gw.Status.Addresses {
			if a.Type == nil || *a.Type == gwv1.IPAddressType {
				w.Addresses = append(w.Addresses, a.Value)
			}
		}
		if len(w.Addresses) == 0 {
			// The waypoint controller fronts the waypoint with a Service of the same name.
			for _, svc := range b.objs.Services {
				if svc.Name != gw.Name || svc.Namespace != gw.Namespace {
					continue
				}
				w.Addresses = append(w.Addresses, svc.Spec.ClusterIPs...)
				if len(w.Addresses) == 0 && svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != "None" {
					w.Addresses = []string{svc.Spec.ClusterIP}
				}
			}
		}
		b.s.waypoints = append(b.s.waypoints, w)
		b.s.waypointBy[gw.Namespace+"/"+gw.Name] = w
	}
}

func hasHBONEListener(gw *gwv1.Gateway) bool {
	for _, l := range gw.Spec.Listeners {
		if l.Protocol == "HBONE" && l.Port == mesh.HBONEPort {
			return true
		}
	}
	return false
}

// bindWaypoints decides which waypoint, if any, serves each service and each workload. An explicit
// istio.io/use-waypoint label (on the object, else on its namespace) wins; otherwise a per-service-account
// waypoint in the same namespace claims the workloads running as its service account.
func (b *builder) bindWaypoints() {
	reported := map[ingest.Key]bool{}
	report := func(key ingest.Key, format string, args ...any) {
		if !reported[key] {
			reported[key] = true
			b.problem(key, format, args...)
		}
	}
	// lookup resolves a use-waypoint label found on the object with key; ok is false for "none" or no label.
	lookup := func(key ingest.Key, lbls map[string]string, ns string) (w *Waypoint, labelled bool) {
		name, ok := lbls[LabelUseWaypoint]
		if !ok {
			return nil, false
		}
		if name == "none" || name == "" {
			return nil, true
		}
		wns := ns
		if v := lbls[LabelUseWaypointNamespace]; v != "" {
			wns = v
		}
		w = b.s.waypointBy[wns+"/"+name]
		if w == nil {
			report(key, "label %s=%s names waypoint %s/%s, which does not exist", LabelUseWaypoint, name, wns, name)
		}
		return w, true
	}
	nsKey := func(ns string) ingest.Key { return ingest.Key{Kind: ingest.KindNamespace, Name: ns} }
	nsLabels := func(ns string) map[string]string {
		if o := b.s.namespaces[ns]; o != nil {
			return o.Labels
		}
		return nil
	}

	for _, s := range b.s.services {
		w, labelled := lookup(s.Key(), s.Labels, s.Namespace)
		why := labelWhy(s.Labels, "Service "+s.Namespace+"/"+s.Name)
		fromNamespace := false
		if !labelled {
			w, labelled = lookup(nsKey(s.Namespace), nsLabels(s.Namespace), s.Namespace)
			fromNamespace = labelled
			why = labelWhy(nsLabels(s.Namespace), "Namespace "+s.Namespace)
		}
		if !labelled {
			w = b.perServiceAccountWaypoint(s)
			why = fmt.Sprintf("no %s label on Service %s/%s or Namespace %s", LabelUseWaypoint, s.Namespace, s.Name, s.Namespace)
			if w != nil {
				why = fmt.Sprintf("per-service-account waypoint %s/%s (%s=%s) runs an endpoint's service account", w.Namespace, w.Name, AnnotationForServiceAcount, w.ServiceAccount)
			}
		}
		if w != nil && !w.ServesServices() {
			if !fromNamespace {
				b.problem(s.Key(), "waypoint %s/%s does not accept service traffic (%s=%s)", w.Namespace, w.Name, LabelWaypointFor, w.For)
			}
			why += fmt.Sprintf(", but waypoint %s/%s does not accept service traffic (%s=%s)", w.Namespace, w.Name, LabelWaypointFor, w.For)
			w = nil
		}
		if w != nil && b.frontsWaypoint(s) {
			why = "the Service fronts a waypoint: a waypoint's own Service never goes through a waypoint"
			w = nil // a waypoint's own Service never goes through a waypoint, its own or another's (Istio's rule)
		}
		s.Waypoint, s.WaypointWhy = w, why
	}
	for _, wl := range b.s.workloads {
		if gw := wl.Labels[LabelGatewayName]; gw != "" && b.s.waypointBy[wl.Namespace+"/"+gw] != nil {
			wl.WaypointWhy = "the pod is waypoint " + wl.Namespace + "/" + gw + ": a waypoint proxy never goes through a waypoint"
			continue // a waypoint proxy never goes through a waypoint
		}
		w, labelled := lookup(wl.Key(), wl.Labels, wl.Namespace)
		why := labelWhy(wl.Labels, "Pod "+wl.Namespace+"/"+wl.Name)
		fromNamespace := false
		if !labelled {
			w, labelled = lookup(nsKey(wl.Namespace), nsLabels(wl.Namespace), wl.Namespace)
			fromNamespace = labelled
			why = labelWhy(nsLabels(wl.Namespace), "Namespace "+wl.Namespace)
		}
		if !labelled {
			why = fmt.Sprintf("no %s label on Pod %s/%s or Namespace %s", LabelUseWaypoint, wl.Namespace, wl.Name, wl.Namespace)
			for _, pw := range b.s.waypoints {
				if pw.ServiceAccount != "" && pw.Selects(wl) {
					w = pw
					why = fmt.Sprintf("per-service-account waypoint %s/%s (%s=%s)", pw.Namespace, pw.Name, AnnotationForServiceAcount, pw.ServiceAccount)
					break
				}
			}
		}
		if w != nil && !w.ServesWorkloads() {
			if !fromNamespace {
				b.problem(wl.Key(), "waypoint %s/%s does not accept workload traffic (%s=%s)", w.Namespace, w.Name, LabelWaypointFor, w.For)
			}
			why += fmt.Sprintf(", but waypoint %s/%s does not accept workload traffic (%s=%s)", w.Namespace, w.Name, LabelWaypointFor, w.For)
			w = nil
		}
		wl.Waypoint, wl.WaypointWhy = w, why
	}
}

// labelWhy says which use-waypoint label on which object decided ("label istio.io/use-waypoint=x on
// Service default/reviews").
func labelWhy(lbls map[string]string, object string) string {
	why := fmt.Sprintf("label %s=%s on %s", LabelUseWaypoint, lbls[LabelUseWaypoint], object)
	if ns := lbls[LabelUseWaypointNamespace]; ns != "" {
		why += fmt.Sprintf(" (%s=%s)", LabelUseWaypointNamespace, ns)
	}
	return why
}

// frontsWaypoint reports whether s is a waypoint's Service: the waypoint controller's (named after its
// Gateway), or any Service Istio's controller labelled gateway.istio.io/managed=istio.io-mesh-controller.
func (b *builder) frontsWaypoint(s *Service) bool {
	return b.s.waypointBy[s.Namespace+"/"+s.Name] != nil || s.Labels[LabelGatewayManaged] == GatewayManagedMesh
}

// perServiceAccountWaypoint returns the per-service-account waypoint in the service's namespace whose
// service account runs at least one of the service's endpoints.
func (b *builder) perServiceAccountWaypoint(s *Service) *Waypoint {
	for _, w := range b.s.waypoints {
		if w.ServiceAccount == "" || w.Namespace != s.Namespace {
			continue
		}
		for _, ep := range s.Endpoints {
			if w.Selects(ep.Workload) {
				return w
			}
		}
	}
	return nil
}

// Waypoints returns every waypoint, sorted by namespace and name.
func (s *Snapshot) Waypoints() []*Waypoint { return s.waypoints }

// Waypoint returns the waypoint namespace/name, or nil.
func (s *Snapshot) Waypoint(namespace, name string) *Waypoint {
	return s.waypointBy[namespace+"/"+name]
}

// WaypointScope is what one waypoint serves: the destination-oriented slice of the mesh it gets config for.
type WaypointScope struct {
	Waypoint *Waypoint
	// Services are bound to the waypoint: they get listener chains, routes, clusters and endpoints.
	Services []*Service
	// Backends are other services that the bound services' routes send (or mirror) to (for example reviews-v1 in an
	// HTTPRoute): they get clusters and endpoints only.
	Backends []*Service
	// Workloads are bound to the waypoint for workload-addressed traffic (direct pod IPs).
	Workloads []*Workload
}

// Scope returns what waypoint w serves. A namespace waypoint serves the services and workloads bound to it;
// a per-service-account waypoint, only those of its service account.
func (s *Snapshot) Scope(w *Waypoint) WaypointScope {
	sc := WaypointScope{Waypoint: w}
	bound := map[*Service]bool{}
	for _, svc := range s.services {
		if svc.Waypoint == w {
			sc.Services = append(sc.Services, svc)
			bound[svc] = true
		}
	}
	backends := map[*Service]bool{}
	for _, svc := range sc.Services {
		for _, p := range svc.Ports {
			for _, r := range s.RoutesFor(svc, p.Port) {
				for _, d := range r.Destinations {
					if !bound[d.Service] {
						backends[d.Service] = true
					}
				}
				for _, m := range r.Mirrors {
					if !bound[m.Destination.Service] {
						backends[m.Destination.Service] = true
					}
				}
			}
			if tr := s.TCPRouteFor(svc, p.Port); tr != nil {
				for _, be := range tr.Backends {
					if be.Service != nil && !bound[be.Service] {
						backends[be.Service] = true
					}
				}
			}
		}
	}
	for svc := range backends {
		sc.Backends = append(sc.Backends, svc)
	}
	sort.Slice(sc.Backends, func(i, j int) bool { return sc.Backends[i].FQDN < sc.Backends[j].FQDN })
	for _, wl := range s.workloads {
		if wl.Waypoint == w {
			sc.Workloads = append(sc.Workloads, wl)
		}
	}
	return sc
}

// Endpoints returns the endpoints of a service port that this waypoint may send to.
func (sc WaypointScope) Endpoints(svc *Service, port uint32) []Endpoint {
	var out []Endpoint
	for _, ep := range svc.Endpoints {
		if ep.ServicePort == port && (sc.Waypoint.ServiceAccount == "" || sc.Waypoint.Selects(ep.Workload)) {
			out = append(out, ep)
		}
	}
	return out
}
