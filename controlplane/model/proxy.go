package model

import (
	"fmt"
	"strings"
)

// ProxyKind is the kind of proxy that receives config.
type ProxyKind string

// Proxy kinds.
const (
	KindWaypoint ProxyKind = "waypoint"
	KindSidecar  ProxyKind = "sidecar"
	KindZtunnel  ProxyKind = "ztunnel"
	// KindGateway is an ingress gateway (a Gateway of class istio).
	KindGateway ProxyKind = "gateway"
)

// Proxy is one config consumer. ProxyFromID fills Kind, Namespace, Name (and Node for ztunnel); Resolve fills
// the rest from a snapshot. The live xDS server builds the same struct from a client's node metadata.
type Proxy struct {
	Kind      ProxyKind
	Namespace string // waypoint, gateway and sidecar
	// Name is the waypoint's or gateway's Gateway name, the sidecar's pod name, or the ztunnel's node.
	Name           string
	Pod            string // the proxy's own pod, when known
	Node           string
	ServiceAccount string
	IPs            []string
}

// ID returns the proxy's render ID: waypoint/NS/NAME, gateway/NS/NAME, sidecar/NS/POD or ztunnel/NODE.
func (p Proxy) ID() string {
	if p.Kind == KindZtunnel {
		return string(p.Kind) + "/" + p.Name
	}
	return string(p.Kind) + "/" + p.Namespace + "/" + p.Name
}

// ProxyFromID parses waypoint/NS/NAME, gateway/NS/NAME, sidecar/NS/POD or ztunnel/NODE.
func ProxyFromID(id string) (Proxy, error) {
	parts := strings.Split(id, "/")
	for _, p := range parts {
		if p == "" {
			return Proxy{}, fmt.Errorf("proxy id %q has an empty part; want waypoint/NAMESPACE/NAME, gateway/NAMESPACE/NAME, sidecar/NAMESPACE/POD or ztunnel/NODE", id)
		}
	}
	switch kind := ProxyKind(parts[0]); kind {
	case KindWaypoint, KindGateway, KindSidecar:
		if len(parts) != 3 {
			return Proxy{}, fmt.Errorf("proxy id %q: want %s/NAMESPACE/NAME", id, kind)
		}
		return Proxy{Kind: kind, Namespace: parts[1], Name: parts[2]}, nil
	case KindZtunnel:
		if len(parts) != 2 {
			return Proxy{}, fmt.Errorf("proxy id %q: want ztunnel/NODE", id)
		}
		return Proxy{Kind: kind, Name: parts[1], Node: parts[1]}, nil
	}
	return Proxy{}, fmt.Errorf("proxy id %q: unknown kind %q; want waypoint, gateway, sidecar or ztunnel", id, parts[0])
}

// NotFoundError says a proxy id names nothing in the snapshot.
type NotFoundError struct{ Msg string }

func (e *NotFoundError) Error() string { return e.Msg }

// Resolve checks that the proxy exists in the snapshot and fills in its pod, node, service account and IPs.
func (s *Snapshot) Resolve(p Proxy) (Proxy, error) {
	switch p.Kind {
	case KindWaypoint:
		w := s.Waypoint(p.Namespace, p.Name)
		if w == nil {
			return p, &NotFoundError{fmt.Sprintf("no waypoint %s/%s: no Gateway with gatewayClassName %s by that name (waypoints: %s)",
				p.Namespace, p.Name, WaypointGatewayClass, s.waypointNames())}
		}
		p.ServiceAccount = p.Name // the waypoint controller runs each waypoint as a service account of its name
		if w.ServiceAccount != "" {
			p.ServiceAccount = p.Name + "-istio-waypoint"
		}
		for _, wl := range s.workloads {
			if wl.Namespace == p.Namespace && wl.Labels[LabelGatewayName] == p.Name {
				if p.Pod == "" {
					p.Pod, p.Node, p.ServiceAccount = wl.Name, wl.Node, wl.ServiceAccount
				}
				p.IPs = append(p.IPs, wl.IPs...)
			}
		}
		if len(p.IPs) == 0 {
			p.IPs = append(p.IPs, w.Addresses...)
		}
	case KindGateway:
		g := s.IngressGateway(p.Namespace, p.Name)
		if g == nil {
			return p, &NotFoundError{fmt.Sprintf("no gateway %s/%s: no Gateway with gatewayClassName %s by that name", p.Namespace, p.Name, IngressGatewayClass)}
		}
		p.ServiceAccount = g.DeploymentName() // the gateway controller's service account
		for _, wl := range s.workloads {
			if wl.Namespace == p.Namespace && wl.Labels[LabelGatewayName] == p.Name {
				if p.Pod == "" {
					p.Pod, p.Node, p.ServiceAccount = wl.Name, wl.Node, wl.ServiceAccount
				}
				p.IPs = append(p.IPs, wl.IPs...)
			}
		}
	case KindSidecar:
		wl := s.Workload(p.Namespace, p.Name)
		if wl == nil {
			return p, &NotFoundError{fmt.Sprintf("no pod %s/%s with an IP", p.Namespace, p.Name)}
		}
		p.Pod, p.Node, p.ServiceAccount, p.IPs = wl.Name, wl.Node, wl.ServiceAccount, wl.IPs
	case KindZtunnel:
		p.Node = p.Name
	default:
		return p, fmt.Errorf("unknown proxy kind %q", p.Kind)
	}
	return p, nil
}

func (s *Snapshot) waypointNames() string {
	if len(s.waypoints) == 0 {
		return "none"
	}
	var names []string
	for _, w := range s.waypoints {
		names = append(names, w.Namespace+"/"+w.Name)
	}
	return strings.Join(names, ", ")
}
