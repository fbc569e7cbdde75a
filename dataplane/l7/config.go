package l7

import (
	"fmt"
	"net/netip"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Config is one proxy's Envoy configuration as received over xDS.
type Config struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
}

// Table is the immutable, compiled form of a Config. References between resources (a listener's RDS
// name, a route's cluster, a cluster's EDS name) may dangle, as they may in Envoy while resources warm:
// a missing route configuration answers 404, a missing cluster 503.
type Table struct {
	Listeners map[string]*Listener
	Routes    map[string]*RouteTable
	Clusters  map[string]*Cluster
	// Source is the config the table was built from, for config dumps.
	Source Config
}

// Build validates cfg and compiles it. Its errors name the resource and the field, e.g.
// "listener main_internal: filter chain 3: unsupported filter envoy.filters.network.mongo_proxy".
func Build(cfg Config) (*Table, error) {
	t := &Table{Listeners: map[string]*Listener{}, Routes: map[string]*RouteTable{}, Clusters: map[string]*Cluster{}, Source: cfg}
	for _, l := range cfg.Listeners {
		if _, dup := t.Listeners[l.GetName()]; dup {
			return nil, fmt.Errorf("listener %s: duplicate name", l.GetName())
		}
		cl, err := compileListener(l)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.GetName(), err)
		}
		t.Listeners[l.GetName()] = cl
	}
	for _, r := range cfg.Routes {
		if _, dup := t.Routes[r.GetName()]; dup {
			return nil, fmt.Errorf("route configuration %s: duplicate name", r.GetName())
		}
		rt, err := compileRouteConfig(r)
		if err != nil {
			return nil, fmt.Errorf("route configuration %s: %w", r.GetName(), err)
		}
		t.Routes[r.GetName()] = rt
	}
	edsNames := map[string][]*Cluster{}
	for _, c := range cfg.Clusters {
		if _, dup := t.Clusters[c.GetName()]; dup {
			return nil, fmt.Errorf("cluster %s: duplicate name", c.GetName())
		}
		cc, err := compileCluster(c)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", c.GetName(), err)
		}
		t.Clusters[c.GetName()] = cc
		if cc.edsName != "" {
			edsNames[cc.edsName] = append(edsNames[cc.edsName], cc)
		}
	}
	seen := map[string]bool{}
	for _, cla := range cfg.Endpoints {
		name := cla.GetClusterName()
		if seen[name] {
			return nil, fmt.Errorf("cluster load assignment %s: duplicate name", name)
		}
		seen[name] = true
		// Endpoints for clusters not (yet) known are validated and kept out of the table.
		scratch := &Cluster{}
		if err := scratch.setEndpoints(cla); err != nil {
			return nil, fmt.Errorf("cluster load assignment %s: %w", name, err)
		}
		for _, c := range edsNames[name] {
			c.adopt(scratch.Hosts)
		}
	}
	return t, nil
}

// Validate reports whether cfg can be executed, with Build's errors.
func Validate(cfg Config) error {
	_, err := Build(cfg)
	return err
}

// Chain returns the filter chain of listener for a connection to dst, or nil.
func (t *Table) Chain(listener string, dst netip.AddrPort) *FilterChain {
	l := t.Listeners[listener]
	if l == nil {
		return nil
	}
	return l.Match(dst)
}

// RouteTableFor returns the route table an HTTP connection manager uses, or nil if its RDS resource has
// not arrived.
func (t *Table) RouteTableFor(h *HTTPManager) *RouteTable {
	if h.Inline != nil {
		return h.Inline
	}
	return t.Routes[h.RDS]
}
