package kube

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"

	analysisv1alpha1 "istio.io/api/analysis/v1alpha1"
	istiometav1alpha1 "istio.io/api/meta/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
)

// ControllerName is the Gateway API controller name meshlab writes status as, and the controllerName of the
// istio-waypoint GatewayClass it manages.
const ControllerName = "meshlab.dev/waypoint-controller"

// GatewayControllerName is the controllerName of the istio GatewayClass (Istio's), and the name meshlab
// writes HTTPRoute parent status as for ingress Gateways.
const GatewayControllerName = "istio.io/gateway-controller"

// Component is the event source name.
const Component = "istiod"

// Condition reasons meshlab writes on Istio objects, and the validation message type it reports (Istio
// reports analyzer codes such as IST0101; meshlab has one code for "the control plane could not use this").
const (
	ReasonInvalid         = "Invalid"
	ValidationMessageName = "InvalidConfig"
	ValidationMessageCode = "MESHLAB0001"
)

// StatusWriter reports a snapshot's problems on the objects they name:
//
//   - HTTPRoutes, GRPCRoutes and TCPRoutes: a parent status per parentRef (Service, waypoint or ingress Gateway) with Accepted, and
//     ResolvedRefs when a backend is missing;
//   - waypoint and ingress Gateways: Accepted (Programmed and listeners are the gateway controller's);
//   - VirtualServices, DestinationRules, AuthorizationPolicies, RequestAuthentications: a Warning event, and
//     in status an Accepted condition plus a validationMessages entry, as Istio's analysis does;
//   - anything else (Services, Pods, Namespaces): a Warning event.
//
// Status is compared with what the object already carries and written only when it differs, so reporting
// the same snapshot twice writes nothing. Writes happen on the writer's own goroutine (Run): Report only
// hands the snapshot over, so the push pipeline never waits for the API server.
type StatusWriter struct {
	c        *Clients
	store    *ingest.Store
	recorder record.EventRecorder
	logf     func(string, ...any)

	next chan *model.Snapshot
	mu   sync.Mutex
	// evented remembers the problems last announced per object, so an event is sent once per change.
	evented map[ingest.Key]string
	writes  int
}

// NewStatusWriter returns a writer that reads objects from store (the informers' view) and writes through c.
func NewStatusWriter(c *Clients, store *ingest.Store, logf func(string, ...any)) *StatusWriter {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.Kube.CoreV1().Events("")})
	return &StatusWriter{
		c: c, store: store, logf: logf,
		recorder: b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Component}),
		next:     make(chan *model.Snapshot, 1),
		evented:  map[ingest.Key]string{},
	}
}

// Report queues snap for reporting; a newer snapshot replaces one not yet reported.
func (w *StatusWriter) Report(snap *model.Snapshot) {
	for {
		select {
		case w.next <- snap:
			return
		default:
		}
		select {
		case <-w.next:
		default:
		}
	}
}

// Run reports queued snapshots until ctx ends.
func (w *StatusWriter) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-w.next:
			w.Sync(ctx, s)
		}
	}
}

// Writes returns how many status updates the writer made.
func (w *StatusWriter) Writes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes
}

// Sync reports snap's problems now.
func (w *StatusWriter) Sync(ctx context.Context, snap *model.Snapshot) {
	problems := map[ingest.Key][]string{}
	for _, p := range snap.Problems {
		problems[p.Object] = append(problems[p.Object], p.Message)
	}
	w.events(problems)
	for _, o := range w.store.List(ingest.KindHTTPRoute) {
		w.httpRoute(ctx, o.(*gwv1.HTTPRoute), problems)
	}
	for _, o := range w.store.List(ingest.KindGRPCRoute) {
		w.grpcRoute(ctx, o.(*gwv1.GRPCRoute), problems)
	}
	for _, o := range w.store.List(ingest.KindTCPRoute) {
		w.tcpRoute(ctx, o.(*gwv1.TCPRoute), problems)
	}
	for _, o := range w.store.List(ingest.KindGateway) {
		w.gateway(ctx, o.(*gwv1.Gateway), problems)
	}
	for _, kind := range []ingest.Kind{ingest.KindVirtualService, ingest.KindDestinationRule, ingest.KindAuthorizationPolicy, ingest.KindRequestAuthentication} {
		for _, o := range w.store.List(kind) {
			w.istio(ctx, kind, o, problems)
		}
	}
}

func (w *StatusWriter) events(problems map[ingest.Key][]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, msgs := range problems {
		text := strings.Join(msgs, "; ")
		if w.evented[key] == text {
			continue
		}
		w.evented[key] = text
		obj, ok := w.store.Get(key)
		if !ok {
			continue
		}
		w.recorder.Event(reference(key, obj), corev1.EventTypeWarning, ReasonInvalid, text)
	}
	for key := range w.evented {
		if _, ok := problems[key]; !ok {
			delete(w.evented, key)
		}
	}
}

// reference builds the event's object reference; informer objects carry no TypeMeta.
func reference(key ingest.Key, obj ingest.Object) *corev1.ObjectReference {
	apiVersion := "v1"
	switch key.Kind {
	case ingest.KindEndpointSlice:
		apiVersion = "discovery.k8s.io/v1"
	case ingest.KindGateway, ingest.KindGatewayClass, ingest.KindHTTPRoute, ingest.KindGRPCRoute, ingest.KindTCPRoute:
		apiVersion = "gateway.networking.k8s.io/v1"
	case ingest.KindVirtualService, ingest.KindDestinationRule:
		apiVersion = "networking.istio.io/v1"
	case ingest.KindAuthorizationPolicy, ingest.KindRequestAuthentication, ingest.KindPeerAuthentication:
		apiVersion = "security.istio.io/v1"
	}
	return &corev1.ObjectReference{APIVersion: apiVersion, Kind: string(key.Kind), Namespace: key.Namespace,
		Name: key.Name, UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion()}
}

func (w *StatusWriter) wrote(kind ingest.Kind, ns, name string, err error) {
	w.mu.Lock()
	if err == nil {
		w.writes++
	}
	w.mu.Unlock()
	if err != nil {
		w.logf("kube: writing status of %s %s/%s: %v", kind, ns, name, err)
	}
}

// conditionsEqual compares conditions ignoring transition times.
func conditionsEqual(a, b []metav1.Condition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message || x.ObservedGeneration != y.ObservedGeneration {
			return false
		}
	}
	return true
}

// parentProblems keeps the route problems that concern parent ref: every problem not about a parentRef,
// and those about this one (the model writes them as "parentRef KIND NAMESPACE/NAME...", and "... port N"
// when about one port of it).
func parentProblems(msgs []string, ref gwv1.ParentReference, ns string) []string {
	kind := "Gateway"
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	self := "parentRef " + kind + " " + ns + "/" + string(ref.Name)
	var out []string
	for _, m := range msgs {
		// A problem about one port of the parent ("... port N ...") concerns a ref to that port or to all.
		if rest, ok := strings.CutPrefix(m, self+" port "); ok && ref.Port != nil {
			if n, _, _ := strings.Cut(rest, " "); n != strconv.Itoa(int(*ref.Port)) {
				continue
			}
		}
		if !strings.HasPrefix(m, "parentRef ") || strings.HasPrefix(m, self+" ") || strings.HasPrefix(m, self+":") {
			out = append(out, m)
		}
	}
	return out
}

// routeConditions are the conditions of one HTTPRoute parent given the route's problems.
func routeConditions(gen int64, msgs []string) []metav1.Condition {
	accepted := metav1.Condition{Type: string(gwv1.RouteConditionAccepted), Status: metav1.ConditionTrue,
		Reason: string(gwv1.RouteReasonAccepted), Message: "Route was valid", ObservedGeneration: gen}
	resolved := metav1.Condition{Type: string(gwv1.RouteConditionResolvedRefs), Status: metav1.ConditionTrue,
		Reason: string(gwv1.RouteReasonResolvedRefs), Message: "All references resolved", ObservedGeneration: gen}
	if len(msgs) > 0 {
		text := strings.Join(msgs, "; ")
		accepted.Status, accepted.Message = metav1.ConditionFalse, text
		accepted.Reason = string(gwv1.RouteReasonUnsupportedValue)
		if strings.Contains(text, "parentRef") {
			accepted.Reason = string(gwv1.RouteReasonNoMatchingParent)
		}
		if strings.Contains(text, "backendRef") {
			resolved.Status, resolved.Reason, resolved.Message = metav1.ConditionFalse, string(gwv1.RouteReasonBackendNotFound), text
		}
	}
	return []metav1.Condition{accepted, resolved}
}

// parentController returns the controller name meshlab answers for a route parent as: ControllerName for
// a Service (a mesh route) or a waypoint Gateway, GatewayControllerName for an ingress Gateway, "" for a
// parent that is not meshlab's.
func (w *StatusWriter) parentController(ref gwv1.ParentReference, ns string) string {
	kind := "Gateway"
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	if kind == "Service" && (ref.Group == nil || *ref.Group == "" || *ref.Group == "core") {
		return ControllerName
	}
	if kind != "Gateway" {
		return ""
	}
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	o, ok := w.store.Get(ingest.Key{Kind: ingest.KindGateway, Namespace: ns, Name: string(ref.Name)})
	if !ok {
		return ""
	}
	switch string(o.(*gwv1.Gateway).Spec.GatewayClassName) {
	case model.WaypointGatewayClass:
		return ControllerName
	case model.IngressGatewayClass:
		return GatewayControllerName
	}
	return ""
}

// meshlabController reports whether a route parent status was written by meshlab.
func meshlabController(name gwv1.GatewayController) bool {
	return name == ControllerName || name == GatewayControllerName
}

// routeParents is the parent statuses a route should carry: other controllers' kept, meshlab's one per
// parentRef it answers for (Accepted and ResolvedRefs from the route's problems), transition times of
// unchanged conditions kept.
func (w *StatusWriter) routeParents(key ingest.Key, refs []gwv1.ParentReference, cur []gwv1.RouteParentStatus, gen int64, problems map[ingest.Key][]string) []gwv1.RouteParentStatus {
	msgs := problems[key]
	var out []gwv1.RouteParentStatus
	for _, ps := range cur {
		if !meshlabController(ps.ControllerName) {
			out = append(out, ps) // another controller's
		}
	}
	for _, ref := range refs {
		controller := gwv1.GatewayController(w.parentController(ref, key.Namespace))
		if controller == "" {
			continue
		}
		conds := routeConditions(gen, parentProblems(msgs, ref, key.Namespace))
		for _, ps := range cur { // keep transition times of unchanged conditions
			if ps.ControllerName == controller && reflect.DeepEqual(ps.ParentRef, ref) {
				for i := range conds {
					if c := meta.FindStatusCondition(ps.Conditions, conds[i].Type); c != nil && c.Status == conds[i].Status {
						conds[i].LastTransitionTime = c.LastTransitionTime
					}
				}
			}
		}
		for i := range conds {
			if conds[i].LastTransitionTime.IsZero() {
				conds[i].LastTransitionTime = metav1.Now()
			}
		}
		out = append(out, gwv1.RouteParentStatus{ParentRef: ref, ControllerName: controller, Conditions: conds})
	}
	return out
}

func sameParents(a, b []gwv1.RouteParentStatus) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ControllerName != b[i].ControllerName || !reflect.DeepEqual(a[i].ParentRef, b[i].ParentRef) || !conditionsEqual(a[i].Conditions, b[i].Conditions) {
			return false
		}
	}
	return true
}

func (w *StatusWriter) httpRoute(ctx context.Context, rt *gwv1.HTTPRoute, problems map[ingest.Key][]string) {
	key := ingest.Key{Kind: ingest.KindHTTPRoute, Namespace: rt.Namespace, Name: rt.Name}
	writeRouteStatus(ctx, w, key, problems, rt, w.c.Gateway.GatewayV1().HTTPRoutes(rt.Namespace),
		func(r *gwv1.HTTPRoute) ([]gwv1.ParentReference, *[]gwv1.RouteParentStatus) {
			return r.Spec.ParentRefs, &r.Status.Parents
		})
}

func (w *StatusWriter) grpcRoute(ctx context.Context, rt *gwv1.GRPCRoute, problems map[ingest.Key][]string) {
	key := ingest.Key{Kind: ingest.KindGRPCRoute, Namespace: rt.Namespace, Name: rt.Name}
	writeRouteStatus(ctx, w, key, problems, rt, w.c.Gateway.GatewayV1().GRPCRoutes(rt.Namespace),
		func(r *gwv1.GRPCRoute) ([]gwv1.ParentReference, *[]gwv1.RouteParentStatus) {
			return r.Spec.ParentRefs, &r.Status.Parents
		})
}

func (w *StatusWriter) tcpRoute(ctx context.Context, rt *gwv1.TCPRoute, problems map[ingest.Key][]string) {
	key := ingest.Key{Kind: ingest.KindTCPRoute, Namespace: rt.Namespace, Name: rt.Name}
	writeRouteStatus(ctx, w, key, problems, rt, w.c.Gateway.GatewayV1().TCPRoutes(rt.Namespace),
		func(r *gwv1.TCPRoute) ([]gwv1.ParentReference, *[]gwv1.RouteParentStatus) {
			return r.Spec.ParentRefs, &r.Status.Parents
		})
}

// routeClient is what the status writer needs of a route kind's typed client.
type routeClient[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	UpdateStatus(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

// writeRouteStatus writes a route's parent statuses (routeParents) when they differ from the informer's
// copy, re-reading the object on conflict; parts gives the route's parentRefs and its status' parents.
func writeRouteStatus[T metav1.Object](ctx context.Context, w *StatusWriter, key ingest.Key, problems map[ingest.Key][]string,
	rt T, client routeClient[T], parts func(T) ([]gwv1.ParentReference, *[]gwv1.RouteParentStatus)) {
	refs, parents := parts(rt)
	if sameParents(*parents, w.routeParents(key, refs, *parents, rt.GetGeneration(), problems)) {
		return
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := client.Get(ctx, key.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		refs, parents := parts(cur)
		want := w.routeParents(key, refs, *parents, cur.GetGeneration(), problems)
		if sameParents(*parents, want) {
			return nil
		}
		*parents = want
		_, err = client.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	w.wrote(key.Kind, key.Namespace, key.Name, err)
}

// gateway writes Accepted on waypoint Gateways: False with the problems, True otherwise.
func (w *StatusWriter) gateway(ctx context.Context, gw *gwv1.Gateway, problems map[ingest.Key][]string) {
	if c := string(gw.Spec.GatewayClassName); c != model.WaypointGatewayClass && c != model.IngressGatewayClass {
		return
	}
	msgs := problems[ingest.Key{Kind: ingest.KindGateway, Namespace: gw.Namespace, Name: gw.Name}]
	want := func(gen int64) metav1.Condition {
		c := metav1.Condition{Type: string(gwv1.GatewayConditionAccepted), Status: metav1.ConditionTrue,
			Reason: string(gwv1.GatewayReasonAccepted), Message: "Resource accepted", ObservedGeneration: gen}
		if len(msgs) > 0 {
			c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonInvalid, strings.Join(msgs, "; ")
		}
		return c
	}
	matches := func(conds []metav1.Condition, c metav1.Condition) bool {
		cur := meta.FindStatusCondition(conds, c.Type)
		return cur != nil && conditionsEqual([]metav1.Condition{*cur}, []metav1.Condition{c})
	}
	if matches(gw.Status.Conditions, want(gw.Generation)) {
		return
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := w.c.Gateway.GatewayV1().Gateways(gw.Namespace).Get(ctx, gw.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := want(cur.Generation)
		if matches(cur.Status.Conditions, c) {
			return nil
		}
		meta.SetStatusCondition(&cur.Status.Conditions, c)
		_, err = w.c.Gateway.GatewayV1().Gateways(gw.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	w.wrote(ingest.KindGateway, gw.Namespace, gw.Name, err)
}

// istioStatus is the status meshlab wants on an Istio object, or nil to leave it alone (a valid object that
// never had a meshlab condition gets no status write at all).
func istioStatus(cur *istiometav1alpha1.IstioStatus, gen int64, msgs []string) *istiometav1alpha1.IstioStatus {
	had := false
	var keep []*istiometav1alpha1.IstioCondition
	for _, c := range cur.GetConditions() {
		if c.GetType() == "Accepted" {
			had = true
			continue
		}
		keep = append(keep, c)
	}
	if len(msgs) == 0 && !had {
		return nil
	}
	out := &istiometav1alpha1.IstioStatus{Conditions: keep, ObservedGeneration: gen}
	for _, m := range cur.GetValidationMessages() {
		if m.GetType().GetCode() != ValidationMessageCode {
			out.ValidationMessages = append(out.ValidationMessages, m)
		}
	}
	cond := &istiometav1alpha1.IstioCondition{Type: "Accepted", Status: "True", Reason: "Accepted"}
	if len(msgs) > 0 {
		cond.Status, cond.Reason, cond.Message = "False", ReasonInvalid, strings.Join(msgs, "; ")
		out.ValidationMessages = append(out.ValidationMessages, &analysisv1alpha1.AnalysisMessageBase{
			Type:  &analysisv1alpha1.AnalysisMessageBase_Type{Name: ValidationMessageName, Code: ValidationMessageCode},
			Level: analysisv1alpha1.AnalysisMessageBase_ERROR,
		})
	}
	out.Conditions = append(out.Conditions, cond)
	sort.SliceStable(out.Conditions, func(i, j int) bool { return out.Conditions[i].GetType() < out.Conditions[j].GetType() })
	return out
}

// setIstioStatus copies src's fields into dst (protobuf messages must not be copied by value).
func setIstioStatus(dst, src *istiometav1alpha1.IstioStatus) {
	dst.Conditions, dst.ValidationMessages, dst.ObservedGeneration = src.Conditions, src.ValidationMessages, src.ObservedGeneration
}

func istioStatusEqual(a, b *istiometav1alpha1.IstioStatus) bool {
	if a.GetObservedGeneration() != b.GetObservedGeneration() || len(a.GetConditions()) != len(b.GetConditions()) ||
		len(a.GetValidationMessages()) != len(b.GetValidationMessages()) {
		return false
	}
	for i, c := range a.GetConditions() {
		d := b.GetConditions()[i]
		if c.GetType() != d.GetType() || c.GetStatus() != d.GetStatus() || c.GetReason() != d.GetReason() || c.GetMessage() != d.GetMessage() {
			return false
		}
	}
	for i, m := range a.GetValidationMessages() {
		n := b.GetValidationMessages()[i]
		if m.GetType().GetCode() != n.GetType().GetCode() || m.GetLevel() != n.GetLevel() {
			return false
		}
	}
	return true
}

func (w *StatusWriter) istio(ctx context.Context, kind ingest.Kind, obj ingest.Object, problems map[ingest.Key][]string) {
	key := ingest.Key{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
	msgs := problems[key]
	var cur *istiometav1alpha1.IstioStatus
	switch o := obj.(type) {
	case *networkingv1.VirtualService:
		cur = &o.Status
	case *networkingv1.DestinationRule:
		cur = &o.Status
	case *securityv1.AuthorizationPolicy:
		cur = &o.Status
	case *securityv1.RequestAuthentication:
		cur = &o.Status
	default:
		return
	}
	want := istioStatus(cur, obj.GetGeneration(), msgs)
	if want == nil || istioStatusEqual(cur, want) {
		return
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ns, name := obj.GetNamespace(), obj.GetName()
		opts := metav1.UpdateOptions{}
		switch kind {
		case ingest.KindVirtualService:
			o, err := w.c.Istio.NetworkingV1().VirtualServices(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if want = istioStatus(&o.Status, o.Generation, msgs); want == nil || istioStatusEqual(&o.Status, want) {
				return nil
			}
			setIstioStatus(&o.Status, want)
			_, err = w.c.Istio.NetworkingV1().VirtualServices(ns).UpdateStatus(ctx, o, opts)
			return err
		case ingest.KindDestinationRule:
			o, err := w.c.Istio.NetworkingV1().DestinationRules(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if want = istioStatus(&o.Status, o.Generation, msgs); want == nil || istioStatusEqual(&o.Status, want) {
				return nil
			}
			setIstioStatus(&o.Status, want)
			_, err = w.c.Istio.NetworkingV1().DestinationRules(ns).UpdateStatus(ctx, o, opts)
			return err
		case ingest.KindAuthorizationPolicy:
			o, err := w.c.Istio.SecurityV1().AuthorizationPolicies(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if want = istioStatus(&o.Status, o.Generation, msgs); want == nil || istioStatusEqual(&o.Status, want) {
				return nil
			}
			setIstioStatus(&o.Status, want)
			_, err = w.c.Istio.SecurityV1().AuthorizationPolicies(ns).UpdateStatus(ctx, o, opts)
			return err
		case ingest.KindRequestAuthentication:
			o, err := w.c.Istio.SecurityV1().RequestAuthentications(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if want = istioStatus(&o.Status, o.Generation, msgs); want == nil || istioStatusEqual(&o.Status, want) {
				return nil
			}
			setIstioStatus(&o.Status, want)
			_, err = w.c.Istio.SecurityV1().RequestAuthentications(ns).UpdateStatus(ctx, o, opts)
			return err
		}
		return fmt.Errorf("no status for %s", kind)
	})
	w.wrote(kind, obj.GetNamespace(), obj.GetName(), err)
}
