package model

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/meshlab/meshlab/controlplane/ingest"
)

// Snapshot is an immutable view of the mesh at one store version. Build one per full push; never mutate it.
type Snapshot struct {
	Version uint64
	// Problems lists invalid or unresolvable config, sorted by object.
	Problems []Problem

	namespaces map[string]*corev1.Namespace
	services   []*Service // sorted by FQDN
	byHost     map[string]*Service
	workloads  []*Workload // sorted by namespace/name
	byIP       map[string]*Workload
	waypoints  []*Waypoint // sorted by namespace/name
	waypointBy map[string]*Waypoint
	gateways   []*IngressGateway // sorted by namespace/name

	routes    map[string][]*RouteRule // by FQDN, in precedence order; port filter applied by RoutesFor
	routeSrc  map[string]ingest.Key
	ruleRefs  map[*RouteRule]uint32           // rule -> port it is restricted to (0 = any)
	tcpRoutes map[string]map[uint32]*TCPRoute // by FQDN, then service port
	drs       map[string]*DestinationRule
	authz     []*AuthorizationPolicy
	authn     []*RequestAuthentication
	peerAuthn []*PeerAuthentication
}

// Build makes a snapshot from a consistent view of the store.
func Build(objs ingest.Objects) *Snapshot {
	b := &builder{s: &Snapshot{
		Version:    objs.Version,
		namespaces: map[string]*corev1.Namespace{},
		byHost:     map[string]*Service{},
		byIP:       map[string]*Workload{},
		waypointBy: map[string]*Waypoint{},
		routes:     map[string][]*RouteRule{},
		routeSrc:   map[string]ingest.Key{},
		ruleRefs:   map[*RouteRule]uint32{},
		drs:        map[string]*DestinationRule{},
	}, objs: objs}
	b.build()
	sort.SliceStable(b.s.Problems, func(i, j int) bool {
		if b.s.Problems[i].Object != b.s.Problems[j].Object {
			return b.s.Problems[i].Object.String() < b.s.Problems[j].Object.String()
		}
		return b.s.Problems[i].Message < b.s.Problems[j].Message
	})
	return b.s
}

type builder struct {
	s    *Snapshot
	objs ingest.Objects
}

func (b *builder) problem(key ingest.Key, format string, args ...any) {
	b.s.Problems = append(b.s.Problems, Problem{Object: key, Message: fmt.Sprintf(format, args...)})
}

func (b *builder) build() {
	for _, ns := range b.objs.Namespaces {
		b.s.namespaces[ns.Name] = ns
	}
	b.buildWaypoints()
	b.buildIngressGateways()
	b.buildServices()
	b.buildWorkloads()
	b.buildEndpoints()
	b.bindWaypoints()
	b.buildDestinationRules()
	b.buildVirtualServices()
	b.buildHTTPRoutes()
	b.buildTCPRoutes()
	b.buildAuthorizationPolicies()
	b.buildPeerAuthentications()
	b.buildRequestAuthentications()
}

// FQDN returns name.namespace.svc.cluster.local.
func FQDN(name, namespace string) string {
	return name + "." + namespace + ".svc." + ClusterDomain
}

// resolveHost turns a short or partial host as written in a namespace's config into an FQDN.
func resolveHost(host, namespace string) string {
	switch strings.Count(host, ".") {
	case 0:
		return FQDN(host, namespace)
	case 1:
		return host + ".svc." + ClusterDomain
	}
	if strings.HasSuffix(host, ".svc") {
		return host + "." + ClusterDomain
	}
	return host
}

func (b *builder) buildServices() {
	for _, svc := range b.objs.Services {
		key := ingest.Key{Kind: ingest.KindService, Namespace: svc.Namespace, Name: svc.Name}
		s := &Service{
			Name: svc.Name, Namespace: svc.Namespace, FQDN: FQDN(svc.Name, svc.Namespace),
			Selector: svc.Spec.Selector, Labels: svc.Labels, Object: svc,
		}
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, ip := range ips {
			if ip == corev1.ClusterIPNone {
				continue
			}
			if net.ParseIP(ip) == nil {
				b.problem(key, "clusterIP %q is not an IP address", ip)
				continue
			}
			s.VIPs = append(s.VIPs, ip)
		}
		for _, p := range svc.Spec.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue // the mesh carries TCP only
			}
			port := Port{Name: p.Name, Port: uint32(p.Port), Protocol: protocolOf(p)}
			switch {
			case p.TargetPort.Type == intstr.String:
				port.TargetPortName = p.TargetPort.StrVal
			case p.TargetPort.IntVal != 0:
				port.TargetPort = uint32(p.TargetPort.IntVal)
			default:
				port.TargetPort = port.Port
			}
			s.Ports = append(s.Ports, port)
		}
		sort.Slice(s.Ports, func(i, j int) bool { return s.Ports[i].Port < s.Ports[j].Port })
		b.s.services = append(b.s.services, s)
		b.s.byHost[s.FQDN] = s
	}
	sort.Slice(b.s.services, func(i, j int) bool { return b.s.services[i].FQDN < b.s.services[j].FQDN })
}

// protocolOf classifies a port like Istio: appProtocol first, then the port name's prefix.
func protocolOf(p corev1.ServicePort) Protocol {
	if p.AppProtocol != nil {
		switch strings.ToLower(*p.AppProtocol) {
		case "http", "http1", "kubernetes.io/http":
			return ProtocolHTTP
		case "http2", "h2c", "kubernetes.io/h2c":
			return ProtocolHTTP2
		case "grpc", "grpc-web":
			return ProtocolGRPC
		case "tcp", "tls", "https", "mongo", "mysql", "redis":
			return ProtocolTCP
		}
	}
	name := strings.ToLower(p.Name)
	prefix, _, _ := strings.Cut(name, "-")
	switch prefix {
	case "http":
		return ProtocolHTTP
	case "http2":
		return ProtocolHTTP2
	case "grpc", "grpc-web":
		return ProtocolGRPC
	}
	return ProtocolTCP
}

func (b *builder) ambient(pod *corev1.Pod) bool {
	if v, ok := pod.Labels[LabelDataplaneMode]; ok {
		return v == "ambient"
	}
	if ns := b.s.namespaces[pod.Namespace]; ns != nil {
		return ns.Labels[LabelDataplaneMode] == "ambient"
	}
	return false
}

func (b *builder) buildWorkloads() {
	for _, pod := range b.objs.Pods {
		if pod.Spec.HostNetwork {
			continue // shares the node's IP: not a mesh workload
		}
		var ips []string
		for _, ip := range pod.Status.PodIPs {
			ips = append(ips, ip.IP)
		}
		if len(ips) == 0 && pod.Status.PodIP != "" {
			ips = []string{pod.Status.PodIP}
		}
		if len(ips) == 0 {
			continue // not scheduled or not running yet
		}
		key := ingest.Key{Kind: ingest.KindPod, Namespace: pod.Namespace, Name: pod.Name}
		sa := pod.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		w := &Workload{
			Name: pod.Name, Namespace: pod.Namespace, UID: string(pod.UID), Node: pod.Spec.NodeName,
			ServiceAccount: sa, Labels: pod.Labels, Ambient: b.ambient(pod), Object: pod,
		}
		for _, ip := range ips {
			if net.ParseIP(ip) == nil {
				b.problem(key, "podIP %q is not an IP address", ip)
				continue
			}
			if other, dup := b.s.byIP[ip]; dup {
				b.problem(key, "podIP %s is also used by pod %s/%s", ip, other.Namespace, other.Name)
				continue
			}
			w.IPs = append(w.IPs, ip)
			b.s.byIP[ip] = w
		}
		if len(w.IPs) > 0 {
			b.s.workloads = append(b.s.workloads, w)
		}
	}
}

// containerPort resolves a named target port on a pod.
func containerPort(pod *corev1.Pod, name string) uint32 {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return uint32(p.ContainerPort)
			}
		}
	}
	return 0
}

// buildEndpoints derives each service's endpoints from its EndpointSlices, or, when it has none (the
// offline case), from the pods its selector matches.
func (b *builder) buildEndpoints() {
	slices := map[string][]int{}
	for i, es := range b.objs.EndpointSlices {
		svc := es.Labels[LabelServiceName]
		if svc == "" {
			continue
		}
		k := es.Namespace + "/" + svc
		slices[k] = append(slices[k], i)
	}
	for _, s := range b.s.services {
		if idx, ok := slices[s.Namespace+"/"+s.Name]; ok {
			b.endpointsFromSlices(s, idx)
		} else if len(s.Selector) > 0 {
			b.endpointsFromPods(s)
		}
		sort.Slice(s.Endpoints, func(i, j int) bool {
			if s.Endpoints[i].IP != s.Endpoints[j].IP {
				return ipLess(s.Endpoints[i].IP, s.Endpoints[j].IP)
			}
			return s.Endpoints[i].ServicePort < s.Endpoints[j].ServicePort
		})
		for _, w := range b.s.workloads {
			var maps []PortMapping
			for _, ep := range s.Endpoints {
				if ep.Workload == w {
					maps = append(maps, PortMapping{ServicePort: ep.ServicePort, TargetPort: ep.Port})
				}
			}
			if len(maps) > 0 {
				w.Services = append(w.Services, WorkloadService{Service: s, Ports: maps})
			}
		}
	}
}

func (b *builder) endpointsFromPods(s *Service) {
	sel := labels.SelectorFromSet(s.Selector)
	for _, w := range b.s.workloads {
		if w.Namespace != s.Namespace || !sel.Matches(labels.Set(w.Labels)) {
			continue
		}
		for _, p := range s.Ports {
			target := p.TargetPort
			if p.TargetPortName != "" {
				target = containerPort(w.Object, p.TargetPortName)
				if target == 0 {
					continue // the pod has no such named port: Kubernetes leaves it out too
				}
			}
			for _, ip := range w.IPs {
				s.Endpoints = append(s.Endpoints, Endpoint{IP: ip, Port: target, ServicePort: p.Port, Ready: podReady(w.Object), Workload: w})
			}
		}
	}
}

func podReady(pod *corev1.Pod) bool {
	if pod.Status.Phase != "" && pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return true // offline YAML rarely carries conditions: a pod with an IP counts as ready
}

func (b *builder) endpointsFromSlices(s *Service, idx []int) {
	for _, i := range idx {
		es := b.objs.EndpointSlices[i]
		for _, p := range s.Ports {
			var target uint32
			for _, ep := range es.Ports {
				if ep.Port != nil && ptrString(ep.Name) == p.Name {
					target = uint32(*ep.Port)
				}
			}
			if target == 0 {
				continue
			}
			for _, e := range es.Endpoints {
				ready := e.Conditions.Ready == nil || *e.Conditions.Ready
				for _, ip := range e.Addresses {
					s.Endpoints = append(s.Endpoints, Endpoint{IP: ip, Port: target, ServicePort: p.Port, Ready: ready, Workload: b.s.byIP[ip]})
				}
			}
		}
	}
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func ipLess(a, b string) bool {
	ia, ib := net.ParseIP(a), net.ParseIP(b)
	if ia == nil || ib == nil {
		return a < b
	}
	if a4, b4 := ia.To4(), ib.To4(); a4 != nil && b4 != nil {
		ia, ib = a4, b4
	}
	return string(ia) < string(ib)
}

// Service returns the service with the given FQDN.
func (s *Snapshot) Service(fqdn string) *Service { return s.byHost[fqdn] }

// Services returns every service, sorted by FQDN.
func (s *Snapshot) Services() []*Service { return s.services }

// Workloads returns every workload with an IP, sorted by namespace and name.
func (s *Snapshot) Workloads() []*Workload { return s.workloads }

// Workload returns the workload (pod) namespace/name.
func (s *Snapshot) Workload(namespace, name string) *Workload {
	i := sort.Search(len(s.workloads), func(i int) bool {
		w := s.workloads[i]
		return w.Namespace > namespace || (w.Namespace == namespace && w.Name >= name)
	})
	if i < len(s.workloads) && s.workloads[i].Namespace == namespace && s.workloads[i].Name == name {
		return s.workloads[i]
	}
	return nil
}

// WorkloadByIP returns the workload with this IP.
func (s *Snapshot) WorkloadByIP(ip string) *Workload { return s.byIP[ip] }

// Namespace returns the namespace object, if the store has it.
func (s *Snapshot) Namespace(name string) *corev1.Namespace { return s.namespaces[name] }

// Nodes returns the nodes that run at least one workload, sorted.
func (s *Snapshot) Nodes() []string {
	seen := map[string]bool{}
	var out []string
	for _, w := range s.workloads {
		if w.Node != "" && !seen[w.Node] {
			seen[w.Node] = true
			out = append(out, w.Node)
		}
	}
	sort.Strings(out)
	return out
}

// DestinationRule returns the destination rule for an FQDN, or nil.
func (s *Snapshot) DestinationRule(fqdn string) *DestinationRule { return s.drs[fqdn] }

// RoutesFor returns the HTTP routing rules for traffic to a service port, in precedence order, or nil
// when no VirtualService or HTTPRoute applies (the caller then routes everything to the service).
func (s *Snapshot) RoutesFor(svc *Service, port uint32) []*RouteRule {
	var out []*RouteRule
	for _, r := range s.routes[svc.FQDN] {
		if p := s.ruleRefs[r]; p == 0 || p == port {
			out = append(out, r)
		}
	}
	return out
}

// RouteSource returns the VirtualService or HTTPRoute that configures routing for an FQDN.
func (s *Snapshot) RouteSource(fqdn string) (ingest.Key, bool) {
	k, ok := s.routeSrc[fqdn]
	return k, ok
}

func portString(p uint32) string { return strconv.FormatUint(uint64(p), 10) }
