// Package admin serves an Envoy-style admin interface for meshlab's L7 proxies (waypoints and sidecars),
// in the formats Envoy prints, so that Istio's own tools (istioctl proxy-config, proxy-status) read it:
//
//   - /config_dump: an envoy.admin.v3.ConfigDump in JSON with proto field names (bootstrap, clusters,
//     listeners, routes, secrets; endpoints with ?include_eds), each resource with the version_info and
//     last_updated of the response that last changed it; ?resource=, ?mask= and ?name_regex= as in Envoy.
//   - /clusters: Envoy's text form (cluster::host::field::value), and ?format=json (envoy.admin.v3.Clusters,
//     what `istioctl proxy-config endpoints` reads).
//   - /listeners (text, or ?format=json: envoy.admin.v3.Listeners), /server_info (envoy.admin.v3.ServerInfo),
//     /ready, /stats (Envoy's text form, or ?format=json), /stats/prometheus, /help.
//   - /healthz/ready on the health port (15021), Istio's kube probe.
//
// Proxies hand in functions that read their current state; this package only formats.
package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Default ports (Istio's).
const (
	DefaultAddress       = "127.0.0.1:15000"
	DefaultHealthAddress = ":15021"
)

// Options say where the admin handlers read from. Nil functions make their endpoints answer 404.
type Options struct {
	// ConfigDump returns the current accepted config (/config_dump, /listeners).
	ConfigDump func() *Config
	// Clusters returns the clusters and their hosts (/clusters).
	Clusters func() []ClusterStatus
	// Gatherer serves /stats and /stats/prometheus.
	Gatherer prometheus.Gatherer
	// Ready reports whether the proxy's initial config is complete (/ready, server_info's state).
	Ready func() bool
	// Server describes the process for /server_info.
	Server *ServerInfo
}

// ServerInfo is what /server_info reports besides the state.
type ServerInfo struct {
	// Version is the proxy's version string (Envoy prints SHA/VERSION/STATUS/BUILD/SSL).
	Version string
	// Node is the xDS node the proxy presents.
	Node *corev3.Node
	// Started is when the process started (uptime).
	Started time.Time
}

// Config is what /config_dump shows.
type Config struct {
	// Bootstrap is the proxy's static config as an Envoy bootstrap would say it (node, ADS, admin);
	// BootstrapUpdated is when it was loaded.
	Bootstrap        *bootstrapv3.Bootstrap
	Listeners        []*listenerv3.Listener
	Routes           []*routev3.RouteConfiguration
	Clusters         []*clusterv3.Cluster
	Endpoints        []*endpointv3.ClusterLoadAssignment
	Secrets          []Secret
	BootstrapUpdated time.Time
	// Versions maps a type URL to the version_info last accepted for the type.
	Versions map[string]string
	// Meta maps a type URL and a resource name to the version and time that resource last changed.
	// A resource without one shows its type's version and LastUpdated.
	Meta        map[string]map[string]ResourceMeta
	LastUpdated time.Time
}

// ResourceMeta is when one resource last changed: the version_info of the response that brought its
// current content and when the proxy accepted it.
type ResourceMeta struct {
	Version     string
	LastUpdated time.Time
}

// Secret is one SDS-style secret the proxy holds (Istio's "default" certificate and "ROOTCA").
type Secret struct {
	Name        string
	Version     string
	LastUpdated time.Time
	// Secret is the secret; private keys must already be redacted.
	Secret *tlsv3.Secret
}

// ClusterStatus is one cluster for /clusters.
type ClusterStatus struct {
	Name string
	// EDSServiceName is the cluster's eds_cluster_config.service_name, if any.
	EDSServiceName string
	Hosts          []HostStatus
}

// HostStatus is one host of a cluster.
type HostStatus struct {
	// Address is the endpoint's address: a socket address, or an Envoy internal address such as
	// connect_originate with endpoint id 10.244.1.5:9080.
	Address *corev3.Address
	// Health is the endpoint's EDS health status (UNKNOWN counts as healthy, as in Envoy).
	Health   corev3.HealthStatus
	Weight   uint32
	Locality *corev3.Locality
	Hostname string
}

// helpEntries are the admin endpoints, for / and /help.
var helpEntries = [][2]string{
	{"/", "Admin home page"},
	{"/clusters", "upstream cluster status (?format=json for envoy.admin.v3.Clusters)"},
	{"/config_dump", "dump current Envoy configs (?include_eds, ?resource=, ?mask=, ?name_regex=)"},
	{"/help", "print out list of admin commands"},
	{"/listeners", "print listener info (?format=json for envoy.admin.v3.Listeners)"},
	{"/ready", "print server state, return 200 if LIVE, otherwise return 503"},
	{"/server_info", "print server version/status information"},
	{"/stats", "print server stats (?format=json, ?filter=REGEX)"},
	{"/stats/prometheus", "print server stats in prometheus format"},
}

// Handler serves the admin endpoints.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	help := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && r.URL.Path != "/help" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		var b strings.Builder
		b.WriteString("admin commands are:\n")
		for _, e := range helpEntries {
			fmt.Fprintf(&b, "  %s: %s\n", e[0], e[1])
		}
		io.WriteString(w, b.String())
	}
	mux.HandleFunc("/", help)
	mux.HandleFunc("/help", help)
	if o.ConfigDump != nil {
		mux.HandleFunc("/config_dump", func(w http.ResponseWriter, r *http.Request) {
			dump, code, err := ConfigDump(o.ConfigDump(), ParseDumpQuery(r.URL.Query()))
			if err != nil {
				textError(w, code, err.Error())
				return
			}
			writeJSON(w, dump)
		})
		mux.HandleFunc("/listeners", func(w http.ResponseWriter, r *http.Request) {
			c := o.ConfigDump()
			if c == nil {
				c = &Config{}
			}
			if r.URL.Query().Get("format") == "json" {
				writeJSON(w, ListenerStatuses(c.Listeners))
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			WriteListeners(w, c.Listeners)
		})
	}
	if o.Clusters != nil {
		mux.HandleFunc("/clusters", func(w http.ResponseWriter, r *http.Request) {
			cs := o.Clusters()
			sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
			if r.URL.Query().Get("format") == "json" {
				writeJSON(w, ClustersJSON(cs))
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			WriteClusters(w, cs)
		})
	}
	if o.Gatherer != nil {
		mux.Handle("/stats/prometheus", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
		mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
			var clusters []string
			if o.Clusters != nil {
				for _, c := range o.Clusters() {
					clusters = append(clusters, c.Name)
				}
			}
			stats, err := EnvoyStats(o.Gatherer, clusters)
			if err != nil {
				textError(w, http.StatusInternalServerError, err.Error())
				return
			}
			if f := r.URL.Query().Get("filter"); f != "" {
				if stats, err = filterStats(stats, f); err != nil {
					textError(w, http.StatusBadRequest, err.Error())
					return
				}
			}
			if r.URL.Query().Get("format") == "json" {
				writeStatsJSON(w, stats)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			writeStatsText(w, stats)
		})
	}
	if o.Ready != nil {
		mux.HandleFunc("/ready", readyHandler(o.Ready))
		mux.HandleFunc("/server_info", func(w http.ResponseWriter, r *http.Request) {
			// state LIVE is the enum's zero: print it, as Envoy does.
			b, err := marshalStable(protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true}, serverInfo(o.Server, o.Ready()))
			if err != nil {
				textError(w, http.StatusInternalServerError, err.Error())
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
		})
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

// Marshal encodes m as Envoy's admin prints JSON: proto field names, indented.
func Marshal(m proto.Message) ([]byte, error) {
	return marshalStable(protojson.MarshalOptions{UseProtoNames: true}, m)
}

// marshalStable encodes m with opts and indents it with encoding/json, which writes its own spacing:
// protojson deliberately varies its whitespace from build to build, and what meshlab prints (and tests,
// and users, compare) must not change with the build.
func marshalStable(opts protojson.MarshalOptions, m proto.Message) ([]byte, error) {
	opts.Multiline, opts.Indent = false, ""
	compact, err := opts.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact, "", " "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func writeJSON(w http.ResponseWriter, m proto.Message) {
	b, err := Marshal(m)
	if err != nil {
		textError(w, http.StatusInternalServerError, fmt.Sprintf("encoding %s: %v", m.ProtoReflect().Descriptor().FullName(), err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func textError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}
