package scenarios

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/controlplane/render/tables"
)

// ProxyDump reads the config the control plane last sent the proxy matching set (its /debug/config_dump,
// which after WaitConverged is what the proxy acknowledged); when the control plane cannot give it, the
// proxy's own admin /config_dump through a port-forward to its pod.
func (t *T) ProxyDump(set ProxySet) *tables.Dump {
	if t.Env == nil {
		t.Fatalf("no lab to read config from")
	}
	st, err := t.Env.Syncz(t.Context())
	t.Must(err, "reading /debug/syncz")
	var ids []string
	for _, p := range st.Proxies {
		if set.matches(p) {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		t.Fatalf("no proxy %s is connected to the control plane", set)
	}
	d, cpErr := labclient.ControlPlaneDump(t.Context(), t.Env.Kube, ids[0])
	if cpErr == nil {
		return d
	}
	// Fall back to the pod's admin port (a waypoint's Deployment carries the Gateway's name).
	pods, err := labclient.RunningPods(t.Context(), t.Env.Kube, set.Namespace, "gateway.networking.k8s.io/gateway-name="+set.Name)
	if err != nil || len(pods) == 0 {
		t.Fatalf("reading the config of %s: %v (and no pod to ask directly)", ids[0], cpErr)
	}
	d, err = labclient.PodDump(t.Context(), t.Env.Config, t.Env.Kube, pods[0].Namespace, pods[0].Name)
	if err != nil {
		t.Fatalf("reading the config of %s: control plane: %v; pod: %v", ids[0], cpErr, err)
	}
	return d
}

// RouteWeights returns the clusters a route configuration sends to and their weights, from its first
// route with an action: weighted clusters as configured, a single cluster as weight 100.
func RouteWeights(d *tables.Dump, routeName string) (map[string]uint32, error) {
	for _, rc := range d.Routes {
		if rc.GetName() != routeName {
			continue
		}
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				ra := r.GetRoute()
				if ra == nil {
					continue
				}
				out := map[string]uint32{}
				switch cs := ra.GetClusterSpecifier().(type) {
				case *routev3.RouteAction_WeightedClusters:
					for _, wc := range cs.WeightedClusters.GetClusters() {
						out[wc.GetName()] += wc.GetWeight().GetValue()
					}
				case *routev3.RouteAction_Cluster:
					out[cs.Cluster] = 100
				default:
					continue
				}
				return out, nil
			}
		}
		return nil, fmt.Errorf("route %s has no route with a cluster", routeName)
	}
	return nil, fmt.Errorf("no route %s (routes: %s)", routeName, strings.Join(RouteNames(d), ", "))
}

// RouteNames lists the route configurations of a dump, sorted.
func RouteNames(d *tables.Dump) []string {
	var out []string
	for _, rc := range d.Routes {
		out = append(out, rc.GetName())
	}
	sort.Strings(out)
	return out
}

// ClusterNames lists the clusters of a dump, sorted.
func ClusterNames(d *tables.Dump) []string {
	var out []string
	for _, c := range d.Clusters {
		out = append(out, c.GetName())
	}
	sort.Strings(out)
	return out
}

// ListenerNames lists the listeners of a dump and their filter chains (listener/chain), sorted.
func ListenerNames(d *tables.Dump) []string {
	var out []string
	for _, l := range d.Listeners {
		out = append(out, l.GetName())
		for _, fc := range l.GetFilterChains() {
			out = append(out, l.GetName()+"/"+fc.GetName())
		}
	}
	sort.Strings(out)
	return out
}

// EndpointAddrs returns the IP:port endpoints of a cluster, sorted, with internal-address prefixes
// (envoy://connect_originate/) removed: a waypoint's endpoints are pod addresses reached over HBONE.
func EndpointAddrs(d *tables.Dump, cluster string) []string {
	var out []string
	for _, cla := range d.Endpoints {
		if cla.GetClusterName() != cluster {
			continue
		}
		for _, loc := range cla.GetEndpoints() {
			for _, lb := range loc.GetLbEndpoints() {
				a := tables.Address(lb.GetEndpoint().GetAddress())
				if i := strings.LastIndex(a, "/"); strings.HasPrefix(a, "envoy://") && i >= 0 {
					a = a[i+1:]
				}
				if a != "" {
					out = append(out, a)
				}
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Mentions returns the names of listeners, chains, routes and clusters in d that mention any of the
// words, for "this waypoint holds nothing for productpage" checks.
func Mentions(d *tables.Dump, words ...string) []string {
	var names []string
	names = append(names, ListenerNames(d)...)
	names = append(names, RouteNames(d)...)
	names = append(names, ClusterNames(d)...)
	for _, e := range d.Endpoints {
		names = append(names, "endpoints "+e.GetClusterName())
	}
	var out []string
	for _, n := range names {
		for _, w := range words {
			if strings.Contains(n, w) {
				out = append(out, n)
				break
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}
