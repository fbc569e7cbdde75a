// Package ingest is where configuration enters the control plane: a store of typed Kubernetes, Gateway API
// and Istio objects, fed either by the offline YAML loader (meshlab render) or by informers (the live control
// plane). Every change produces an Event naming what changed, so later stages can work out what to rebuild.
package ingest

import (
	"fmt"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Object is any Kubernetes object the store holds. Objects are shared, never copied: once added, a caller
// must not mutate one (informers already follow this rule).
type Object interface {
	runtime.Object
	metav1.Object
}

// Kind names an object type the store understands.
type Kind string

// The kinds the store holds.
const (
	KindNamespace             Kind = "Namespace"
	KindService               Kind = "Service"
	KindPod                   Kind = "Pod"
	KindServiceAccount        Kind = "ServiceAccount"
	KindEndpointSlice         Kind = "EndpointSlice"
	KindGatewayClass          Kind = "GatewayClass"
	KindGateway               Kind = "Gateway"
	KindHTTPRoute             Kind = "HTTPRoute"
	KindGRPCRoute             Kind = "GRPCRoute"
	KindTCPRoute              Kind = "TCPRoute"
	KindVirtualService        Kind = "VirtualService"
	KindDestinationRule       Kind = "DestinationRule"
	KindAuthorizationPolicy   Kind = "AuthorizationPolicy"
	KindRequestAuthentication Kind = "RequestAuthentication"
	KindPeerAuthentication    Kind = "PeerAuthentication"
)

// Kinds lists every kind in a fixed order.
var Kinds = []Kind{KindNamespace, KindService, KindPod, KindServiceAccount, KindEndpointSlice, KindGatewayClass,
	KindGateway, KindHTTPRoute, KindGRPCRoute, KindTCPRoute, KindVirtualService, KindDestinationRule, KindAuthorizationPolicy, KindRequestAuthentication,
	KindPeerAuthentication}

// Namespaced reports whether objects of kind k live in a namespace.
func (k Kind) Namespaced() bool { return k != KindNamespace && k != KindGatewayClass }

// KindOf returns the store kind of obj, or an error for a type the store does not hold.
func KindOf(obj Object) (Kind, error) {
	switch obj.(type) {
	case *corev1.Namespace:
		return KindNamespace, nil
	case *corev1.Service:
		return KindService, nil
	case *corev1.Pod:
		return KindPod, nil
	case *corev1.ServiceAccount:
		return KindServiceAccount, nil
	case *discoveryv1.EndpointSlice:
		return KindEndpointSlice, nil
	case *gwv1.GatewayClass:
		return KindGatewayClass, nil
	case *gwv1.Gateway:
		return KindGateway, nil
	case *gwv1.HTTPRoute:
		return KindHTTPRoute, nil
	case *gwv1.GRPCRoute:
		return KindGRPCRoute, nil
	case *gwv1.TCPRoute:
		return KindTCPRoute, nil
	case *networkingv1.VirtualService:
		return KindVirtualService, nil
	case *networkingv1.DestinationRule:
		return KindDestinationRule, nil
	case *securityv1.AuthorizationPolicy:
		return KindAuthorizationPolicy, nil
	case *securityv1.PeerAuthentication:
		return KindPeerAuthentication, nil
	case *securityv1.RequestAuthentication:
		return KindRequestAuthentication, nil
	}
	return "", fmt.Errorf("unsupported object type %T", obj)
}

// Key identifies one object.
type Key struct {
	Kind      Kind
	Namespace string // empty for cluster-scoped kinds
	Name      string
}

func (k Key) String() string {
	if k.Namespace == "" {
		return string(k.Kind) + "/" + k.Name
	}
	return string(k.Kind) + "/" + k.Namespace + "/" + k.Name
}

// KeyOf returns the key of obj.
func KeyOf(obj Object) (Key, error) {
	kind, err := KindOf(obj)
	if err != nil {
		return Key{}, err
	}
	return Key{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}, nil
}

// EventType says what happened to an object.
type EventType string

// Event types.
const (
	Added   EventType = "Added"
	Updated EventType = "Updated"
	Deleted EventType = "Deleted"
)

// Event describes one change. Old is nil for Added, New is nil for Deleted.
type Event struct {
	Type     EventType
	Key      Key
	Old, New Object
	Version  uint64 // the store version after this change
}

// Handler receives change events. It runs synchronously after the change, outside the store's lock, so it
// may read the store; it must not block for long.
type Handler func(Event)

// Store holds the current objects by key. It is safe for concurrent use.
type Store struct {
	mu       sync.RWMutex
	objects  map[Key]Object
	version  uint64
	handlers []Handler
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{objects: map[Key]Object{}}
}

// OnChange registers h for every later change.
func (s *Store) OnChange(h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers = append(s.handlers, h)
}

// Add stores obj, replacing any object with the same key (informers may replay adds after a resync).
func (s *Store) Add(obj Object) (Event, error) { return s.put(obj) }

// Update stores obj; an update of an object the store has not seen counts as an add.
func (s *Store) Update(obj Object) (Event, error) { return s.put(obj) }

func (s *Store) put(obj Object) (Event, error) {
	key, err := KeyOf(obj)
	if err != nil {
		return Event{}, err
	}
	if key.Name == "" {
		return Event{}, fmt.Errorf("%s has no name", key.Kind)
	}
	if key.Kind.Namespaced() && key.Namespace == "" {
		return Event{}, fmt.Errorf("%s %s has no namespace", key.Kind, key.Name)
	}
	s.mu.Lock()
	old, existed := s.objects[key]
	s.objects[key] = obj
	s.version++
	ev := Event{Type: Added, Key: key, New: obj, Version: s.version}
	if existed {
		ev.Type, ev.Old = Updated, old
	}
	handlers := s.handlers
	s.mu.Unlock()
	for _, h := range handlers {
		h(ev)
	}
	return ev, nil
}

// Delete removes the object with key; ok is false when there was none (and no event is sent).
func (s *Store) Delete(key Key) (ev Event, ok bool) {
	s.mu.Lock()
	old, existed := s.objects[key]
	if !existed {
		s.mu.Unlock()
		return Event{}, false
	}
	delete(s.objects, key)
	s.version++
	ev = Event{Type: Deleted, Key: key, Old: old, Version: s.version}
	handlers := s.handlers
	s.mu.Unlock()
	for _, h := range handlers {
		h(ev)
	}
	return ev, true
}

// Get returns the object with key.
func (s *Store) Get(key Key) (Object, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	obj, ok := s.objects[key]
	return obj, ok
}

// Version counts changes; it increases with every Add, Update and Delete.
func (s *Store) Version() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version
}

// Len returns the number of objects held.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.objects)
}

// List returns the objects of one kind sorted by namespace and name.
func (s *Store) List(kind Kind) []Object {
	s.mu.RLock()
	var out []Object
	for k, o := range s.objects {
		if k.Kind == kind {
			out = append(out, o)
		}
	}
	s.mu.RUnlock()
	sortObjects(out)
	return out
}

func sortObjects(objs []Object) {
	sort.Slice(objs, func(i, j int) bool {
		if objs[i].GetNamespace() != objs[j].GetNamespace() {
			return objs[i].GetNamespace() < objs[j].GetNamespace()
		}
		return objs[i].GetName() < objs[j].GetName()
	})
}

// Objects is a consistent, typed and sorted view of the store at one version: the input of a model snapshot.
type Objects struct {
	Version                uint64
	Namespaces             []*corev1.Namespace
	Services               []*corev1.Service
	Pods                   []*corev1.Pod
	ServiceAccounts        []*corev1.ServiceAccount
	EndpointSlices         []*discoveryv1.EndpointSlice
	GatewayClasses         []*gwv1.GatewayClass
	Gateways               []*gwv1.Gateway
	HTTPRoutes             []*gwv1.HTTPRoute
	GRPCRoutes             []*gwv1.GRPCRoute
	TCPRoutes              []*gwv1.TCPRoute
	VirtualServices        []*networkingv1.VirtualService
	DestinationRules       []*networkingv1.DestinationRule
	AuthorizationPolicies  []*securityv1.AuthorizationPolicy
	RequestAuthentications []*securityv1.RequestAuthentication
	PeerAuthentications    []*securityv1.PeerAuthentication
}

// Objects returns a typed view of everything in the store, taken under one lock so it is consistent.
func (s *Store) Objects() Objects {
	s.mu.RLock()
	all := make([]Object, 0, len(s.objects))
	for _, o := range s.objects {
		all = append(all, o)
	}
	out := Objects{Version: s.version}
	s.mu.RUnlock()
	sortObjects(all)
	for _, o := range all {
		switch o := o.(type) {
		case *corev1.Namespace:
			out.Namespaces = append(out.Namespaces, o)
		case *corev1.Service:
			out.Services = append(out.Services, o)
		case *corev1.Pod:
			out.Pods = append(out.Pods, o)
		case *corev1.ServiceAccount:
			out.ServiceAccounts = append(out.ServiceAccounts, o)
		case *discoveryv1.EndpointSlice:
			out.EndpointSlices = append(out.EndpointSlices, o)
		case *gwv1.GatewayClass:
			out.GatewayClasses = append(out.GatewayClasses, o)
		case *gwv1.Gateway:
			out.Gateways = append(out.Gateways, o)
		case *gwv1.HTTPRoute:
			out.HTTPRoutes = append(out.HTTPRoutes, o)
		case *gwv1.GRPCRoute:
			out.GRPCRoutes = append(out.GRPCRoutes, o)
		case *gwv1.TCPRoute:
			out.TCPRoutes = append(out.TCPRoutes, o)
		case *networkingv1.VirtualService:
			out.VirtualServices = append(out.VirtualServices, o)
		case *networkingv1.DestinationRule:
			out.DestinationRules = append(out.DestinationRules, o)
		case *securityv1.AuthorizationPolicy:
			out.AuthorizationPolicies = append(out.AuthorizationPolicies, o)
		case *securityv1.PeerAuthentication:
			out.PeerAuthentications = append(out.PeerAuthentications, o)
		case *securityv1.RequestAuthentication:
			out.RequestAuthentications = append(out.RequestAuthentications, o)
		}
	}
	return out
}
