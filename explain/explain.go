package explain

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/inject"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/dataplane/l7"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
)

// Request is the request to explain.
type Request struct {
	// From is the source pod, NAMESPACE/POD.
	From string
	// URL is what the client asks for: http://HOST[:PORT]/PATH. HOST is a Service (name, name.namespace,
	// or FQDN, resolved from the source's namespace), a Service VIP or a pod IP. From an ingress gateway's
	// pod, it is the request as it reaches the gateway: the port picks the listener, the host the virtual
	// host.
	URL     string
	Method  string
	Headers http.Header
}

// InputError is a request that names nothing explain can work from (an unknown pod, a malformed URL, a
// host that is no Service): the caller's input is at fault, not the mesh.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// Capture modes of the source pod.
const (
	CaptureAmbient = "ambient"
	CaptureSidecar = "sidecar"
	CaptureIngress = "ingress-gateway"
	CaptureNone    = "none"
)

// Outcomes of a request.
const (
	OutcomeForwarded = "forwarded"
	OutcomeDenied    = "denied"
	OutcomeAborted   = "aborted"
	OutcomeNoRoute   = "no-route"
	OutcomeDirect    = "direct-response"
	OutcomeRedirect  = "redirect"
	OutcomeNoChain   = "no-filter-chain"
	OutcomeFailed    = "failed"
)

// Report is the predicted path of one request.
type Report struct {
	Request     RequestSummary `json:"request"`
	Source      Source         `json:"source"`
	Destination Destination    `json:"destination"`
	// Ztunnel is the source ztunnel's outbound decision (ambient sources).
	Ztunnel *ZtunnelHop `json:"ztunnel,omitempty"`
	// Proxy is the L7 hop: the waypoint (ambient), the source's sidecar, or the ingress gateway.
	Proxy *ProxyHop `json:"proxy,omitempty"`
	// Backends are where the request may go, with their probabilities, endpoints and the destination's
	// inbound decision.
	Backends []Backend `json:"backends,omitempty"`
	Result   Result    `json:"result"`
	// Notes are what explain could not decide or the reader should know (config warnings, random faults).
	Notes []string `json:"notes,omitempty"`
	// ConfigFrom says where each proxy's config came from, on a running lab (its own config dump, or
	// generated from the lab's objects when the dump could not be read); empty offline.
	ConfigFrom []string `json:"configFrom,omitempty"`
}

// RequestSummary echoes the request.
type RequestSummary struct {
	From    string      `json:"from"`
	Method  string      `json:"method"`
	URL     string      `json:"url"`
	Headers http.Header `json:"headers,omitempty"`
}

// Source is the client pod and how the mesh captures its traffic.
type Source struct {
	Pod  string `json:"pod"`
	IP   string `json:"ip"`
	Node string `json:"node"`
	// Identity is the pod's SPIFFE ID, empty outside the mesh.
	Identity string `json:"identity,omitempty"`
	// Capture is ambient, sidecar, ingress-gateway or none; Why names the label or object that decided.
	Capture string `json:"capture"`
	Why     string `json:"why"`
}

// Destination is what the client dials.
type Destination struct {
	Host    string `json:"host"`
	Address string `json:"address"`
	Service string `json:"service,omitempty"`
	Pod     string `json:"pod,omitempty"`
}

// ZtunnelHop is the source ztunnel's outbound decision.
type ZtunnelHop struct {
	Proxy   string `json:"proxy"`
	Service string `json:"service,omitempty"`
	// Waypoint is NAMESPACE/NAME of the waypoint the connection goes to, empty for none; WaypointWhy names
	// the istio.io/use-waypoint label (and its object) that decided, or says none did.
	Waypoint    string `json:"waypoint,omitempty"`
	WaypointWhy string `json:"waypointWhy,omitempty"`
	// HBONE: tunnelled to Via with :authority Target, the server presenting ExpectedIdentity.
	HBONE            bool   `json:"hbone"`
	Via              string `json:"via"`
	Target           string `json:"target,omitempty"`
	ExpectedIdentity string `json:"expectedIdentity,omitempty"`
	Error            string `json:"error,omitempty"`
}

// ProxyHop is what a waypoint, sidecar or gateway does with the request.
type ProxyHop struct {
	Proxy    string `json:"proxy"`
	Identity string `json:"identity"`
	// Entry says how the connection reaches Listener.
	Entry       string       `json:"entry"`
	Listener    string       `json:"listener"`
	FilterChain string       `json:"filterChain,omitempty"`
	ChainMatch  []string     `json:"chainMatch,omitempty"`
	TCP         bool         `json:"tcp,omitempty"`
	RouteConfig string       `json:"routeConfig,omitempty"`
	VirtualHost string       `json:"virtualHost,omitempty"`
	Routes      []RouteCheck `json:"routes,omitempty"`
	Route       *Route       `json:"route,omitempty"`
	// Authorization is each RBAC filter's verdict, in order (L7 AuthorizationPolicies).
	Authorization []L7Verdict `json:"authorization,omitempty"`
	Fault         string      `json:"fault,omitempty"`
}

// RouteCheck is one route of the virtual host tried against the request.
type RouteCheck struct {
	Name    string `json:"name"`
	Match   string `json:"match"`
	Matched bool   `json:"matched"`
	Why     string `json:"why,omitempty"`
}

// Route is the route that matched and what it does.
type Route struct {
	Name  string `json:"name"`
	Match string `json:"match"`
	// Source is the VirtualService or HTTPRoute ("VirtualService default/reviews") and Rule its rule
	// ("http[0]", "rules[1]"); empty for a generated default route.
	Source   string `json:"source,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
	Retries  string `json:"retries,omitempty"`
	Direct   int    `json:"directResponse,omitempty"`
	Redirect bool   `json:"redirect,omitempty"`
}

// L7Verdict is one RBAC filter's verdict.
type L7Verdict struct {
	Action  string `json:"action"` // ALLOW or DENY
	Allowed bool   `json:"allowed"`
	// Policy is the RBAC policy that matched (ns[NS]-policy[NAME]-rule[I]), Source the AuthorizationPolicy
	// and rule it came from.
	Policy string `json:"policy,omitempty"`
	Source string `json:"source,omitempty"`
}

var rbacPolicyName = regexp.MustCompile(`^ns\[(.*)\]-policy\[(.*)\]-rule\[(\d+)\]$`)

// rbacSource reads the AuthorizationPolicy and rule out of an RBAC policy name as the generator writes it.
func rbacSource(policy string) string {
	m := rbacPolicyName.FindStringSubmatch(policy)
	if m == nil {
		return ""
	}
	return fmt.Sprintf("AuthorizationPolicy %s/%s rules[%s]", m[1], m[2], m[3])
}

// Backend is one cluster the request may go to.
type Backend struct {
	// Cluster names the L7 proxy's cluster; on a path without one it says who picks the endpoint
	// ("ztunnel: endpoints of FQDN (round robin)", "kube-proxy: endpoints of FQDN").
	Cluster      string            `json:"cluster"`
	Weight       uint32            `json:"weight,omitempty"`
	Probability  float64           `json:"probability"`
	Subset       string            `json:"subset,omitempty"`
	SubsetLabels map[string]string `json:"subsetLabels,omitempty"`
	Missing      bool              `json:"missing,omitempty"`
	Endpoints    []Endpoint        `json:"endpoints"`
}

// Endpoint is one destination the request may reach, and the destination's inbound decision.
type Endpoint struct {
	Address string   `json:"address"`
	Pod     string   `json:"pod,omitempty"`
	Node    string   `json:"node,omitempty"`
	Healthy bool     `json:"healthy"`
	Tunnel  string   `json:"tunnel"`
	Inbound *Inbound `json:"inbound,omitempty"`
}

// Inbound is the destination side's authorization: the ztunnel's L4 policy for an ambient pod, the
// sidecar's RBAC for an injected one.
type Inbound struct {
	Proxy   string `json:"proxy,omitempty"`
	Layer   string `json:"layer,omitempty"` // L4 or L7
	Peer    string `json:"peer,omitempty"`
	Allowed bool   `json:"allowed"`
	Policy  string `json:"policy,omitempty"`
	Rule    string `json:"rule,omitempty"`
	Reason  string `json:"reason"`
}

// Result is how the request ends.
type Result struct {
	Outcome string `json:"outcome"`
	// Status is the HTTP status the mesh answers with itself (403, 404, 503...), 0 when the request is
	// forwarded or the connection is closed.
	Status  int    `json:"status,omitempty"`
	Summary string `json:"summary"`
}

// explainer carries one explanation's inputs and caches.
type explainer struct {
	src      ConfigSource
	snap     *model.Snapshot
	req      *http.Request
	report   *Report
	ztunnels map[string]*ztunnel.Predictor
}

// Explain predicts the path of req through the mesh that src describes. An *InputError means the request
// names nothing to work from; other errors are config the proxies could not take.
func Explain(src ConfigSource, req Request) (*Report, error) {
	e := &explainer{src: src, snap: src.Mesh(), ztunnels: map[string]*ztunnel.Predictor{}}
	ns, name, ok := strings.Cut(req.From, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return nil, inputErrorf("--from %q: want NAMESPACE/POD", req.From)
	}
	wl := e.snap.Workload(ns, name)
	if wl == nil {
		return nil, inputErrorf("--from %s: no pod %s/%s with an IP in the input", req.From, ns, name)
	}
	method := strings.ToUpper(req.Method)
	if method == "" {
		method = http.MethodGet
	}
	raw := req.URL
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, inputErrorf("URL %q: want http://HOST[:PORT]/PATH", req.URL)
	}
	if u.Scheme != "http" {
		return nil, inputErrorf("URL %q: only http is explained (the mesh's L7 proxies see plain HTTP)", req.URL)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	hr, err := http.NewRequest(method, u.String(), nil)
	if err != nil {
		return nil, inputErrorf("request: %v", err)
	}
	for k, vs := range req.Headers {
		for _, v := range vs {
			hr.Header.Add(k, v)
		}
	}
	hr.Host = u.Host
	e.req = hr
	e.report = &Report{Request: RequestSummary{From: req.From, Method: method, URL: u.String(), Headers: req.Headers}}
	e.report.Source = e.source(wl)
	if err := e.route(wl, u); err != nil {
		return nil, err
	}
	return e.report, nil
}

// source says how the mesh captures the pod's traffic, and why.
func (e *explainer) source(wl *model.Workload) Source {
	s := Source{Pod: wl.Namespace + "/" + wl.Name, IP: wl.IPs[0], Node: wl.Node, Identity: wl.Identity()}
	pod := "Pod " + wl.Namespace + "/" + wl.Name
	if gw := wl.Labels[model.LabelGatewayName]; gw != "" {
		if e.snap.IngressGateway(wl.Namespace, gw) != nil {
			s.Capture = CaptureIngress
			s.Why = fmt.Sprintf("label %s=%s on %s: it runs ingress Gateway %s/%s (gatewayClassName %s)", model.LabelGatewayName, gw, pod, wl.Namespace, gw, model.IngressGatewayClass)
			return s
		}
	}
	if injected(wl) {
		s.Capture = CaptureSidecar
		s.Why = "annotation " + inject.AnnotationStatus + " on " + pod + ": a sidecar was injected"
		if wl.Object == nil || wl.Object.Annotations[inject.AnnotationStatus] == "" {
			s.Why = "label " + configgen.LabelTLSMode + "=istio on " + pod + ": it runs a sidecar"
		}
		return s
	}
	mode, onPod := wl.Labels[model.LabelDataplaneMode]
	var nsLabels map[string]string
	if n := e.snap.Namespace(wl.Namespace); n != nil {
		nsLabels = n.Labels
	}
	switch {
	case wl.Ambient && onPod:
		s.Capture, s.Why = CaptureAmbient, fmt.Sprintf("label %s=ambient on %s", model.LabelDataplaneMode, pod)
	case wl.Ambient:
		s.Capture, s.Why = CaptureAmbient, fmt.Sprintf("label %s=ambient on Namespace %s", model.LabelDataplaneMode, wl.Namespace)
	case onPod:
		s.Capture, s.Why = CaptureNone, fmt.Sprintf("label %s=%s on %s (no sidecar)", model.LabelDataplaneMode, mode, pod)
		if nsLabels[model.LabelDataplaneMode] == "ambient" {
			s.Why += fmt.Sprintf(" overrides %s=ambient on Namespace %s", model.LabelDataplaneMode, wl.Namespace)
		}
	default:
		s.Capture, s.Why = CaptureNone, fmt.Sprintf("no %s=ambient label on %s or Namespace %s, and no sidecar", model.LabelDataplaneMode, pod, wl.Namespace)
	}
	if s.Capture == CaptureNone {
		s.Identity = "" // outside the mesh: no certificate, no identity
	}
	return s
}

// injected reports whether the pod runs a sidecar: injection's status annotation, or the label injection
// puts on the pod.
func injected(wl *model.Workload) bool {
	if wl.Object != nil && wl.Object.Annotations[inject.AnnotationStatus] != "" {
		return true
	}
	return wl.Labels[configgen.LabelTLSMode] == "istio" && wl.Labels[model.LabelGatewayName] == ""
}

// route follows the request from the source to its destinations.
func (e *explainer) route(wl *model.Workload, u *url.URL) error {
	srcIP, _ := netip.ParseAddr(wl.IPs[0])
	if e.report.Source.Capture == CaptureIngress {
		return e.fromIngress(wl, u)
	}
	dst, err := e.destination(wl, u)
	if err != nil {
		return err
	}
	switch e.report.Source.Capture {
	case CaptureAmbient:
		return e.fromAmbient(wl, srcIP, dst)
	case CaptureSidecar:
		p := model.Proxy{Kind: model.KindSidecar, Namespace: wl.Namespace, Name: wl.Name}
		entry := fmt.Sprintf("the app's connection to %s is redirected by iptables to %s 0.0.0.0:%d", dst, configgen.ListenerVirtualOutbound, configgen.OutboundCapturePort)
		d := l7.Downstream{Listener: configgen.ListenerVirtualOutbound, Source: netip.AddrPortFrom(srcIP, 0), Destination: dst}
		return e.viaProxy(p, wl.Identity(), entry, d)
	}
	return e.uncaptured(dst)
}

// destination resolves the URL's host to the address the client dials.
func (e *explainer) destination(wl *model.Workload, u *url.URL) (netip.AddrPort, error) {
	host, port := u.Hostname(), uint16(80)
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return netip.AddrPort{}, inputErrorf("URL %q: bad port %q", u, p)
		}
		port = uint16(n)
	}
	d := &e.report.Destination
	d.Host = u.Host
	if ip, err := netip.ParseAddr(host); err == nil {
		dst := netip.AddrPortFrom(ip, port)
		d.Address = dst.String()
		if w := e.snap.WorkloadByIP(ip.String()); w != nil {
			d.Pod = w.Namespace + "/" + w.Name
		}
		for _, s := range e.snap.Services() {
			for _, vip := range s.VIPs {
				if vip == ip.String() {
					d.Service = s.FQDN
				}
			}
		}
		return dst, nil
	}
	fqdn := serviceFQDN(host, wl.Namespace)
	svc := e.snap.Service(fqdn)
	if svc == nil {
		return netip.AddrPort{}, inputErrorf("URL host %q: no Service %s in the input", host, fqdn)
	}
	if len(svc.VIPs) == 0 {
		return netip.AddrPort{}, inputErrorf("URL host %q: Service %s has no cluster IP (headless): give a pod IP", host, fqdn)
	}
	ip, err := netip.ParseAddr(svc.VIPs[0])
	if err != nil {
		return netip.AddrPort{}, inputErrorf("Service %s: cluster IP %q is not an IP", fqdn, svc.VIPs[0])
	}
	dst := netip.AddrPortFrom(ip, port)
	d.Address, d.Service = dst.String(), fqdn
	if _, ok := svc.Port(uint32(port)); !ok {
		e.note("Service %s has no port %d", fqdn, port)
	}
	return dst, nil
}

// serviceFQDN resolves a host name as a pod's resolver would with Kubernetes' search path.
func serviceFQDN(host, namespace string) string {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	switch parts := strings.Split(host, "."); {
	case len(parts) == 1:
		return model.FQDN(host, namespace)
	case len(parts) == 2:
		return model.FQDN(parts[0], parts[1])
	case len(parts) == 3 && parts[2] == "svc":
		return host + "." + model.ClusterDomain
	}
	return host
}

func (e *explainer) note(format string, args ...any) {
	e.report.Notes = append(e.report.Notes, fmt.Sprintf(format, args...))
}

// predictor returns the ztunnel on node, built from the config it holds.
func (e *explainer) predictor(node string) (*ztunnel.Predictor, error) {
	if p := e.ztunnels[node]; p != nil {
		return p, nil
	}
	cfg, warnings, err := e.src.Ztunnel(node)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		e.note("ztunnel/%s: %s", node, w)
	}
	p, err := ztunnel.NewPredictor(cfg)
	if err != nil {
		return nil, fmt.Errorf("ztunnel/%s: %w", node, err)
	}
	e.ztunnels[node] = p
	return p, nil
}

// fromAmbient: the source's ztunnel picks a waypoint or the destination and tunnels to it.
func (e *explainer) fromAmbient(wl *model.Workload, srcIP netip.Addr, dst netip.AddrPort) error {
	zt, err := e.predictor(wl.Node)
	if err != nil {
		return err
	}
	hop := &ZtunnelHop{Proxy: "ztunnel/" + wl.Node}
	e.report.Ztunnel = hop
	plan, err := zt.Outbound(srcIP, dst)
	if err != nil {
		hop.Error = err.Error()
		e.report.Result = Result{Outcome: OutcomeFailed, Summary: "ztunnel closes the connection: " + err.Error()}
		return nil
	}
	hop.HBONE, hop.Via, hop.Target, hop.ExpectedIdentity = plan.HBONE, plan.ProxyAddr, plan.Target, plan.Expect
	if plan.Service != nil {
		hop.Service = plan.Service.Hostname
		if s := e.snap.Service(plan.Service.Hostname); s != nil {
			hop.WaypointWhy = s.WaypointWhy
		}
	} else if w := e.snap.WorkloadByIP(dst.Addr().String()); w != nil {
		hop.WaypointWhy = w.WaypointWhy
	}
	if plan.Waypoint != nil {
		wp := e.snap.WorkloadByIP(plan.Waypoint.IP.String())
		gw := ""
		if wp != nil {
			gw = wp.Labels[model.LabelGatewayName]
		}
		if gw == "" {
			return fmt.Errorf("ztunnel/%s sends to %s, which is no waypoint pod in the input", wl.Node, plan.ProxyAddr)
		}
		hop.Waypoint = plan.Waypoint.Namespace + "/" + gw
		p := model.Proxy{Kind: model.KindWaypoint, Namespace: plan.Waypoint.Namespace, Name: gw}
		resolved, err := e.snap.Resolve(p)
		if err != nil {
			return err
		}
		entry := fmt.Sprintf("connect_terminate :%d terminates the HBONE CONNECT to %s (mTLS, peer %s) and hands the stream to %s",
			mesh.HBONEPort, plan.Target, wl.Identity(), configgen.ListenerMainInternal)
		d := l7.Downstream{Listener: configgen.ListenerMainInternal, Peer: wl.Identity(), Source: netip.AddrPortFrom(srcIP, 0), Destination: dst}
		// The waypoint opens its own HBONE connections: destinations see its identity.
		return e.viaProxy(p, model.SpiffeID(resolved.Namespace, resolved.ServiceAccount), entry, d)
	}
	// No waypoint: ztunnel connects to a service endpoint (round robin) or the pod itself.
	b := Backend{Cluster: "ztunnel round robin", Probability: 1}
	var targets []*ztunnel.Workload
	if plan.Service != nil {
		targets = zt.Endpoints(plan.Service)
		b.Cluster = "ztunnel: endpoints of " + plan.Service.Hostname + " (round robin)"
	} else if plan.Destination != nil {
		targets = []*ztunnel.Workload{plan.Destination}
		b.Cluster = "ztunnel: the pod itself"
	}
	port := dst.Port()
	if plan.Service != nil {
		if tp := plan.Service.Ports[port]; tp != 0 {
			port = tp
		}
	}
	for _, t := range targets {
		ep := Endpoint{Address: netip.AddrPortFrom(t.IP, port).String(), Pod: t.Namespace + "/" + t.Name, Node: t.Node, Healthy: true}
		if t.Protocol == ztunnel.ProtocolHBONE {
			ep.Tunnel = fmt.Sprintf("HBONE to %s:%d", t.IP, mesh.HBONEPort)
		} else {
			ep.Tunnel = "plaintext (the pod is not in the mesh)"
		}
		peer := ""
		if t.Protocol == ztunnel.ProtocolHBONE {
			peer = wl.Identity()
		}
		ep.Inbound, err = e.inbound(t.IP, port, peer)
		if err != nil {
			return err
		}
		b.Endpoints = append(b.Endpoints, ep)
	}
	if plan.Service == nil && plan.Destination == nil {
		b.Cluster = "passthrough (outside the mesh)"
		b.Endpoints = append(b.Endpoints, Endpoint{Address: plan.ProxyAddr, Healthy: true, Tunnel: "plaintext"})
	}
	e.report.Backends = []Backend{b}
	e.finish(false)
	return nil
}

// fromIngress: the request arrives at the gateway's listener for the URL's port.
func (e *explainer) fromIngress(wl *model.Workload, u *url.URL) error {
	port := uint16(80)
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return inputErrorf("URL %q: bad port %q", u, p)
		}
		port = uint16(n)
	}
	ip, _ := netip.ParseAddr(wl.IPs[0])
	dst := netip.AddrPortFrom(ip, port)
	e.report.Destination = Destination{Host: u.Host, Address: dst.String(), Pod: wl.Namespace + "/" + wl.Name}
	gw := wl.Labels[model.LabelGatewayName]
	p := model.Proxy{Kind: model.KindGateway, Namespace: wl.Namespace, Name: gw}
	resolved, err := e.snap.Resolve(p)
	if err != nil {
		return err
	}
	identity := model.SpiffeID(wl.Namespace, resolved.ServiceAccount)
	entry := fmt.Sprintf("a client outside the mesh connects to the gateway on port %d", port)
	d := l7.Downstream{Listener: configgen.GatewayListenerName(uint32(port)), Source: netip.MustParseAddrPort("192.0.2.1:0"), Destination: dst}
	return e.viaProxy(p, identity, entry, d)
}

// uncaptured: nothing on the source side intercepts; the destination's side may still enforce policy.
func (e *explainer) uncaptured(dst netip.AddrPort) error {
	b := Backend{Cluster: "no proxy: the connection goes to the address dialled", Probability: 1}
	var targets []netip.AddrPort
	if svc := e.snap.Service(e.report.Destination.Service); svc != nil {
		b.Cluster = "kube-proxy: endpoints of " + svc.FQDN
		for _, ep := range svc.Endpoints {
			if ep.ServicePort == uint32(dst.Port()) {
				if ip, err := netip.ParseAddr(ep.IP); err == nil {
					targets = append(targets, netip.AddrPortFrom(ip, uint16(ep.Port)))
				}
			}
		}
		if svc.Waypoint != nil {
			e.note("Service %s has waypoint %s/%s, but traffic from outside the mesh does not go through it", svc.FQDN, svc.Waypoint.Namespace, svc.Waypoint.Name)
		}
	} else {
		targets = []netip.AddrPort{dst}
	}
	for _, t := range targets {
		ep := Endpoint{Address: t.String(), Healthy: true, Tunnel: "plaintext"}
		if w := e.snap.WorkloadByIP(t.Addr().String()); w != nil {
			ep.Pod, ep.Node = w.Namespace+"/"+w.Name, w.Node
		}
		in, err := e.inbound(t.Addr(), t.Port(), "")
		if err != nil {
			return err
		}
		ep.Inbound = in
		b.Endpoints = append(b.Endpoints, ep)
	}
	e.report.Backends = []Backend{b}
	e.finish(false)
	return nil
}

// viaProxy runs the L7 proxy p (waypoint, sidecar or gateway) on the request arriving as d.
func (e *explainer) viaProxy(p model.Proxy, identity, entry string, d l7.Downstream) error {
	cfg, err := e.src.Envoy(p)
	if err != nil {
		return err
	}
	table, err := l7.Build(cfg)
	if err != nil {
		return fmt.Errorf("%s: its config does not build: %w", p.ID(), err)
	}
	dec := table.Explain(e.req, d)
	hop := &ProxyHop{Proxy: p.ID(), Identity: identity, Entry: entry, Listener: d.Listener, ChainMatch: dec.ChainMatch,
		RouteConfig: dec.RouteConfig, VirtualHost: dec.VirtualHost}
	e.report.Proxy = hop
	if table.Listeners[d.Listener] == nil {
		e.report.Result = Result{Outcome: OutcomeNoChain, Summary: fmt.Sprintf("%s has no listener %s: the connection is refused", p.ID(), d.Listener)}
		return nil
	}
	if dec.Chain == nil {
		e.report.Result = Result{Outcome: OutcomeNoChain, Summary: fmt.Sprintf("no filter chain of %s matches %s: the connection is closed", d.Listener, d.Destination)}
		return nil
	}
	hop.FilterChain = dec.Chain.Name
	if hop.FilterChain == "" {
		for i, c := range table.Listeners[d.Listener].Chains {
			if c == dec.Chain {
				hop.FilterChain = fmt.Sprintf("filter_chains[%d] (unnamed)", i)
			}
		}
	}
	if dec.Chain.TCP != nil {
		hop.TCP = true
		e.note("%s: filter chain %s is a TCP proxy: HTTP routes and L7 policies do not apply", p.ID(), dec.Chain.Name)
		return e.backends(table, table.TCPChoices(dec.Chain.TCP), identity, d, true)
	}
	if dec.JWT {
		e.note("%s: the chain authenticates JWTs first (jwt_authn); explain does not evaluate tokens", p.ID())
	}
	for _, c := range dec.Checked {
		hop.Routes = append(hop.Routes, RouteCheck{Name: c.Route.Name, Match: c.Route.Describe(), Matched: c.Why == "", Why: c.Why})
	}
	if rt := dec.Route; rt != nil {
		hop.Route = e.describeRoute(rt)
	}
	for _, v := range dec.RBAC {
		action := "ALLOW"
		if v.Deny {
			action = "DENY"
		}
		hop.Authorization = append(hop.Authorization, L7Verdict{Action: action, Allowed: v.Allowed, Policy: v.Policy, Source: rbacSource(v.Policy)})
	}
	if f := dec.Fault; f != nil {
		hop.Fault = describeFault(f)
	}
	switch {
	case dec.Denied:
		last := dec.RBAC[len(dec.RBAC)-1]
		why := "no ALLOW policy matched"
		if last.Deny {
			why = "DENY policy " + last.Policy + " matched"
			if src := rbacSource(last.Policy); src != "" {
				why = src + " (DENY) matched"
			}
		}
		e.report.Result = Result{Outcome: OutcomeDenied, Status: http.StatusForbidden,
			Summary: fmt.Sprintf("%s answers 403 \"RBAC: access denied\": %s", p.ID(), why)}
		return nil
	case dec.Fault != nil && dec.Fault.AbortStatus != 0 && dec.Fault.AbortPPM >= 1_000_000 && dec.Fault.Delay == 0:
		e.report.Result = Result{Outcome: OutcomeAborted, Status: dec.Fault.AbortStatus,
			Summary: fmt.Sprintf("%s's fault filter aborts every request with %d \"fault filter abort\"", p.ID(), dec.Fault.AbortStatus)}
		return nil
	case dec.Route == nil:
		e.report.Result = Result{Outcome: OutcomeNoRoute, Status: http.StatusNotFound,
			Summary: fmt.Sprintf("no route of %s matches: %s answers 404 (flag NR)", routeScope(dec), p.ID())}
		return nil
	case dec.Route.Direct != nil:
		e.report.Result = Result{Outcome: OutcomeDirect, Status: dec.Route.Direct.Status,
			Summary: fmt.Sprintf("route %s answers %d itself", dec.Route.Name, dec.Route.Direct.Status)}
		return nil
	case dec.Route.Redirect != nil:
		e.report.Result = Result{Outcome: OutcomeRedirect, Summary: fmt.Sprintf("route %s answers with a redirect", dec.Route.Name)}
		return nil
	}
	if dec.Fault != nil && dec.Fault.AbortStatus != 0 {
		e.note("%s: the fault filter aborts %.4g%% of requests with %d", p.ID(), l7.Percent(dec.Fault.AbortPPM), dec.Fault.AbortStatus)
	}
	return e.backends(table, table.Choices(dec.Route), identity, d, true)
}

func routeScope(dec *l7.Decision) string {
	if dec.VirtualHost == "" {
		if dec.RouteConfig == "" {
			return "any route configuration (none arrived)"
		}
		return "route configuration " + dec.RouteConfig + " (no virtual host for the Host)"
	}
	return "virtual host " + dec.VirtualHost
}

// describeRoute names the matched route's source object and rule, and what it does.
func (e *explainer) describeRoute(rt *l7.Route) *Route {
	out := &Route{Name: rt.Name, Match: rt.Describe()}
	if key, ok := sourceKey(rt.Source); ok {
		out.Source = string(key.Kind) + " " + key.Namespace + "/" + key.Name
		if i, ok := e.ruleIndex(key, rt.Name); ok {
			if key.Kind == ingest.KindHTTPRoute || key.Kind == ingest.KindGRPCRoute {
				out.Rule = fmt.Sprintf("rules[%d]", i)
			} else {
				out.Rule = fmt.Sprintf("http[%d]", i)
			}
		}
	}
	switch {
	case rt.Direct != nil:
		out.Direct = rt.Direct.Status
		return out
	case rt.Redirect != nil:
		out.Redirect = true
		return out
	}
	out.Timeout = "none (0s)"
	if rt.Timeout > 0 {
		out.Timeout = rt.Timeout.String()
	}
	out.Retries = "none"
	if r := rt.Retry; r != nil {
		var on []string
		for k := range r.On {
			on = append(on, k)
		}
		sort.Strings(on)
		out.Retries = fmt.Sprintf("%d on %s", r.NumRetries, strings.Join(on, ","))
		if len(r.StatusCodes) > 0 {
			out.Retries += fmt.Sprintf(" (status %v)", r.StatusCodes)
		}
		if r.PerTryTimeout > 0 {
			out.Retries += ", per try " + r.PerTryTimeout.String()
		}
	}
	return out
}

// sourceKey reads Istio's metadata config path, /apis/GROUP/VERSION/namespaces/NS/KIND/NAME.
func sourceKey(path string) (ingest.Key, bool) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(parts) != 7 || parts[0] != "apis" || parts[3] != "namespaces" {
		return ingest.Key{}, false
	}
	kinds := map[string]ingest.Kind{"virtual-service": ingest.KindVirtualService, "httproute": ingest.KindHTTPRoute, "grpcroute": ingest.KindGRPCRoute}
	kind, ok := kinds[parts[5]]
	if !ok {
		return ingest.Key{}, false
	}
	return ingest.Key{Kind: kind, Namespace: parts[4], Name: parts[6]}, true
}

// ruleIndex finds the index, in its source, of the rule that became the route named name.
func (e *explainer) ruleIndex(key ingest.Key, name string) (int, bool) {
	find := func(rules []*model.RouteRule) (int, bool) {
		for _, r := range rules {
			if r.Source == key && r.Name == name {
				return r.Index, true
			}
		}
		return 0, false
	}
	for _, s := range e.snap.Services() {
		for _, p := range s.Ports {
			if i, ok := find(e.snap.RoutesFor(s, p.Port)); ok {
				return i, true
			}
		}
	}
	for _, g := range e.snap.IngressGateways() {
		for _, p := range g.Ports {
			for _, vh := range p.VirtualHosts {
				if i, ok := find(vh.Rules); ok {
					return i, true
				}
			}
		}
	}
	return 0, false
}

func describeFault(f *l7.Fault) string {
	var parts []string
	if f.Delay > 0 && f.DelayPPM > 0 {
		parts = append(parts, fmt.Sprintf("delay %s for %.4g%% of requests", f.Delay, l7.Percent(f.DelayPPM)))
	}
	if f.AbortStatus != 0 && f.AbortPPM > 0 {
		parts = append(parts, fmt.Sprintf("abort with %d for %.4g%% of requests", f.AbortStatus, l7.Percent(f.AbortPPM)))
	}
	return strings.Join(parts, "; ")
}

// backends lists the clusters the proxy may pick, their endpoints, and each destination's inbound verdict
// for a connection from the proxy (identity peer).
func (e *explainer) backends(t *l7.Table, choices []l7.WeightedChoice, peer string, d l7.Downstream, viaL7 bool) error {
	for _, c := range choices {
		b := Backend{Cluster: c.Name, Weight: c.Weight, Probability: c.Probability, Missing: c.Cluster == nil}
		b.Subset, b.SubsetLabels = e.subset(c.Name)
		if c.Cluster != nil {
			hosts := c.Cluster.Hosts
			if len(hosts) == 0 && (c.Cluster.Type == "ORIGINAL_DST" || c.Name == configgen.ClusterEncap || c.Name == configgen.ClusterPassthrough) {
				// The original destination: the address the client dialled.
				hosts = []*l7.Endpoint{{Address: d.Destination.String(), Healthy: true}}
				if c.Name == configgen.ClusterEncap {
					hosts[0].InternalListener, hosts[0].TunnelAddress = l7.ConnectOriginate, net.JoinHostPort(d.Destination.Addr().String(), strconv.Itoa(mesh.HBONEPort))
				}
			}
			for _, h := range hosts {
				ep, err := e.endpoint(h, peer)
				if err != nil {
					return err
				}
				b.Endpoints = append(b.Endpoints, ep)
			}
		}
		e.report.Backends = append(e.report.Backends, b)
	}
	e.finish(viaL7)
	return nil
}

func (e *explainer) endpoint(h *l7.Endpoint, peer string) (Endpoint, error) {
	ep := Endpoint{Address: h.String(), Healthy: h.Healthy, Tunnel: "plaintext"}
	if h.InternalListener != "" {
		ep.Tunnel = "HBONE to " + h.TunnelAddress
	} else {
		peer = ""
	}
	ap, err := netip.ParseAddrPort(h.Address)
	if err != nil {
		return ep, nil
	}
	if w := e.snap.WorkloadByIP(ap.Addr().String()); w != nil {
		ep.Pod, ep.Node = w.Namespace+"/"+w.Name, w.Node
	}
	ep.Inbound, err = e.inbound(ap.Addr(), ap.Port(), peer)
	return ep, err
}

// subset reads a cluster name's subset (outbound|9080|v1|FQDN, inbound-vip|9080|http/v1|FQDN) and the
// labels its DestinationRule gives it.
func (e *explainer) subset(cluster string) (string, map[string]string) {
	parts := strings.Split(cluster, "|")
	if len(parts) != 4 {
		return "", nil
	}
	name := parts[2]
	if parts[0] == "inbound-vip" {
		_, name, _ = strings.Cut(parts[2], "/")
	}
	if name == "" {
		return "", nil
	}
	if dr := e.snap.DestinationRule(parts[3]); dr != nil {
		if ss, ok := dr.Subset(name); ok {
			return name, ss.Labels
		}
	}
	return name, nil
}

// inbound is the destination side's decision for a connection to ip:port from peer (empty: plaintext).
func (e *explainer) inbound(ip netip.Addr, port uint16, peer string) (*Inbound, error) {
	w := e.snap.WorkloadByIP(ip.String())
	switch {
	case w == nil:
		return &Inbound{Allowed: true, Reason: "not a pod in the input: nothing in the mesh enforces policy there"}, nil
	case injected(w):
		p := model.Proxy{Kind: model.KindSidecar, Namespace: w.Namespace, Name: w.Name}
		cfg, err := e.src.Envoy(p)
		if err != nil {
			return nil, err
		}
		t, err := l7.Build(cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: its config does not build: %w", p.ID(), err)
		}
		dec := t.Explain(e.req, l7.Downstream{Listener: configgen.ListenerVirtualInbound, Peer: peer, Destination: netip.AddrPortFrom(ip, port)})
		in := &Inbound{Proxy: p.ID(), Layer: "L7", Peer: peer, Allowed: !dec.Denied, Reason: "no AuthorizationPolicy applies"}
		for _, v := range dec.RBAC {
			if v.Policy != "" {
				in.Policy = v.Policy
			}
		}
		if src := rbacSource(in.Policy); src != "" {
			in.Rule = src
		}
		switch {
		case dec.Denied && in.Policy != "":
			in.Reason = "denied by " + in.Policy
		case dec.Denied:
			in.Reason = "no ALLOW policy matched"
		case in.Policy != "":
			in.Reason = "allowed by " + in.Policy
		case len(dec.RBAC) > 0:
			in.Reason = "no DENY policy matched"
		}
		return in, nil
	case w.Ambient:
		zt, err := e.predictor(w.Node)
		if err != nil {
			return nil, err
		}
		v, ok := zt.Authorize(ip, peer, port)
		if !ok {
			return &Inbound{Proxy: "ztunnel/" + w.Node, Allowed: true, Reason: "ztunnel does not know the pod"}, nil
		}
		in := &Inbound{Proxy: "ztunnel/" + w.Node, Layer: "L4", Peer: peer, Allowed: v.Allowed, Policy: v.Policy, Reason: v.Reason}
		if v.Rule >= 0 {
			in.Rule = fmt.Sprintf("rules[%d]", v.Rule)
		}
		if peer == "" {
			in.Reason += " (plaintext: no peer identity)"
		}
		return in, nil
	}
	return &Inbound{Allowed: true, Reason: "the pod is not in the mesh: nothing enforces policy there"}, nil
}

// finish sums up a request that was forwarded: which destinations it reaches, or that none admits it.
func (e *explainer) finish(viaL7 bool) {
	var reach, denied []string
	share := map[string]float64{} // the chance of reaching each destination (endpoints share a cluster evenly)
	missing := 0
	for _, b := range e.report.Backends {
		if b.Missing {
			missing++
			continue
		}
		for _, ep := range b.Endpoints {
			name := ep.Pod
			if name == "" {
				name = ep.Address
			}
			if ep.Inbound != nil && !ep.Inbound.Allowed {
				denied = append(denied, fmt.Sprintf("%s (%s: %s)", name, ep.Inbound.Proxy, ep.Inbound.Reason))
				continue
			}
			if _, seen := share[name]; !seen {
				reach = append(reach, name)
			}
			share[name] += b.Probability / float64(len(b.Endpoints))
		}
	}
	for i, name := range reach {
		reach[i] = fmt.Sprintf("%s (%.4g%%)", name, share[name]*100)
	}
	switch {
	case len(reach) > 0:
		e.report.Result = Result{Outcome: OutcomeForwarded, Summary: "reaches " + strings.Join(reach, ", ")}
		if len(denied) > 0 {
			e.note("refused at some destinations: %s", strings.Join(denied, "; "))
		}
	case len(denied) > 0:
		r := Result{Outcome: OutcomeDenied, Summary: "every destination refuses the connection: " + strings.Join(denied, "; ")}
		if viaL7 {
			r.Status = http.StatusServiceUnavailable
			r.Summary += "; the proxy answers 503"
		} else {
			r.Summary += "; the client's connection is closed"
		}
		e.report.Result = r
	case missing > 0:
		e.report.Result = Result{Outcome: OutcomeFailed, Status: http.StatusServiceUnavailable, Summary: "the route's cluster is missing: the proxy answers 503 (flag NC)"}
	default:
		r := Result{Outcome: OutcomeFailed, Summary: "no endpoints"}
		if viaL7 {
			r.Status = http.StatusServiceUnavailable
			r.Summary = "no healthy upstream: the proxy answers 503"
		}
		e.report.Result = r
	}
}
