// Package configdump is the shape of ztunnel's admin config dump (GET localhost:15000/config_dump): what ztunnel
// knows (workloads, services, policies), what it holds (certificates) and what it carries (connections).
// `meshlab ztunnel` serves it; `meshlab ztunnel-config` reads it.
package configdump

import (
	"crypto/x509"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/dataplane/ztunnel/agent"
	"github.com/meshlab/meshlab/dataplane/ztunnel/workloadxds"
)

// Dump is the whole config dump.
type Dump struct {
	Node         string             `json:"node"`
	Workloads    []Workload         `json:"workloads"`
	Services     []Service          `json:"services"`
	Policies     []Policy           `json:"policies"`
	Certificates []Certificate      `json:"certificates"`
	Connections  []Connection       `json:"connections"`
	Enrolled     []agent.Enrolment  `json:"enrolled"`
	XDS          workloadxds.Status `json:"xds"`
}

// Workload is one workload ztunnel knows. Waypoint is the waypoint's service name (or IP), or "None".
type Workload struct {
	UID            string `json:"uid"`
	Name           string `json:"name"`
	Namespace      string `json:"namespace"`
	Address        string `json:"address"`
	Node           string `json:"node"`
	ServiceAccount string `json:"serviceAccount"`
	Identity       string `json:"identity"`
	Protocol       string `json:"protocol"` // HBONE or TCP
	Waypoint       string `json:"waypoint"`
	// Captured: the workload runs on this node and ztunnel serves it.
	Captured bool `json:"captured"`
}

// Service is one service ztunnel knows.
type Service struct {
	Name      string   `json:"name"`
	Namespace string   `json:"namespace"`
	Hostname  string   `json:"hostname"`
	VIPs      []string `json:"vips"`
	// Ports maps service port to target port.
	Ports     map[string]uint16 `json:"ports"`
	Endpoints []string          `json:"endpoints"` // workload UIDs
	// Healthy counts the endpoints ztunnel has a workload for.
	Healthy  int    `json:"healthy"`
	Waypoint string `json:"waypoint"`
}

// Policy is one L4 authorization policy.
type Policy struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Action    string `json:"action"`
	Scope     string `json:"scope"`
	Rules     []Rule `json:"rules"`
}

// Rule is ztunnel.Rule with JSON names: every non-empty field must match; rules are ORed.
type Rule struct {
	Principals    []string `json:"principals,omitempty"`
	NotPrincipals []string `json:"notPrincipals,omitempty"`
	Namespaces    []string `json:"namespaces,omitempty"`
	NotNamespaces []string `json:"notNamespaces,omitempty"`
	Ports         []uint16 `json:"ports,omitempty"`
	NotPorts      []uint16 `json:"notPorts,omitempty"`
}

// Certificate is the SVID ztunnel holds for one identity, with its chain.
type Certificate struct {
	Identity string     `json:"identity"`
	State    string     `json:"state"` // Available
	Chain    []CertInfo `json:"certChain"`
}

// CertInfo is one certificate of a chain.
type CertInfo struct {
	Type         string    `json:"type"` // Leaf, Intermediate or Root
	SerialNumber string    `json:"serialNumber"`
	NotBefore    time.Time `json:"validFrom"`
	NotAfter     time.Time `json:"expirationTime"`
	Valid        bool      `json:"valid"`
}

// Connection is one open connection (ztunnel.Connection with JSON names).
type Connection struct {
	Workload     string    `json:"workload"` // namespace/name
	Direction    string    `json:"direction"`
	Local        string    `json:"local"`
	Remote       string    `json:"remote"`
	RemoteTarget string    `json:"remoteTarget,omitempty"`
	Protocol     string    `json:"protocol"`
	SrcIdentity  string    `json:"srcIdentity,omitempty"`
	DstIdentity  string    `json:"dstIdentity,omitempty"`
	DstService   string    `json:"dstService,omitempty"`
	Start        time.Time `json:"start"`
	BytesSent    int64     `json:"bytesSent"`
	BytesRecv    int64     `json:"bytesRecv"`
}

// Sources is what a dump is built from.
type Sources struct {
	Node        string
	Config      ztunnel.Config
	SVIDs       []*x509svid.SVID
	Roots       []*x509.Certificate
	Connections []ztunnel.Connection
	Enrolled    []agent.Enrolment
	XDS         workloadxds.Status
	Now         time.Time
}

// Build assembles a dump, sorted for stable output.
func Build(s Sources) Dump {
	if s.Now.IsZero() {
		s.Now = time.Now()
	}
	d := Dump{Node: s.Node, Workloads: []Workload{}, Services: []Service{}, Policies: []Policy{}, Certificates: []Certificate{},
		Connections: []Connection{}, Enrolled: s.Enrolled, XDS: s.XDS}
	if d.Enrolled == nil {
		d.Enrolled = []agent.Enrolment{}
	}
	vipName := map[netip.Addr]string{}
	for _, svc := range s.Config.Services {
		for _, v := range svc.VIPs {
			vipName[v] = svc.Name
		}
	}
	byIP := map[netip.Addr]string{}
	known := map[string]bool{}
	for _, w := range s.Config.Workloads {
		byIP[w.IP] = w.Name
		known[w.UID] = true
	}
	waypoint := func(g *ztunnel.GatewayAddress) string {
		switch {
		case g == nil:
			return "None"
		case !g.Address.IsValid():
			return "unresolved"
		case vipName[g.Address] != "":
			return vipName[g.Address]
		case byIP[g.Address] != "":
			return byIP[g.Address]
		}
		return g.Address.String()
	}
	captured := map[string]bool{}
	for _, e := range s.Enrolled {
		captured[e.WorkloadUID] = true
	}
	for _, w := range s.Config.Workloads {
		proto := "TCP"
		if w.Protocol == ztunnel.ProtocolHBONE {
			proto = "HBONE"
		}
		d.Workloads = append(d.Workloads, Workload{
			UID: w.UID, Name: w.Name, Namespace: w.Namespace, Address: w.IP.String(), Node: w.Node,
			ServiceAccount: w.ServiceAccount, Identity: w.Identity().String(), Protocol: proto,
			Waypoint: waypoint(w.Waypoint), Captured: captured[w.UID],
		})
	}
	for _, svc := range s.Config.Services {
		out := Service{Name: svc.Name, Namespace: svc.Namespace, Hostname: svc.Hostname, VIPs: []string{}, Ports: map[string]uint16{},
			Endpoints: append([]string{}, svc.Endpoints...), Waypoint: waypoint(svc.Waypoint)}
		for _, v := range svc.VIPs {
			out.VIPs = append(out.VIPs, v.String())
		}
		for p, tp := range svc.Ports {
			if tp == 0 {
				tp = p
			}
			out.Ports[strconv.Itoa(int(p))] = tp
		}
		for _, uid := range svc.Endpoints {
			if known[uid] {
				out.Healthy++
			}
		}
		d.Services = append(d.Services, out)
	}
	for _, p := range s.Config.Policies {
		out := Policy{Name: p.Name, Namespace: p.Namespace, Action: string(p.Action), Scope: string(p.Scope), Rules: []Rule{}}
		for _, r := range p.Rules {
			out.Rules = append(out.Rules, Rule(r))
		}
		d.Policies = append(d.Policies, out)
	}
	for _, svid := range s.SVIDs {
		c := Certificate{Identity: svid.ID.String(), State: "Available"}
		for i, cert := range svid.Certificates {
			typ := "Intermediate"
			if i == 0 {
				typ = "Leaf"
			}
			c.Chain = append(c.Chain, certInfo(cert, typ, s.Now))
		}
		for _, r := range s.Roots {
			c.Chain = append(c.Chain, certInfo(r, "Root", s.Now))
		}
		d.Certificates = append(d.Certificates, c)
	}
	sort.Slice(d.Certificates, func(i, j int) bool { return d.Certificates[i].Identity < d.Certificates[j].Identity })
	for _, c := range s.Connections {
		d.Connections = append(d.Connections, Connection{
			Workload: c.Workload, Direction: c.Direction, Local: c.Local, Remote: c.Remote, RemoteTarget: c.RemoteTarget,
			Protocol: c.Protocol, SrcIdentity: c.SrcIdentity, DstIdentity: c.DstIdentity, DstService: c.DstService,
			Start: c.Start, BytesSent: c.BytesSent, BytesRecv: c.BytesRecv,
		})
	}
	return d
}

func certInfo(c *x509.Certificate, typ string, now time.Time) CertInfo {
	return CertInfo{
		Type: typ, SerialNumber: fmt.Sprintf("%x", c.SerialNumber), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		Valid: !now.Before(c.NotBefore) && now.Before(c.NotAfter),
	}
}
