// Package render prints what one proxy would receive from the control plane, without a cluster: for
// waypoints and sidecars an Envoy admin /config_dump (envoy.admin.v3.ConfigDump), for ztunnel its workloads,
// services and policies. The live control plane's /debug/config_dump uses the same functions.
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
)

// Formats accepted by Marshal.
const (
	FormatJSON = "json"
	FormatYAML = "yaml"
)

// ZtunnelDump is what a ztunnel receives, in the order ztunnel's own config dump lists it.
type ZtunnelDump struct {
	Workloads []configgen.ZtunnelWorkload      `json:"workloads"`
	Services  []configgen.ZtunnelService       `json:"services"`
	Policies  []configgen.ZtunnelAuthorization `json:"policies"`
}

// Output is one rendered proxy: exactly one of Envoy and Ztunnel is set.
type Output struct {
	Proxy   model.Proxy
	Envoy   *adminv3.ConfigDump
	Ztunnel *ZtunnelDump
}

// Render generates what proxy p would receive from snapshot s. The error is a *model.NotFoundError when p
// names nothing in the snapshot.
func Render(s *model.Snapshot, p model.Proxy) (*Output, error) {
	g, err := Generate(s, p)
	if err != nil {
		return nil, err
	}
	out := &Output{Proxy: g.Proxy, Ztunnel: g.Ztunnel}
	if g.Envoy != nil {
		out.Envoy = ConfigDump(g.Envoy, strconv.FormatUint(s.Version, 10))
	}
	return out, nil
}

// Generated is one proxy's config as the generators return it, before Render wraps it for printing:
// exactly one of Envoy and Ztunnel is set. meshlab diff compares these, resource by resource.
type Generated struct {
	Proxy   model.Proxy // resolved in the snapshot
	Envoy   *configgen.Config
	Ztunnel *ZtunnelDump
}

// Generate resolves proxy p in snapshot s and runs the generators for it: the one path both Render and
// meshlab diff take. The error is a *model.NotFoundError when p names nothing in the snapshot.
func Generate(s *model.Snapshot, p model.Proxy) (*Generated, error) {
	resolved, err := s.Resolve(p)
	if err != nil {
		return nil, err
	}
	out := &Generated{Proxy: resolved}
	if p.Kind == model.KindZtunnel {
		if !contains(s.Nodes(), p.Node) {
			return nil, &model.NotFoundError{Msg: fmt.Sprintf("no pods on node %q (nodes: %s)", p.Node, strings.Join(s.Nodes(), ", "))}
		}
		w, svcs, pols := configgen.ZtunnelConfig(s, p.Node)
		out.Ztunnel = &ZtunnelDump{Workloads: nonNil(w), Services: nonNil(svcs), Policies: nonNil(pols)}
		return out, nil
	}
	out.Envoy, err = configgen.Envoy(s, resolved)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func mustAny(m proto.Message) *anypb.Any {
	// Deterministic, so equal config packs to equal bytes (maps would otherwise encode in random order).
	a := &anypb.Any{}
	err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true})
	if err != nil {
		panic(fmt.Sprintf("packing %T: %v", m, err))
	}
	return a
}

// ConfigDump wraps generated config the way Envoy's admin /config_dump shows dynamic resources, in Envoy's
// section order: clusters, listeners, routes, endpoints.
func ConfigDump(cfg *configgen.Config, version string) *adminv3.ConfigDump {
	clusters := &adminv3.ClustersConfigDump{VersionInfo: version}
	for _, c := range cfg.Clusters {
		clusters.DynamicActiveClusters = append(clusters.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: version, Cluster: mustAny(c)})
	}
	listeners := &adminv3.ListenersConfigDump{VersionInfo: version}
	for _, l := range cfg.Listeners {
		listeners.DynamicListeners = append(listeners.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: l.Name, ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: version, Listener: mustAny(l)},
		})
	}
	routes := &adminv3.RoutesConfigDump{}
	for _, r := range cfg.Routes {
		routes.DynamicRouteConfigs = append(routes.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: version, RouteConfig: mustAny(r)})
	}
	endpoints := &adminv3.EndpointsConfigDump{}
	for _, e := range cfg.Endpoints {
		endpoints.DynamicEndpointConfigs = append(endpoints.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: version, EndpointConfig: mustAny(e)})
	}
	return &adminv3.ConfigDump{Configs: []*anypb.Any{mustAny(clusters), mustAny(listeners), mustAny(routes), mustAny(endpoints)}}
}

// Marshal prints the output as indented JSON or YAML; the bytes are stable for equal inputs.
func (o *Output) Marshal(format string) ([]byte, error) {
	if o.Envoy != nil {
		return MarshalProto(o.Envoy, format)
	}
	js, err := json.Marshal(o.Ztunnel)
	if err != nil {
		return nil, fmt.Errorf("encoding ztunnel config: %w", err)
	}
	return reformat(js, format)
}

// MarshalProto prints a message (Any fields resolved through the global registry) as stable, indented JSON
// or YAML. protojson deliberately varies its whitespace, so the JSON is re-indented.
func MarshalProto(m proto.Message, format string) ([]byte, error) {
	js, err := (protojson.MarshalOptions{Resolver: lenientResolver{}}).Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", m, err)
	}
	return reformat(js, format)
}

func reformat(js []byte, format string) ([]byte, error) {
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, js); err != nil {
		return nil, err
	}
	switch format {
	case FormatJSON, "":
		if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
			return nil, err
		}
		out.WriteByte('\n')
		return out.Bytes(), nil
	case FormatYAML:
		return yaml.JSONToYAML(compact.Bytes())
	}
	return nil, fmt.Errorf("unknown output format %q; want json or yaml", format)
}

// ParseConfigDump reads a config dump written by Marshal (or by Envoy's admin API), JSON or YAML.
func ParseConfigDump(data []byte) (*adminv3.ConfigDump, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("parsing config dump: %w", err)
	}
	cd := &adminv3.ConfigDump{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true, Resolver: lenientResolver{}}).Unmarshal(js, cd); err != nil {
		return nil, fmt.Errorf("parsing config dump: %w", err)
	}
	return cd, nil
}
