// Package admin serves an Envoy-style admin interface for meshlab's proxies: /config_dump (an
// envoy.admin.v3.ConfigDump in JSON with proto field names, as Envoy prints it), /clusters (Envoy's text format), /stats/prometheus, /ready, and
// the kube probe endpoint /healthz/ready that Istio proxies expose on 15021. Proxies hand in functions
// that read their current state; this package only formats.
package admin

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Default ports (Istio's).
const (
	DefaultAddress       = "127.0.0.1:15000"
	DefaultHealthAddress = ":15021"
)

// Options say where the admin handlers read from. Nil functions make their endpoint answer 404.
type Options struct {
	// ConfigDump returns the current accepted config.
	ConfigDump func() *Config
	// Clusters returns the clusters and their hosts.
	Clusters func() []ClusterStatus
	// Gatherer serves /stats/prometheus.
	Gatherer prometheus.Gatherer
	// Ready reports whether the proxy has its first config.
	Ready func() bool
}

// Config is what /config_dump shows: the dynamic resources with their versions.
type Config struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	// Versions by type URL.
	Versions    map[string]string
	LastUpdated time.Time
}

// ClusterStatus is one cluster for /clusters.
type ClusterStatus struct {
	Name  string
	Hosts []HostStatus
}

// HostStatus is one host of a cluster.
type HostStatus struct {
	// Address as Envoy prints it, e.g. envoy://connect_originate/10.244.1.5:9080.
	Address string
	Healthy bool
	Weight  uint32
}

// Handler serves the admin endpoints.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "admin commands are:\n  /clusters\n  /config_dump\n  /ready\n  /stats/prometheus")
	})
	if o.ConfigDump != nil {
		mux.HandleFunc("/config_dump", func(w http.ResponseWriter, r *http.Request) {
			dump, err := EnvoyConfigDump(o.ConfigDump(), r.URL.Query().Has("include_eds"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			b, err := protojson.MarshalOptions{Multiline: true, Indent: " ", UseProtoNames: true}.Marshal(dump)
			if err != nil {
				http.Error(w, "encoding config dump: "+err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
		})
	}
	if o.Clusters != nil {
		mux.HandleFunc("/clusters", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			WriteClusters(w, o.Clusters())
		})
	}
	if o.Gatherer != nil {
		mux.Handle("/stats/prometheus", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	}
	if o.Ready != nil {
		mux.HandleFunc("/ready", readyHandler(o.Ready))
	}
	return mux
}

// HealthHandler serves /healthz/ready for kubelet probes (port 15021).
func HealthHandler(ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz/ready", readyHandler(ready))
	return mux
}

// readyHandler answers like Envoy's /ready: LIVE (200) or PRE_INITIALIZING (503).
func readyHandler(ready func() bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "PRE_INITIALIZING\n")
			return
		}
		io.WriteString(w, "LIVE\n")
	}
}

// EnvoyConfigDump builds the envoy.admin.v3.ConfigDump Envoy would show for c: clusters, listeners and
// routes as dynamic active resources; endpoints only when asked (Envoy's ?include_eds).
func EnvoyConfigDump(c *Config, includeEDS bool) (*adminv3.ConfigDump, error) {
	if c == nil {
		c = &Config{}
	}
	ts := timestamppb.New(c.LastUpdated)
	ver := func(t string) string { return c.Versions["type.googleapis.com/envoy.config."+t] }
	pack := func(m proto.Message) (*anypb.Any, error) { return anypb.New(m) }

	clusters := &adminv3.ClustersConfigDump{VersionInfo: ver("cluster.v3.Cluster")}
	for _, cl := range c.Clusters {
		a, err := pack(cl)
		if err != nil {
			return nil, err
		}
		clusters.DynamicActiveClusters = append(clusters.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{
			VersionInfo: clusters.VersionInfo, Cluster: a, LastUpdated: ts})
	}
	listeners := &adminv3.ListenersConfigDump{VersionInfo: ver("listener.v3.Listener")}
	for _, l := range c.Listeners {
		a, err := pack(l)
		if err != nil {
			return nil, err
		}
		listeners.DynamicListeners = append(listeners.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: l.GetName(), ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: listeners.VersionInfo, Listener: a, LastUpdated: ts}})
	}
	routes := &adminv3.RoutesConfigDump{}
	for _, r := range c.Routes {
		a, err := pack(r)
		if err != nil {
			return nil, err
		}
		routes.DynamicRouteConfigs = append(routes.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{
			VersionInfo: ver("route.v3.RouteConfiguration"), RouteConfig: a, LastUpdated: ts})
	}
	parts := []proto.Message{clusters, listeners, routes}
	if includeEDS {
		eps := &adminv3.EndpointsConfigDump{}
		for _, e := range c.Endpoints {
			a, err := pack(e)
			if err != nil {
				return nil, err
			}
			eps.DynamicEndpointConfigs = append(eps.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{
				VersionInfo: ver("endpoint.v3.ClusterLoadAssignment"), EndpointConfig: a, LastUpdated: ts})
		}
		parts = append(parts, eps)
	}
	dump := &adminv3.ConfigDump{}
	for _, p := range parts {
		a, err := pack(p)
		if err != nil {
			return nil, err
		}
		dump.Configs = append(dump.Configs, a)
	}
	return dump, nil
}

// WriteClusters writes Envoy's /clusters text format: one cluster::host::field::value line per fact.
func WriteClusters(w io.Writer, clusters []ClusterStatus) {
	sort.Slice(clusters, func(i, j int) bool { return clusters[i].Name < clusters[j].Name })
	var b strings.Builder
	for _, c := range clusters {
		fmt.Fprintf(&b, "%s::observability_name::%s\n", c.Name, c.Name)
		for _, h := range c.Hosts {
			flags := "healthy"
			if !h.Healthy {
				flags = "/failed_eds_health"
			}
			weight := h.Weight
			if weight == 0 {
				weight = 1
			}
			fmt.Fprintf(&b, "%s::%s::health_flags::%s\n", c.Name, h.Address, flags)
			fmt.Fprintf(&b, "%s::%s::weight::%d\n", c.Name, h.Address, weight)
		}
	}
	io.WriteString(w, b.String())
}
