package checks

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/meshlab/meshlab/controlplane/render/tables"
	"github.com/meshlab/meshlab/scenarios"
)

// Proxy kinds a check file names.
const (
	proxyWaypoint = "waypoint"
	proxySidecar  = "sidecar"
)

// proxyRef is a proxy named in a check file: waypoint/NAME (a waypoint Gateway) or sidecar/NAME (a
// Deployment's pod, or a pod), in the file's namespace unless given as KIND/NAMESPACE/NAME.
type proxyRef struct {
	Kind, Namespace, Name string
}

func (p proxyRef) String() string { return p.Kind + "/" + p.Namespace + "/" + p.Name }

func parseProxy(s, ns string) (proxyRef, error) {
	parts := strings.Split(s, "/")
	bad := func() (proxyRef, error) {
		return proxyRef{}, fmt.Errorf("proxy %q: want waypoint/NAME, sidecar/NAME (a Deployment or pod), or KIND/NAMESPACE/NAME", s)
	}
	for _, p := range parts {
		if p == "" {
			return bad()
		}
	}
	if len(parts) < 2 || len(parts) > 3 || (parts[0] != proxyWaypoint && parts[0] != proxySidecar) {
		if parts[0] == "ztunnel" {
			return proxyRef{}, fmt.Errorf("proxy %q: ztunnel holds no routes or clusters; config assertions name a waypoint or sidecar", s)
		}
		return bad()
	}
	if len(parts) == 3 {
		return proxyRef{Kind: parts[0], Namespace: parts[1], Name: parts[2]}, nil
	}
	return proxyRef{Kind: parts[0], Namespace: ns, Name: parts[1]}, nil
}

// destination resolves a route DESTINATION in a dump: a route configuration's exact name, or SERVICE[:PORT]
// (a Service in the file's namespace, or its full host name) — a waypoint's route configuration
// inbound-vip|PORT|...|HOST, a sidecar's virtual host HOST:PORT in route configuration PORT.
func destinationRoutes(d *tables.Dump, dest, ns string) ([]*routev3.Route, string, error) {
	for _, rc := range d.Routes {
		if rc.GetName() == dest {
			var routes []*routev3.Route
			for _, vh := range rc.GetVirtualHosts() {
				routes = append(routes, vh.GetRoutes()...)
			}
			return routes, rc.GetName(), nil
		}
	}
	host, port, _ := strings.Cut(dest, ":")
	if !strings.Contains(host, ".") {
		host += "." + ns + ".svc.cluster.local"
	}
	var found []string
	var routes []*routev3.Route
	for _, rc := range d.Routes {
		// Waypoint: inbound-vip|PORT|PROTOCOL|HOST.
		if f := strings.Split(rc.GetName(), "|"); len(f) == 4 && f[3] == host && (port == "" || f[1] == port) {
			found = append(found, rc.GetName())
			for _, vh := range rc.GetVirtualHosts() {
				routes = append(routes, vh.GetRoutes()...)
			}
			continue
		}
		// Sidecar: route configuration PORT, virtual host HOST:PORT.
		for _, vh := range rc.GetVirtualHosts() {
			h, p, _ := strings.Cut(vh.GetName(), ":")
			if h == host && (port == "" || p == port) {
				found = append(found, rc.GetName()+" "+vh.GetName())
				routes = append(routes, vh.GetRoutes()...)
			}
		}
	}
	switch {
	case len(found) == 0:
		return nil, "", fmt.Errorf("no route for %s (route configurations: %s)", dest, strings.Join(scenarios.RouteNames(d), ", "))
	case len(found) > 1:
		return nil, "", fmt.Errorf("%s is ambiguous, it names %s: add :PORT or give the route configuration's name", dest, strings.Join(found, "; "))
	}
	return routes, found[0], nil
}

// matchString renders a route's match for -match: "prefix /", "path /api", "regex ^/v[0-9]", followed by
// each header condition as "header NAME=VALUE" (exact), "header NAME~REGEX", "header NAME present".
func matchString(r *routev3.Route) string {
	m := r.GetMatch()
	var parts []string
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		parts = append(parts, "prefix "+p.Prefix)
	case *routev3.RouteMatch_Path:
		parts = append(parts, "path "+p.Path)
	case *routev3.RouteMatch_SafeRegex:
		parts = append(parts, "regex "+p.SafeRegex.GetRegex())
	case *routev3.RouteMatch_PathSeparatedPrefix:
		parts = append(parts, "prefix "+p.PathSeparatedPrefix)
	}
	for _, h := range m.GetHeaders() {
		sm := h.GetStringMatch()
		switch {
		case sm.GetExact() != "":
			parts = append(parts, "header "+h.GetName()+"="+sm.GetExact())
		case sm.GetSafeRegex() != nil:
			parts = append(parts, "header "+h.GetName()+"~"+sm.GetSafeRegex().GetRegex())
		case sm.GetPrefix() != "":
			parts = append(parts, "header "+h.GetName()+"^"+sm.GetPrefix())
		default:
			parts = append(parts, "header "+h.GetName()+" present")
		}
	}
	return strings.Join(parts, " ")
}

// clusterAlias is the short name a check file may use for a cluster: the Service's name (name.namespace
// outside ns), with /SUBSET for a DestinationRule subset. "" for clusters that are not a Service's.
func clusterAlias(name, ns string) string {
	f := strings.Split(name, "|")
	if len(f) != 4 {
		return ""
	}
	host := strings.TrimSuffix(f[3], ".svc.cluster.local")
	if svc, svcNS, ok := strings.Cut(host, "."); ok && svcNS == ns {
		host = svc
	}
	subset := f[2]
	if f[0] == "inbound-vip" { // PROTOCOL or PROTOCOL/SUBSET
		_, subset, _ = strings.Cut(f[2], "/")
	}
	if subset != "" {
		return host + "/" + subset
	}
	return host
}

// resolveCluster finds a cluster by exact name or alias; an alias naming several clusters is an error.
func resolveCluster(d *tables.Dump, name, ns string) (string, error) {
	var byAlias []string
	for _, c := range d.Clusters {
		if c.GetName() == name {
			return name, nil
		}
		if clusterAlias(c.GetName(), ns) == name {
			byAlias = append(byAlias, c.GetName())
		}
	}
	switch len(byAlias) {
	case 1:
		return byAlias[0], nil
	case 0:
		return "", fmt.Errorf("no cluster %s (clusters: %s)", name, strings.Join(scenarios.ClusterNames(d), ", "))
	}
	return "", fmt.Errorf("cluster %s is ambiguous (%s): give the full name", name, strings.Join(byAlias, ", "))
}

// routeWant is what `route` asserts; nil fields are not checked.
type routeWant struct {
	Weights map[string]uint32
	Match   *regexp.Regexp
	Retries *uint32
	Timeout *time.Duration
}

// mismatch is one failed expectation of a config assertion.
type mismatch struct{ What, Expected, Seen string }

// checkRoute compares the routes of a destination with want. With -match it checks the first route whose
// match fits the pattern (failing when none does); without, the first route.
func checkRoute(routes []*routev3.Route, where, ns string, want routeWant) []mismatch {
	if len(routes) == 0 {
		return []mismatch{{What: where + " has routes", Expected: "at least one route", Seen: "none"}}
	}
	r := routes[0]
	if want.Match != nil {
		r = nil
		var seen []string
		for _, cand := range routes {
			ms := matchString(cand)
			seen = append(seen, ms)
			if want.Match.MatchString(ms) {
				r = cand
				break
			}
		}
		if r == nil {
			return []mismatch{{What: where + ": a route matching -match", Expected: want.Match.String(), Seen: strings.Join(seen, "; ")}}
		}
	}
	var out []mismatch
	ra := r.GetRoute()
	if want.Weights != nil {
		seen := map[string]uint32{}
		switch cs := ra.GetClusterSpecifier().(type) {
		case *routev3.RouteAction_WeightedClusters:
			for _, wc := range cs.WeightedClusters.GetClusters() {
				seen[wc.GetName()] += wc.GetWeight().GetValue()
			}
		case *routev3.RouteAction_Cluster:
			seen[cs.Cluster] = 100
		}
		// Name the seen clusters as the check file did (alias or full name).
		named := map[string]uint32{}
		for full, w := range seen {
			key := full
			if _, ok := want.Weights[full]; !ok {
				if a := clusterAlias(full, ns); a != "" {
					key = a
				}
			}
			named[key] += w
		}
		if !equalWeights(want.Weights, named) {
			out = append(out, mismatch{What: where + " weights", Expected: formatWeights(want.Weights), Seen: formatWeights(named)})
		}
	}
	if want.Retries != nil {
		var n uint32
		if rp := ra.GetRetryPolicy(); rp != nil {
			n = rp.GetNumRetries().GetValue()
		}
		if n != *want.Retries {
			out = append(out, mismatch{What: where + " retries", Expected: fmt.Sprint(*want.Retries), Seen: fmt.Sprint(n)})
		}
	}
	if want.Timeout != nil {
		var seen time.Duration
		if ra.GetTimeout() != nil {
			seen = ra.GetTimeout().AsDuration()
		}
		if seen != *want.Timeout {
			out = append(out, mismatch{What: where + " timeout", Expected: want.Timeout.String(), Seen: seen.String() + timeoutNote(seen)})
		}
	}
	return out
}

func timeoutNote(d time.Duration) string {
	if d == 0 {
		return " (none)"
	}
	return ""
}

func equalWeights(a, b map[string]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func formatWeights(w map[string]uint32) string {
	if len(w) == 0 {
		return "no cluster"
	}
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, w[k])
	}
	return strings.Join(parts, ",")
}

// endpointIPs returns the IPs of a cluster's endpoints, sorted (ports differ between a Service and its
// pods, so pods are compared by address).
func endpointIPs(d *tables.Dump, cluster string) []string {
	var out []string
	for _, a := range scenarios.EndpointAddrs(d, cluster) {
		out = append(out, hostOf(a))
	}
	sort.Strings(out)
	return out
}

func hostOf(addr string) string {
	if i := strings.LastIndex(addr, ":"); i > 0 && !strings.HasSuffix(addr, "]") {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
