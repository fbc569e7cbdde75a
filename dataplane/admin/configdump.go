package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meshlab/meshlab/api/xdstype"
)

// DumpQuery is what a /config_dump request asks for (Envoy's query parameters).
type DumpQuery struct {
	// IncludeEDS adds the endpoints dump (?include_eds).
	IncludeEDS bool
	// Resource, if set, returns only the elements of that repeated field (e.g. dynamic_active_clusters),
	// each packed on its own (?resource=).
	Resource string
	// Mask is a comma-separated field mask applied to each top-level dump, or to each element with
	// Resource (?mask=).
	Mask string
	// NameRegex keeps only resources whose name fully matches it (?name_regex=).
	NameRegex string
}

// ParseDumpQuery reads a /config_dump query.
func ParseDumpQuery(q url.Values) DumpQuery {
	return DumpQuery{IncludeEDS: q.Has("include_eds"), Resource: q.Get("resource"), Mask: q.Get("mask"), NameRegex: q.Get("name_regex")}
}

// ConfigDump builds the envoy.admin.v3.ConfigDump Envoy would show for c and q. The error comes with the
// HTTP status Envoy answers it with (400 for a bad regex or mask, 404 for an unknown resource).
func ConfigDump(c *Config, q DumpQuery) (*adminv3.ConfigDump, int, error) {
	if c == nil {
		c = &Config{}
	}
	match := func(string) bool { return true }
	if q.NameRegex != "" {
		re, err := regexp.Compile(`^(?:` + q.NameRegex + `)$`)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("Error while parsing name_regex from %s: %v", q.NameRegex, err)
		}
		match = re.MatchString
	}
	dumps, err := c.dumps(q.IncludeEDS, match)
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	var paths []string
	if q.Mask != "" {
		paths = strings.Split(q.Mask, ",")
	}
	out := &adminv3.ConfigDump{}
	if q.Resource != "" {
		for _, d := range dumps {
			m := d.ProtoReflect()
			fd := m.Descriptor().Fields().ByName(protoreflect.Name(q.Resource))
			if fd == nil {
				continue
			}
			if !fd.IsList() || fd.Message() == nil {
				return nil, http.StatusBadRequest, fmt.Errorf("%s is not a repeated field. Use ?mask=%s to get only this field", q.Resource, q.Resource)
			}
			list := m.Get(fd).List()
			for i := 0; i < list.Len(); i++ {
				elem := proto.Clone(list.Get(i).Message().Interface())
				if paths != nil {
					if err := trimResource(elem, paths); err != nil {
						return nil, http.StatusBadRequest, fmt.Errorf("FieldMask %s could not be successfully used: %v", q.Mask, err)
					}
				}
				a, err := anypb.New(elem)
				if err != nil {
					return nil, http.StatusInternalServerError, err
				}
				out.Configs = append(out.Configs, a)
			}
			return out, http.StatusOK, nil
		}
		return nil, http.StatusNotFound, fmt.Errorf("%s not found in config dump", q.Resource)
	}
	for _, d := range dumps {
		if paths != nil {
			if !validMask(d.ProtoReflect().Descriptor(), paths) {
				continue // Envoy: different dumps take different masks
			}
			trimMessage(d.ProtoReflect(), paths)
		}
		a, err := anypb.New(d)
		if err != nil {
			return nil, http.StatusInternalServerError, err
		}
		out.Configs = append(out.Configs, a)
	}
	if len(out.Configs) == 0 && paths != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("FieldMask %s could not be successfully applied to any configs.", q.Mask)
	}
	return out, http.StatusOK, nil
}

// dumps returns the top-level dumps in Envoy's order (its config tracker's keys, sorted): bootstrap,
// clusters, endpoints (with include_eds), listeners, routes, secrets.
func (c *Config) dumps(includeEDS bool, match func(string) bool) ([]proto.Message, error) {
	meta := func(typeURL, name string) (string, *timestamppb.Timestamp) {
		if m, ok := c.Meta[typeURL][name]; ok {
			return m.Version, ts(m.LastUpdated)
		}
		return c.Versions[typeURL], ts(c.LastUpdated)
	}
	var out []proto.Message
	if c.Bootstrap != nil {
		out = append(out, &adminv3.BootstrapConfigDump{Bootstrap: c.Bootstrap, LastUpdated: ts(c.BootstrapUpdated)})
	}

	clusters := &adminv3.ClustersConfigDump{VersionInfo: c.Versions[xdstype.Cluster]}
	for _, cl := range c.Clusters {
		if !match(cl.GetName()) {
			continue
		}
		a, err := anypb.New(cl)
		if err != nil {
			return nil, err
		}
		v, t := meta(xdstype.Cluster, cl.GetName())
		clusters.DynamicActiveClusters = append(clusters.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: v, Cluster: a, LastUpdated: t})
	}
	out = append(out, clusters)

	if includeEDS && len(c.Clusters) > 0 {
		// Like Envoy, one assignment per active cluster, named by its EDS service name: the one received
		// over EDS, or the cluster's inline load_assignment (STATIC clusters such as Istio's encap), or
		// none yet.
		byName := map[string]*endpointv3.ClusterLoadAssignment{}
		for _, e := range c.Endpoints {
			byName[e.GetClusterName()] = e
		}
		eps := &adminv3.EndpointsConfigDump{}
		for _, cl := range c.Clusters {
			name := cl.GetName()
			if n := cl.GetEdsClusterConfig().GetServiceName(); n != "" {
				name = n
			}
			if !match(name) {
				continue
			}
			cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
			v, t := meta(xdstype.Cluster, cl.GetName())
			if e, ok := byName[name]; ok && cl.GetType() == clusterv3.Cluster_EDS {
				cla = e
				v, t = meta(xdstype.Endpoint, name)
			} else if la := cl.GetLoadAssignment(); la != nil {
				cla = proto.Clone(la).(*endpointv3.ClusterLoadAssignment)
				cla.ClusterName = name
			}
			a, err := anypb.New(cla)
			if err != nil {
				return nil, err
			}
			eps.DynamicEndpointConfigs = append(eps.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: v, EndpointConfig: a, LastUpdated: t})
		}
		out = append(out, eps)
	}

	listeners := &adminv3.ListenersConfigDump{VersionInfo: c.Versions[xdstype.Listener]}
	for _, l := range c.Listeners {
		if !match(l.GetName()) {
			continue
		}
		a, err := anypb.New(l)
		if err != nil {
			return nil, err
		}
		v, t := meta(xdstype.Listener, l.GetName())
		listeners.DynamicListeners = append(listeners.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: l.GetName(), ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: v, Listener: a, LastUpdated: t}})
	}
	out = append(out, listeners)

	routes := &adminv3.RoutesConfigDump{}
	for _, r := range c.Routes {
		if !match(r.GetName()) {
			continue
		}
		a, err := anypb.New(r)
		if err != nil {
			return nil, err
		}
		v, t := meta(xdstype.Route, r.GetName())
		routes.DynamicRouteConfigs = append(routes.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: v, RouteConfig: a, LastUpdated: t})
	}
	out = append(out, routes)

	secrets := &adminv3.SecretsConfigDump{}
	for _, s := range c.Secrets {
		if !match(s.Name) || s.Secret == nil {
			continue
		}
		a, err := anypb.New(s.Secret)
		if err != nil {
			return nil, err
		}
		secrets.DynamicActiveSecrets = append(secrets.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{
			Name: s.Name, VersionInfo: s.Version, LastUpdated: ts(s.LastUpdated), Secret: a})
	}
	out = append(out, secrets)
	return out, nil
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// validMask reports whether every path names fields of md, through singular message fields.
func validMask(md protoreflect.MessageDescriptor, paths []string) bool {
	for _, p := range paths {
		d := md
		frags := strings.Split(p, ".")
		for i, f := range frags {
			fd := d.Fields().ByName(protoreflect.Name(f))
			if fd == nil {
				return false
			}
			if i < len(frags)-1 {
				if fd.Message() == nil || fd.IsList() || fd.IsMap() {
					return false
				}
				d = fd.Message()
			}
		}
	}
	return true
}

// trimMessage keeps only the fields paths name (a field mask; paths already valid).
func trimMessage(m protoreflect.Message, paths []string) {
	whole := map[protoreflect.Name]bool{}
	sub := map[protoreflect.Name][]string{}
	for _, p := range paths {
		first, rest, nested := strings.Cut(p, ".")
		if nested {
			sub[protoreflect.Name(first)] = append(sub[protoreflect.Name(first)], rest)
		} else {
			whole[protoreflect.Name(first)] = true
		}
	}
	var clear []protoreflect.FieldDescriptor
	var recurse []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		switch {
		case whole[fd.Name()]:
		case sub[fd.Name()] != nil:
			recurse = append(recurse, fd)
		default:
			clear = append(clear, fd)
		}
		return true
	})
	for _, fd := range clear {
		m.Clear(fd)
	}
	for _, fd := range recurse {
		trimMessage(m.Mutable(fd).Message(), sub[fd.Name()])
	}
}

// trimResource applies a mask to one element of a dump (Envoy's ?resource= with ?mask=): paths through
// the element's Any field (cluster.name) reach into the packed resource.
func trimResource(m proto.Message, paths []string) error {
	md := m.ProtoReflect().Descriptor()
	var outer, inner []string
	var anyField protoreflect.FieldDescriptor
	for _, p := range paths {
		first, rest, nested := strings.Cut(p, ".")
		fd := md.Fields().ByName(protoreflect.Name(first))
		if fd != nil && !fd.IsList() && fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Any" {
			if anyField != nil && anyField != fd {
				return fmt.Errorf("only one Any field can be masked")
			}
			anyField = fd
			outer = append(outer, first)
			if nested {
				inner = append(inner, rest)
			}
			continue
		}
		outer = append(outer, p)
	}
	if anyField != nil && len(inner) > 0 && m.ProtoReflect().Has(anyField) {
		a := m.ProtoReflect().Get(anyField).Message().Interface().(*anypb.Any)
		r, err := a.UnmarshalNew()
		if err != nil {
			return err
		}
		if !validMask(r.ProtoReflect().Descriptor(), inner) {
			return fmt.Errorf("%v does not name fields of %s", inner, r.ProtoReflect().Descriptor().FullName())
		}
		trimMessage(r.ProtoReflect(), inner)
		if err := a.MarshalFrom(r); err != nil {
			return err
		}
	}
	if !validMask(md, outer) {
		return fmt.Errorf("%v does not name fields of %s", outer, md.FullName())
	}
	trimMessage(m.ProtoReflect(), outer)
	return nil
}
