package xds

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"
)

// MeshlabSynczPath is where the control plane serves SyncStatus over HTTP; /debug/syncz is istiod's shape.
const MeshlabSynczPath = "/debug/meshlab/syncz"

// SyncStatus is the body of /debug/meshlab/syncz: every connected proxy and, per type, what was sent and what it
// acknowledged. `meshlab proxy-status` reads it.
type SyncStatus struct {
	ControlPlane string        `json:"control_plane"`
	Version      string        `json:"version,omitempty"` // ControlPlaneVersion
	Proxies      []ProxyStatus `json:"proxies"`
}

// ProxyStatus is one connection in SyncStatus.
type ProxyStatus struct {
	ID          string       `json:"id"`
	Kind        string       `json:"kind,omitempty"`
	Namespace   string       `json:"namespace,omitempty"`
	Name        string       `json:"name,omitempty"`
	Pod         string       `json:"pod,omitempty"` // POD.NAMESPACE, from an Istio-form node ID
	Cluster     string       `json:"cluster,omitempty"`
	Version     string       `json:"version,omitempty"`
	Delta       bool         `json:"delta"`
	ConnectedAt time.Time    `json:"connected_at"`
	Types       []TypeStatus `json:"types"`
}

// TypeStatus is the sync state of one type on one proxy. The proxy is in sync when AckedNonce equals
// SentNonce; NackError is the error of the last rejected response, cleared by the next ACK.
type TypeStatus struct {
	TypeURL      string    `json:"type_url"`
	Type         string    `json:"type"` // CDS, LDS, EDS, RDS, WDS, WADS...
	SentVersion  string    `json:"sent_version,omitempty"`
	SentNonce    string    `json:"sent_nonce,omitempty"`
	AckedVersion string    `json:"acked_version,omitempty"`
	AckedNonce   string    `json:"acked_nonce,omitempty"`
	NackVersion  string    `json:"nack_version,omitempty"`
	NackError    string    `json:"nack_error,omitempty"`
	Resources    int       `json:"resources"`
	LastPush     time.Time `json:"last_push,omitzero"`
	LastAck      time.Time `json:"last_ack,omitzero"`
	LastNack     time.Time `json:"last_nack,omitzero"`
}

// Synced reports whether the proxy acknowledged the last response of this type.
func (t TypeStatus) Synced() bool { return t.SentNonce != "" && t.AckedNonce == t.SentNonce }

// Type returns the status of one type URL, if the proxy subscribes to it.
func (p ProxyStatus) Type(typeURL string) (TypeStatus, bool) {
	for _, t := range p.Types {
		if t.TypeURL == typeURL {
			return t, true
		}
	}
	return TypeStatus{}, false
}

// SyncState is a type's sync state as proxy-status prints it.
type SyncState string

// Sync states.
const (
	NotSent SyncState = "NOT SENT" // nothing sent yet
	Nacked  SyncState = "NACKED"   // the proxy rejected the last response; it keeps its previous config
	Synced  SyncState = "SYNCED"   // the proxy acknowledged the last response
	Stale   SyncState = "STALE"    // sent, not acknowledged yet
)

// State returns the type's sync state. Both `meshlab proxy-status` and the istio.io/debug/syncz answer
// (istioctl proxy-status) show it.
func (t TypeStatus) State() SyncState {
	switch {
	case t.SentNonce == "":
		return NotSent
	case t.NackError != "":
		return Nacked
	case t.Synced():
		return Synced
	}
	return Stale
}

// DisplayName is the proxy's name as istioctl prints it (and asks for it): pod.namespace (a waypoint
// replica's pod, not its Gateway), else name.namespace, else the node's name or ID.
func (p ProxyStatus) DisplayName() string {
	switch {
	case p.Pod != "":
		return p.Pod
	case p.Name != "" && p.Namespace != "":
		return p.Name + "." + p.Namespace
	case p.Name != "":
		return p.Name
	}
	return p.ID
}

// SyncStatus returns the sync state of every connected proxy, sorted by proxy ID.
func (s *Server) SyncStatus() SyncStatus {
	out := SyncStatus{ControlPlane: s.id, Version: ControlPlaneVersion(), Proxies: []ProxyStatus{}}
	for _, c := range s.connections() {
		out.Proxies = append(out.Proxies, c.status())
	}
	slices.SortFunc(out.Proxies, func(a, b ProxyStatus) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return a.ConnectedAt.Compare(b.ConnectedAt)
	})
	return out
}

// status returns the connection's sync state.
func (c *connection) status() ProxyStatus {
	st, _ := c.snapshot()
	return st
}

// snapshot returns the connection's sync state and, per type, the resources last sent (sorted by name),
// read at one instant.
func (c *connection) snapshot() (ProxyStatus, map[string][]*discovery.Resource) {
	p := c.proxy
	ps := ProxyStatus{ID: p.ID, Kind: p.Kind, Namespace: p.Namespace, Name: p.Name, Pod: p.Pod, Cluster: p.Cluster,
		Version: p.Version, Delta: c.delta, ConnectedAt: c.connectedAt}
	sent := map[string][]*discovery.Resource{}
	c.mu.Lock()
	defer c.mu.Unlock()
	types := slices.Collect(maps.Keys(c.types))
	sortTypes(types)
	for _, t := range types {
		st := c.types[t]
		ps.Types = append(ps.Types, TypeStatus{
			TypeURL: t, Type: xdstype.Short(t),
			SentVersion: st.SentVersion, SentNonce: st.SentNonce,
			AckedVersion: st.AckedVersion, AckedNonce: st.AckedNonce,
			NackVersion: st.NackVersion, NackError: st.NackError,
			Resources: len(st.sent),
			LastPush:  st.LastPush, LastAck: st.LastAck, LastNack: st.LastNack,
		})
		sent[t] = slices.SortedFunc(maps.Values(st.sent), func(a, b *discovery.Resource) int { return strings.Compare(a.Name, b.Name) })
	}
	return ps, sent
}

// findConnection returns the newest connection of the proxy with this ID, or with this display name
// (pod.namespace, as istioctl names a pod; or name.namespace).
func (s *Server) findConnection(id string) *connection {
	var c *connection
	for _, cc := range s.connections() {
		p := cc.proxy
		match := p.ID == id || p.Pod == id || (p.Name != "" && p.Namespace != "" && p.Name+"."+p.Namespace == id)
		if match && (c == nil || cc.connectedAt.After(c.connectedAt)) {
			c = cc
		}
	}
	return c
}

// ConfigDump is the body of /debug/config_dump?proxy=ID: the resources last sent to a proxy, per type.
// Resources the proxy rejected are still shown (they are what was sent); the type's status says so.
type ConfigDump struct {
	Proxy string           `json:"proxy"`
	Types []TypeConfigDump `json:"types"`
}

// TypeConfigDump is one type in a ConfigDump.
type TypeConfigDump struct {
	TypeStatus
	Resources []json.RawMessage `json:"resources"`
}

// ConfigDump returns what was last sent to the proxy with this ID or name.namespace (its newest
// connection).
func (s *Server) ConfigDump(proxyID string) (ConfigDump, bool) {
	c := s.findConnection(proxyID)
	if c == nil {
		return ConfigDump{}, false
	}
	status, sent := c.snapshot()
	dump := ConfigDump{Proxy: c.proxy.ID}
	for _, ts := range status.Types {
		td := TypeConfigDump{TypeStatus: ts, Resources: []json.RawMessage{}}
		for _, r := range sent[ts.TypeURL] {
			td.Resources = append(td.Resources, resourceJSON(r))
		}
		dump.Types = append(dump.Types, td)
	}
	return dump, true
}

// resourceJSON renders a resource as {"name", "version", "resource"} with the resource in protojson; a
// type not linked into this binary is shown without its body.
func resourceJSON(r *discovery.Resource) json.RawMessage {
	v := struct {
		Name     string          `json:"name"`
		Version  string          `json:"version"`
		Resource json.RawMessage `json:"resource,omitempty"`
	}{Name: r.GetName(), Version: r.GetVersion()}
	if r.GetResource() != nil {
		if b, err := protojson.Marshal(r.GetResource()); err == nil {
			v.Resource = b
		}
	}
	b, _ := json.Marshal(v)
	return b
}

// IstioSyncStatus is one proxy in istiod's /debug/syncz (pilot's xds.SyncStatus JSON): what `istioctl
// version` reads for the data plane's versions. Nonces are the last sent and acknowledged per type.
type IstioSyncStatus struct {
	ClusterID     string `json:"cluster_id,omitempty"`
	ProxyID       string `json:"proxy,omitempty"`
	ProxyType     string `json:"proxy_type,omitempty"`
	ProxyVersion  string `json:"proxy_version,omitempty"`
	IstioVersion  string `json:"istio_version,omitempty"`
	ClusterSent   string `json:"cluster_sent,omitempty"`
	ClusterAcked  string `json:"cluster_acked,omitempty"`
	ListenerSent  string `json:"listener_sent,omitempty"`
	ListenerAcked string `json:"listener_acked,omitempty"`
	RouteSent     string `json:"route_sent,omitempty"`
	RouteAcked    string `json:"route_acked,omitempty"`
	EndpointSent  string `json:"endpoint_sent,omitempty"`
	EndpointAcked string `json:"endpoint_acked,omitempty"`
}

// IstioSyncz is st in istiod's /debug/syncz shape, one entry per proxy.
func IstioSyncz(st SyncStatus) []IstioSyncStatus {
	out := []IstioSyncStatus{}
	for _, p := range st.Proxies {
		e := IstioSyncStatus{ClusterID: p.Cluster, ProxyID: p.DisplayName(), ProxyVersion: p.Version, IstioVersion: p.Version}
		switch p.Kind {
		case KindWaypoint, KindGateway:
			e.ProxyType = "router" // Istio's node type for gateways and waypoints
		default:
			e.ProxyType = p.Kind
		}
		for _, t := range p.Types {
			switch t.TypeURL {
			case xdstype.Cluster:
				e.ClusterSent, e.ClusterAcked = t.SentNonce, t.AckedNonce
			case xdstype.Listener:
				e.ListenerSent, e.ListenerAcked = t.SentNonce, t.AckedNonce
			case xdstype.Route:
				e.RouteSent, e.RouteAcked = t.SentNonce, t.AckedNonce
			case xdstype.Endpoint:
				e.EndpointSent, e.EndpointAcked = t.SentNonce, t.AckedNonce
			}
		}
		out = append(out, e)
	}
	return out
}

// RegisterHTTP adds the debug endpoints to mux: /debug/syncz in istiod's shape (for istioctl),
// /debug/meshlab/syncz in meshlab's (SyncStatus: types, versions, NACK errors, ages), /debug/config_dump?proxy=ID,
// /version as istiod's (for istioctl version) and /metrics.
func (s *Server) RegisterHTTP(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/syncz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, IstioSyncz(s.SyncStatus()))
	})
	mux.HandleFunc("GET "+MeshlabSynczPath, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.SyncStatus())
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		// istiod's answer: {"clientVersion": BuildInfo}; istioctl version shows its version.
		writeJSON(w, map[string]BuildInfo{"clientVersion": buildInfo()})
	})
	mux.HandleFunc("GET /debug/config_dump", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("proxy")
		if id == "" {
			http.Error(w, "missing ?proxy=ID", http.StatusBadRequest)
			return
		}
		dump, ok := s.ConfigDump(id)
		if !ok {
			http.Error(w, fmt.Sprintf("proxy %q is not connected", id), http.StatusNotFound)
			return
		}
		writeJSON(w, dump)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
