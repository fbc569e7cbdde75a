// Package configdump is ztunnel's admin config dump (GET localhost:15000/config_dump) in the shape Istio's
// ztunnel serializes it, so that `istioctl ztunnel-config` reads meshlab's ztunnel as it reads the real one:
// the workload API state as ztunnel holds it (workloads, services with their endpoints keyed by workload
// uid, authorization policies as rule/clause/match lists), the certificates it holds, the pods it serves
// and their open connections (workloadState), its settings (config) and build (version).
//
// Field names, casing and nesting follow ztunnel's serde serialization (camelCase, enums as their
// variant names, "network/IP" addresses); struct fields are in alphabetical order of their JSON names
// because ztunnel renders the dump through a sorted JSON map. Fields meshlab has no value for (locality,
// load balancing, CIDR VIPs, application tunnels) are left out as ztunnel leaves out its defaults.
//
// One key is meshlab's own: "meshlab" (connections with their identities, the enrolment agent's view and
// the workload API client's sync state), the way ztunnel adds keys of its own admin handlers. `meshlab ztunnel` serves the dump;
// `meshlab ztunnel-config` reads it (and real ztunnel's).
package configdump

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/dataplane/ztunnel/agent"
	"github.com/meshlab/meshlab/dataplane/ztunnel/workloadxds"
)

// Dump is the whole config dump.
type Dump struct {
	Certificates []Certificates `json:"certificates"`
	Config       Config         `json:"config"`
	Meshlab      *Meshlab       `json:"meshlab,omitempty"`
	Policies     []Policy       `json:"policies"`
	Services     []Service      `json:"services"`
	// StagedServices holds endpoints of services ztunnel has not been sent yet: "namespace/hostname" to
	// workload uid to endpoint.
	StagedServices map[string]map[string]Endpoint `json:"stagedServices"`
	StaticConfig   StaticConfig                   `json:"staticConfig"`
	Version        BuildInfo                      `json:"version"`
	// WorkloadState is the pods this ztunnel serves (in-pod mode), keyed by pod uid.
	WorkloadState map[string]WorkloadState `json:"workloadState"`
	Workloads     []Workload               `json:"workloads"`
}

// Workload is a workload as ztunnel holds it. Empty optional fields are left out, as ztunnel does.
type Workload struct {
	AuthorizationPolicies []string        `json:"authorizationPolicies,omitempty"`
	CanonicalName         string          `json:"canonicalName,omitempty"`
	CanonicalRevision     string          `json:"canonicalRevision,omitempty"`
	Capacity              uint32          `json:"capacity"`
	ClusterID             string          `json:"clusterId"`
	Hostname              string          `json:"hostname,omitempty"`
	Name                  string          `json:"name"`
	Namespace             string          `json:"namespace"`
	NativeTunnel          bool            `json:"nativeTunnel,omitempty"`
	Network               string          `json:"network,omitempty"`
	NetworkGateway        *GatewayAddress `json:"networkGateway,omitempty"`
	NetworkMode           string          `json:"networkMode"` // Standard or HostNetwork
	Node                  string          `json:"node,omitempty"`
	Protocol              string          `json:"protocol"` // TCP or HBONE
	ServiceAccount        string          `json:"serviceAccount,omitempty"`
	Services              []string        `json:"services,omitempty"` // "namespace/hostname"
	Status                string          `json:"status"`             // Healthy or Unhealthy
	TrustDomain           string          `json:"trustDomain,omitempty"`
	UID                   string          `json:"uid,omitempty"`
	Waypoint              *GatewayAddress `json:"waypoint,omitempty"`
	WorkloadIPs           []string        `json:"workloadIps"`
	WorkloadName          string          `json:"workloadName,omitempty"`
	WorkloadType          string          `json:"workloadType,omitempty"` // deployment, pod, cronjob, job
}

// GatewayAddress points at a waypoint or network gateway: Destination is "network/IP" for an address and
// "namespace/hostname" for a service.
type GatewayAddress struct {
	Destination   string `json:"destination"`
	HBONEMtlsPort uint16 `json:"hboneMtlsPort"`
}

// Service is a service as ztunnel holds it.
type Service struct {
	Canonical bool `json:"canonical"`
	// Endpoints are keyed by workload uid.
	Endpoints       map[string]Endpoint `json:"endpoints"`
	Hostname        string              `json:"hostname"`
	Name            string              `json:"name"`
	Namespace       string              `json:"namespace"`
	Ports           map[uint16]uint16   `json:"ports"` // service port -> target port
	SubjectAltNames []string            `json:"subjectAltNames"`
	VIPs            []string            `json:"vips"`       // "network/IP"
	Visibility      string              `json:"visibility"` // Public or Namespace
	Waypoint        *GatewayAddress     `json:"waypoint,omitempty"`
}

// Endpoint is one workload behind a service.
type Endpoint struct {
	Port        map[uint16]uint16 `json:"port"`
	Status      string            `json:"status"`
	WorkloadUID string            `json:"workloadUid"`
}

// Policy is an authorization policy as ztunnel holds it. Rules are ORed; each rule is a list of clauses,
// all of which must match; a clause matches when any of its matches does.
type Policy struct {
	Action    string      `json:"action"` // Allow or Deny
	DryRun    bool        `json:"dryRun"`
	Name      string      `json:"name"`
	Namespace string      `json:"namespace"`
	Rules     [][][]Match `json:"rules"`
	Scope     string      `json:"scope"` // Global, Namespace or WorkloadSelector
}

// Match is one match of a clause: every non-empty field must match (within a field, any entry).
type Match struct {
	DestinationIPs      []string              `json:"destinationIps,omitempty"` // IP/length
	DestinationPorts    []uint16              `json:"destinationPorts,omitempty"`
	Namespaces          []StringMatch         `json:"namespaces,omitempty"`
	NotDestinationIPs   []string              `json:"notDestinationIps,omitempty"`
	NotDestinationPorts []uint16              `json:"notDestinationPorts,omitempty"`
	NotNamespaces       []StringMatch         `json:"notNamespaces,omitempty"`
	NotPrincipals       []StringMatch         `json:"notPrincipals,omitempty"`
	NotServiceAccounts  []ServiceAccountMatch `json:"notServiceAccounts,omitempty"`
	NotSourceIPs        []string              `json:"notSourceIps,omitempty"`
	Principals          []StringMatch         `json:"principals,omitempty"`
	ServiceAccounts     []ServiceAccountMatch `json:"serviceAccounts,omitempty"`
	SourceIPs           []string              `json:"sourceIps,omitempty"`
}

// StringMatch is ztunnel's externally tagged string match: {"Exact": v}, {"Prefix": v}, {"Suffix": v} or
// {"Presence": []}.
type StringMatch struct {
	Exact    *string         `json:"Exact,omitempty"`
	Prefix   *string         `json:"Prefix,omitempty"`
	Suffix   *string         `json:"Suffix,omitempty"`
	Presence json.RawMessage `json:"Presence,omitempty"`
}

// ServiceAccountMatch matches an identity's namespace and service account.
type ServiceAccountMatch struct {
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount"`
}

// Certificates is what ztunnel holds for one identity. State is Available, Initializing or
// "Unavailable: reason"; the chains are empty unless Available.
type Certificates struct {
	CertChain []Cert `json:"certChain"` // leaf first, then intermediates
	Identity  string `json:"identity"`
	RootCerts []Cert `json:"rootCerts"`
	State     string `json:"state"`
}

// Cert is one certificate: base64 of its PEM, its serial in decimal, its validity in RFC 3339 (seconds, UTC).
type Cert struct {
	ExpirationTime string `json:"expirationTime"`
	Pem            string `json:"pem"`
	SerialNumber   string `json:"serialNumber"`
	ValidFrom      string `json:"validFrom"`
}

// WorkloadState is one pod ztunnel serves: Pending or Up, who it is and its open connections.
type WorkloadState struct {
	Connections *Connections `json:"connections,omitempty"`
	Info        WorkloadInfo `json:"info"`
	State       string       `json:"state"`
}

// WorkloadInfo names a pod ztunnel serves.
type WorkloadInfo struct {
	Name           string `json:"name"`
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount"`
}

// Connections are a served pod's open connections. Inbound: Src is the peer, ActualDst the pod's
// address and port the connection was delivered to, OriginalDst the service host the peer named (or
// null). Outbound: Src is the pod's address, OriginalDst where the pod connected, ActualDst where ztunnel
// connected (the destination's HBONE port, or the destination itself for TCP).
type Connections struct {
	Inbound  []InboundConnection  `json:"inbound"`
	Outbound []OutboundConnection `json:"outbound"`
}

// InboundConnection is one connection into a served pod.
type InboundConnection struct {
	ActualDst   string  `json:"actualDst"`
	OriginalDst *string `json:"originalDst"`
	Protocol    string  `json:"protocol"` // TCP or HBONE
	Src         string  `json:"src"`
}

// OutboundConnection is one connection out of a served pod.
type OutboundConnection struct {
	ActualDst   string `json:"actualDst"`
	OriginalDst string `json:"originalDst"`
	Protocol    string `json:"protocol"` // TCP or HBONE
	Src         string `json:"src"`
}

// StaticConfig is ztunnel's local (file) workload config; meshlab's ztunnel has none.
type StaticConfig struct {
	Policies  []Policy   `json:"policies"`
	Services  []Service  `json:"services"`
	Workloads []Workload `json:"workloads"`
}

// BuildInfo is ztunnel's version block. RustVersion carries the Go version meshlab was built with.
type BuildInfo struct {
	BuildProfile   string `json:"buildProfile"`
	BuildStatus    string `json:"buildStatus"`
	CryptoProvider string `json:"cryptoProvider"`
	GitRevision    string `json:"gitRevision"`
	IstioVersion   string `json:"istioVersion"`
	RustVersion    string `json:"rustVersion"`
	Version        string `json:"version"`
}

// Config is the part of ztunnel's settings that meshlab's ztunnel has, under ztunnel's names. Optional
// settings are null when unset, as in ztunnel.
type Config struct {
	AdminAddr            *SocketAddress `json:"adminAddr"`
	CAAddress            *string        `json:"caAddress"`
	CARootCert           RootCert       `json:"caRootCert"`
	ClusterDomain        string         `json:"clusterDomain"`
	ClusterID            string         `json:"clusterId"`
	DNSProxy             bool           `json:"dnsProxy"`
	InboundAddr          string         `json:"inboundAddr"`
	InboundPlaintextAddr string         `json:"inboundPlaintextAddr"`
	LocalNode            *string        `json:"localNode"`
	Network              string         `json:"network"`
	OutboundAddr         string         `json:"outboundAddr"`
	Proxy                bool           `json:"proxy"`
	ProxyMode            string         `json:"proxyMode"` // Shared
	ReadinessAddr        *SocketAddress `json:"readinessAddr"`
	SecretTTL            Duration       `json:"secretTtl"`
	StatsAddr            *SocketAddress `json:"statsAddr"`
	XDSAddress           *string        `json:"xdsAddress"`
	XDSOnDemand          bool           `json:"xdsOnDemand"`
	XDSRootCert          RootCert       `json:"xdsRootCert"`
	ZtunnelIdentity      *string        `json:"ztunnelIdentity"`
	ZtunnelWorkload      *WorkloadInfo  `json:"ztunnelWorkload"`
}

// SocketAddress is ztunnel's listener address, {"SocketAddr": "IP:port"}.
type SocketAddress struct {
	SocketAddr string `json:"SocketAddr"`
}

// RootCert is where a root certificate comes from, {"File": path}.
type RootCert struct {
	File string `json:"File"`
}

// Duration is a Rust Duration as serde writes it.
type Duration struct {
	Nanos uint32 `json:"nanos"`
	Secs  uint64 `json:"secs"`
}

// DurationOf converts a Go duration.
func DurationOf(d time.Duration) Duration {
	return Duration{Secs: uint64(d / time.Second), Nanos: uint32(d % time.Second)}
}

// Meshlab is meshlab's own key: the node, the open connections with the identities and counters of the
// access log, the pods the enrolment agent captured and the workload API client's sync state.
type Meshlab struct {
	Connections []Connection       `json:"connections"`
	Enrolled    []agent.Enrolment  `json:"enrolled"`
	Node        string             `json:"node"`
	XDS         workloadxds.Status `json:"xds"`
}

// Connection is one open connection as meshlab's ztunnel tracks it (ztunnel.Connection with JSON names).
type Connection struct {
	BytesRecv    int64     `json:"bytesRecv"`
	BytesSent    int64     `json:"bytesSent"`
	Direction    string    `json:"direction"` // inbound or outbound
	DstAddr      string    `json:"dstAddr,omitempty"`
	DstIdentity  string    `json:"dstIdentity,omitempty"`
	DstService   string    `json:"dstService,omitempty"`
	Local        string    `json:"local"`
	Protocol     string    `json:"protocol"`
	Remote       string    `json:"remote"`
	RemoteTarget string    `json:"remoteTarget,omitempty"`
	SrcAddr      string    `json:"srcAddr,omitempty"`
	SrcIdentity  string    `json:"srcIdentity,omitempty"`
	Start        time.Time `json:"start"`
	Workload     string    `json:"workload"` // namespace/name
}

// Sources is what a dump is built from.
type Sources struct {
	Node string
	// Addresses and Authorizations are the workload API resources ztunnel applied, by resource name.
	Addresses      map[string]*workloadapi.Address
	Authorizations map[string]*security.Authorization
	// SVIDs are the certificates ztunnel holds (its own and its pods'); Roots are the trust roots.
	SVIDs       []*x509svid.SVID
	Roots       []*x509.Certificate
	Connections []ztunnel.Connection
	Enrolled    []agent.Enrolment
	XDS         workloadxds.Status
	Config      Config
	Version     BuildInfo
}

// Build assembles a dump as ztunnel would show the same state: workloads sorted by uid, services by
// hostname, policies by namespace/name, certificates by identity.
func Build(s Sources) Dump {
	d := Dump{
		Certificates: []Certificates{}, Config: s.Config, Policies: []Policy{}, Services: []Service{},
		StagedServices: map[string]map[string]Endpoint{},
		StaticConfig:   StaticConfig{Policies: []Policy{}, Services: []Service{}, Workloads: []Workload{}},
		Version:        s.Version, WorkloadState: map[string]WorkloadState{}, Workloads: []Workload{},
		Meshlab: &Meshlab{Connections: []Connection{}, Enrolled: s.Enrolled, Node: s.Node, XDS: s.XDS},
	}
	if d.Meshlab.Enrolled == nil {
		d.Meshlab.Enrolled = []agent.Enrolment{}
	}
	for _, c := range s.Connections {
		d.Meshlab.Connections = append(d.Meshlab.Connections, Connection{
			BytesRecv: c.BytesRecv, BytesSent: c.BytesSent, Direction: c.Direction, DstAddr: c.DstAddr,
			DstIdentity: c.DstIdentity, DstService: c.DstService, Local: c.Local, Protocol: c.Protocol, Remote: c.Remote,
			RemoteTarget: c.RemoteTarget, SrcAddr: c.SrcAddr, SrcIdentity: c.SrcIdentity, Start: c.Start, Workload: c.Workload,
		})
	}

	var workloads []*workloadapi.Workload
	services := map[string]int{} // "namespace/hostname" -> index in d.Services
	for _, a := range s.Addresses {
		if w := a.GetWorkload(); w != nil {
			workloads = append(workloads, w)
		}
		if svc := a.GetService(); svc != nil {
			d.Services = append(d.Services, service(svc))
		}
	}
	sort.Slice(d.Services, func(i, j int) bool {
		a, b := d.Services[i], d.Services[j]
		if a.Hostname != b.Hostname {
			return a.Hostname < b.Hostname
		}
		return a.Namespace < b.Namespace
	})
	for i, svc := range d.Services {
		services[svc.Namespace+"/"+svc.Hostname] = i
	}
	sort.Slice(workloads, func(i, j int) bool { return workloads[i].GetUid() < workloads[j].GetUid() })
	byUID := map[string]Workload{}
	for _, w := range workloads {
		zw := workload(w)
		d.Workloads = append(d.Workloads, zw)
		byUID[zw.UID] = zw
		for key, pl := range w.GetServices() {
			ep := Endpoint{Port: ports(pl.GetPorts()), Status: zw.Status, WorkloadUID: zw.UID}
			if i, ok := services[key]; ok {
				d.Services[i].Endpoints[zw.UID] = ep
				continue
			}
			if d.StagedServices[key] == nil {
				d.StagedServices[key] = map[string]Endpoint{}
			}
			d.StagedServices[key][zw.UID] = ep
		}
	}

	for _, a := range s.Authorizations {
		d.Policies = append(d.Policies, policy(a))
	}
	sort.Slice(d.Policies, func(i, j int) bool {
		a, b := d.Policies[i], d.Policies[j]
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})

	seen := map[string]bool{}
	for _, svid := range s.SVIDs {
		id := svid.ID.String()
		if seen[id] {
			continue
		}
		seen[id] = true
		c := Certificates{CertChain: []Cert{}, Identity: id, RootCerts: []Cert{}, State: "Available"}
		for _, cert := range svid.Certificates {
			c.CertChain = append(c.CertChain, certOf(cert))
		}
		for _, r := range s.Roots {
			c.RootCerts = append(c.RootCerts, certOf(r))
		}
		d.Certificates = append(d.Certificates, c)
	}
	sort.Slice(d.Certificates, func(i, j int) bool { return d.Certificates[i].Identity < d.Certificates[j].Identity })

	for _, e := range s.Enrolled {
		key := e.PodUID
		if key == "" {
			key = e.WorkloadUID
		}
		sa := byUID[e.WorkloadUID].ServiceAccount
		if sa == "" {
			sa = "default"
		}
		st := WorkloadState{
			Connections: &Connections{Inbound: []InboundConnection{}, Outbound: []OutboundConnection{}},
			Info:        WorkloadInfo{Name: e.Name, Namespace: e.Namespace, ServiceAccount: sa},
			State:       "Up",
		}
		for _, c := range s.Connections {
			if c.Workload != e.Namespace+"/"+e.Name {
				continue
			}
			if c.Direction == ztunnel.Outbound {
				st.Connections.Outbound = append(st.Connections.Outbound, OutboundConnection{
					ActualDst: c.Remote, OriginalDst: c.DstAddr, Protocol: c.Protocol, Src: c.SrcAddr,
				})
				continue
			}
			dst := c.Local // plaintext: the pod's own address and port
			if c.Protocol == "HBONE" {
				dst = c.RemoteTarget // HBONE: the tunnel's target in the pod, not its 15008
			}
			st.Connections.Inbound = append(st.Connections.Inbound, InboundConnection{
				ActualDst: dst, Protocol: c.Protocol, Src: c.Remote,
			})
		}
		d.WorkloadState[key] = st
	}
	return d
}

func workload(w *workloadapi.Workload) Workload {
	out := Workload{
		AuthorizationPolicies: w.GetAuthorizationPolicies(),
		CanonicalName:         w.GetCanonicalName(), CanonicalRevision: w.GetCanonicalRevision(),
		Capacity: 1, ClusterID: orDefault(w.GetClusterId(), "Kubernetes"), Hostname: w.GetHostname(),
		Name: w.GetName(), Namespace: w.GetNamespace(), NativeTunnel: w.GetNativeTunnel(), Network: w.GetNetwork(),
		NetworkGateway: gateway(w.GetNetworkGateway()), NetworkMode: "Standard", Node: w.GetNode(),
		Protocol: "TCP", ServiceAccount: orDefault(w.GetServiceAccount(), "default"), Status: "Healthy",
		TrustDomain: orDefault(w.GetTrustDomain(), ztunnel.DefaultTrustDomain), UID: w.GetUid(),
		Waypoint: gateway(w.GetWaypoint()), WorkloadIPs: []string{}, WorkloadName: w.GetWorkloadName(),
		WorkloadType: strings.ToLower(w.GetWorkloadType().String()),
	}
	if w.GetTunnelProtocol() == workloadapi.TunnelProtocol_HBONE {
		out.Protocol = "HBONE"
	}
	if w.GetStatus() == workloadapi.WorkloadStatus_UNHEALTHY {
		out.Status = "Unhealthy"
	}
	for _, b := range w.GetAddresses() {
		if ip, ok := netip.AddrFromSlice(b); ok {
			out.WorkloadIPs = append(out.WorkloadIPs, ip.String())
		}
	}
	for key := range w.GetServices() {
		out.Services = append(out.Services, key)
	}
	sort.Strings(out.Services)
	return out
}

func service(s *workloadapi.Service) Service {
	out := Service{
		Endpoints: map[string]Endpoint{}, Hostname: s.GetHostname(), Name: s.GetName(), Namespace: s.GetNamespace(),
		Ports: ports(s.GetPorts()), SubjectAltNames: append([]string{}, s.GetSubjectAltNames()...), VIPs: []string{},
		Visibility: "Public", Waypoint: gateway(s.GetWaypoint()),
	}
	for _, a := range s.GetAddresses() {
		if na := networkAddress(a); na != "" {
			out.VIPs = append(out.VIPs, na)
		}
	}
	return out
}

func ports(ps []*workloadapi.Port) map[uint16]uint16 {
	out := map[uint16]uint16{}
	for _, p := range ps {
		out[uint16(p.GetServicePort())] = uint16(p.GetTargetPort())
	}
	return out
}

func networkAddress(a *workloadapi.NetworkAddress) string {
	ip, ok := netip.AddrFromSlice(a.GetAddress())
	if !ok {
		return ""
	}
	return a.GetNetwork() + "/" + ip.String()
}

func gateway(g *workloadapi.GatewayAddress) *GatewayAddress {
	if g == nil {
		return nil
	}
	out := &GatewayAddress{HBONEMtlsPort: uint16(g.GetHboneMtlsPort())}
	switch {
	case g.GetAddress() != nil:
		out.Destination = networkAddress(g.GetAddress())
	case g.GetHostname() != nil:
		out.Destination = g.GetHostname().GetNamespace() + "/" + g.GetHostname().GetHostname()
	}
	return out
}

func policy(a *security.Authorization) Policy {
	out := Policy{Action: "Allow", DryRun: a.GetDryRun(), Name: a.GetName(), Namespace: a.GetNamespace(), Rules: [][][]Match{}}
	if a.GetAction() == security.Action_DENY {
		out.Action = "Deny"
	}
	switch a.GetScope() {
	case security.Scope_GLOBAL:
		out.Scope = "Global"
	case security.Scope_NAMESPACE:
		out.Scope = "Namespace"
	default:
		out.Scope = "WorkloadSelector"
	}
	for _, g := range a.GetGroups() {
		rule := [][]Match{}
		for _, r := range g.GetRules() {
			clause := []Match{}
			for _, m := range r.GetMatches() {
				clause = append(clause, match(m))
			}
			rule = append(rule, clause)
		}
		out.Rules = append(out.Rules, rule)
	}
	return out
}

func match(m *security.Match) Match {
	out := Match{
		Namespaces: stringMatches(m.GetNamespaces()), NotNamespaces: stringMatches(m.GetNotNamespaces()),
		Principals: stringMatches(m.GetPrincipals()), NotPrincipals: stringMatches(m.GetNotPrincipals()),
		SourceIPs: prefixes(m.GetSourceIps()), NotSourceIPs: prefixes(m.GetNotSourceIps()),
		DestinationIPs: prefixes(m.GetDestinationIps()), NotDestinationIPs: prefixes(m.GetNotDestinationIps()),
	}
	for _, p := range m.GetDestinationPorts() {
		out.DestinationPorts = append(out.DestinationPorts, uint16(p))
	}
	for _, p := range m.GetNotDestinationPorts() {
		out.NotDestinationPorts = append(out.NotDestinationPorts, uint16(p))
	}
	return out
}

func stringMatches(ms []*security.StringMatch) []StringMatch {
	var out []StringMatch
	for _, m := range ms {
		switch t := m.GetMatchType().(type) {
		case *security.StringMatch_Exact:
			out = append(out, StringMatch{Exact: &t.Exact})
		case *security.StringMatch_Prefix:
			out = append(out, StringMatch{Prefix: &t.Prefix})
		case *security.StringMatch_Suffix:
			out = append(out, StringMatch{Suffix: &t.Suffix})
		case *security.StringMatch_Presence:
			out = append(out, StringMatch{Presence: json.RawMessage("[]")})
		}
	}
	return out
}

func prefixes(as []*security.Address) []string {
	var out []string
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.GetAddress())
		if !ok || int(a.GetLength()) > ip.BitLen() {
			continue // ztunnel drops what it cannot parse
		}
		out = append(out, netip.PrefixFrom(ip, int(a.GetLength())).String())
	}
	return out
}

func certOf(c *x509.Certificate) Cert {
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	return Cert{
		ExpirationTime: c.NotAfter.UTC().Format(time.RFC3339), Pem: base64.StdEncoding.EncodeToString(p),
		SerialNumber: c.SerialNumber.String(), ValidFrom: c.NotBefore.UTC().Format(time.RFC3339),
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
