package xdsgen

import (
	"maps"
	"reflect"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/xds"
)

// ConfigKey is the xDS config key of a store object. EndpointSlices are keyed by the service they belong
// to, so that a waypoint can depend on "the endpoints of reviews".
func ConfigKey(key ingest.Key, obj ingest.Object) xds.ConfigKey {
	if key.Kind == ingest.KindEndpointSlice && obj != nil {
		if svc := obj.GetLabels()[model.LabelServiceName]; svc != "" {
			return xds.ConfigKey{Kind: string(key.Kind), Namespace: key.Namespace, Name: svc}
		}
	}
	return xds.ConfigKey{Kind: string(key.Kind), Namespace: key.Namespace, Name: key.Name}
}

// PushRequestFor turns a store event into the push it needs, or nil when the change cannot alter any
// proxy's config (a status-only update, a pod without an IP yet).
func (g *Generator) PushRequestFor(ev ingest.Event) *xds.PushRequest {
	obj := ev.New
	if obj == nil {
		obj = ev.Old
	}
	key := ConfigKey(ev.Key, obj)
	if ev.Type == ingest.Updated && !relevantUpdate(ev.Old, ev.New) {
		return nil
	}
	req := g.pushRequestFor(ev, key)
	// Invalidate now, not only when the server clears at push time: the store has changed, so anything
	// built from an older snapshot is stale, and a server built without xds.WithCache must not serve it.
	if req != nil {
		g.cache.Clear(req.ConfigsUpdated)
	}
	return req
}

func (g *Generator) pushRequestFor(ev ingest.Event, key xds.ConfigKey) *xds.PushRequest {
	switch ev.Key.Kind {
	case ingest.KindPod:
		oldPod, _ := ev.Old.(*corev1.Pod)
		newPod, _ := ev.New.(*corev1.Pod)
		if !hasIP(oldPod) && !hasIP(newPod) {
			return nil // not in the model before or after
		}
		// A pod that just got (or lost) its IP enters (or leaves) the model as a workload: its own
		// sidecar, if any, can only be generated from then on, so that is a full push.
		if ev.Type == ingest.Updated && hasIP(oldPod) && hasIP(newPod) && g.endpointOnlyPod(oldPod, newPod) {
			return g.endpointPush(ev.Version, key)
		}
	case ingest.KindEndpointSlice:
		oldES, _ := ev.Old.(*discoveryv1.EndpointSlice)
		newES, _ := ev.New.(*discoveryv1.EndpointSlice)
		// A pod joining or leaving a service changes more than endpoints: its sidecar's inbound
		// listener and clusters are built from the services it backs. Only readiness flips and
		// changes that keep the set of addresses take the endpoint fast path.
		if !g.perServiceAccountWaypointIn(ev.Key.Namespace) && sameAddresses(oldES, newES) {
			return g.endpointPush(ev.Version, key)
		}
	}
	return xds.NewPushRequest(true, "config", key)
}

func (g *Generator) endpointPush(version uint64, key xds.ConfigKey) *xds.PushRequest {
	g.mu.Lock()
	if version > g.epsDirty {
		g.epsDirty = version
	}
	g.mu.Unlock()
	return xds.NewPushRequest(false, "endpoint", key)
}

// sameAddresses reports whether two versions of an EndpointSlice hold the same addresses and ports.
func sameAddresses(o, n *discoveryv1.EndpointSlice) bool {
	if o == nil || n == nil {
		return false
	}
	addrs := func(es *discoveryv1.EndpointSlice) []string {
		var out []string
		for _, e := range es.Endpoints {
			out = append(out, e.Addresses...)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(addrs(o), addrs(n)) && reflect.DeepEqual(o.Ports, n.Ports)
}

func hasIP(p *corev1.Pod) bool { return p != nil && (p.Status.PodIP != "" || len(p.Status.PodIPs) > 0) }

// endpointOnlyPod reports whether a pod update changes only its addresses or readiness, and nothing the
// model derives config from. Listeners depend on pod IPs only for waypoints that serve workload-addressed
// traffic (their direct chains), so a namespace with such a waypoint always takes the full path; so does a
// waypoint's own pod.
func (g *Generator) endpointOnlyPod(o, n *corev1.Pod) bool {
	if o == nil || n == nil {
		return false
	}
	if !maps.Equal(o.Labels, n.Labels) || o.Spec.ServiceAccountName != n.Spec.ServiceAccountName ||
		o.Spec.NodeName != n.Spec.NodeName || o.Spec.HostNetwork != n.Spec.HostNetwork ||
		!reflect.DeepEqual(containerPorts(o), containerPorts(n)) || n.Labels[model.LabelGatewayName] != "" {
		return false
	}
	g.mu.Lock()
	s := g.cur
	g.mu.Unlock()
	if s == nil {
		return false
	}
	for _, w := range s.Waypoints() {
		if w.Namespace == n.Namespace && w.ServesWorkloads() {
			return false
		}
	}
	return true
}

func containerPorts(p *corev1.Pod) [][]corev1.ContainerPort {
	var out [][]corev1.ContainerPort
	for _, c := range p.Spec.Containers {
		out = append(out, c.Ports)
	}
	return out
}

// perServiceAccountWaypointIn reports whether a per-service-account waypoint lives in ns: such waypoints
// claim services by who runs their endpoints, so endpoint changes there can change bindings.
func (g *Generator) perServiceAccountWaypointIn(ns string) bool {
	g.mu.Lock()
	s := g.cur
	g.mu.Unlock()
	if s == nil {
		return true
	}
	for _, w := range s.Waypoints() {
		if w.Namespace == ns && w.ServiceAccount != "" {
			return true
		}
	}
	return false
}

// relevantUpdate reports whether an update can change what the model builds. Status-only updates of
// config objects (including the ones the control plane writes itself) are not: they would otherwise cause
// a full push per status write.
func relevantUpdate(o, n ingest.Object) bool {
	if o == nil || n == nil {
		return true
	}
	if !maps.Equal(o.GetLabels(), n.GetLabels()) || !maps.Equal(o.GetAnnotations(), n.GetAnnotations()) {
		return true
	}
	switch n := n.(type) {
	case *corev1.Namespace:
		return false // the model reads namespace labels only
	case *corev1.Service:
		return !reflect.DeepEqual(o.(*corev1.Service).Spec, n.Spec)
	case *corev1.ServiceAccount:
		return false
	case *corev1.Pod:
		op := o.(*corev1.Pod)
		return !reflect.DeepEqual(op.Spec, n.Spec) || !reflect.DeepEqual(op.Status.PodIPs, n.Status.PodIPs) ||
			op.Status.PodIP != n.Status.PodIP || op.Status.Phase != n.Status.Phase || ready(op) != ready(n)
	case *discoveryv1.EndpointSlice:
		os := o.(*discoveryv1.EndpointSlice)
		return !reflect.DeepEqual(os.Endpoints, n.Endpoints) || !reflect.DeepEqual(os.Ports, n.Ports)
	case *gwv1.Gateway:
		og := o.(*gwv1.Gateway)
		return og.Generation != n.Generation || n.Generation == 0 || !reflect.DeepEqual(og.Status.Addresses, n.Status.Addresses)
	}
	// Config kinds with a status subresource: the generation moves exactly when the spec does.
	og, ng := o.(metav1.Object).GetGeneration(), n.(metav1.Object).GetGeneration()
	return og != ng || ng == 0
}

func ready(p *corev1.Pod) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status
		}
	}
	return ""
}
