package diff

import (
	"sort"

	"github.com/meshlab/meshlab/controlplane/inject"
	"github.com/meshlab/meshlab/controlplane/model"
)

// Proxies lists every proxy of a snapshot that receives config, sorted by ID: each waypoint and ingress
// gateway (a Gateway of class istio-waypoint or istio), each sidecar, and the ztunnel of each node that
// runs a pod.
func Proxies(s *model.Snapshot) []model.Proxy {
	var out []model.Proxy
	for _, w := range s.Waypoints() {
		out = append(out, model.Proxy{Kind: model.KindWaypoint, Namespace: w.Namespace, Name: w.Name})
	}
	for _, g := range s.IngressGateways() {
		out = append(out, model.Proxy{Kind: model.KindGateway, Namespace: g.Namespace, Name: g.Name})
	}
	for _, wl := range s.Workloads() {
		if HasSidecar(s, wl) {
			out = append(out, model.Proxy{Kind: model.KindSidecar, Namespace: wl.Namespace, Name: wl.Name})
		}
	}
	for _, n := range s.Nodes() {
		out = append(out, model.Proxy{Kind: model.KindZtunnel, Name: n, Node: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out
}

// HasSidecar reports whether a pod runs a sidecar: it was injected already (annotation
// sidecar.istio.io/status, or an istio-proxy container beside others in a pod that is not a gateway's or
// waypoint's),
// or the injection webhook would inject it (inject.Decide, Istio's rules on namespace and pod labels).
func HasSidecar(s *model.Snapshot, wl *model.Workload) bool {
	if wl.Labels[model.LabelGatewayName] != "" || wl.Object == nil {
		return false
	}
	pod := wl.Object
	if _, ok := pod.Annotations[inject.AnnotationStatus]; ok {
		return true
	}
	// An istio-proxy container next to the app's. Alone it is a proxy pod itself: ztunnel's container
	// has that name too, as in Istio.
	for _, c := range pod.Spec.Containers {
		if c.Name == "istio-proxy" && len(pod.Spec.Containers) > 1 {
			return true
		}
	}
	var nsLabels map[string]string
	if ns := s.Namespace(wl.Namespace); ns != nil {
		nsLabels = ns.Labels
	}
	return inject.Decide(inject.Input{
		Namespace: wl.Namespace, NamespaceLabels: nsLabels,
		PodLabels: pod.Labels, PodAnnotations: pod.Annotations, HostNetwork: pod.Spec.HostNetwork,
	}).Injected
}
