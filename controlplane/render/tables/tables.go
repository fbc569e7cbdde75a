// Package tables prints Envoy config dumps in istioctl's proxy-config table formats, so what a learner sees
// in meshlab reads like real Istio. `meshlab proxy-config` uses it on a dump file; the live control plane can
// use it on the dumps it serves.
package tables

import (
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	matcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	// The generators register every extension type a meshlab dump contains, so Any fields resolve.
	_ "github.com/meshlab/meshlab/controlplane/configgen"
)

// Dump is the resources of one config dump, unpacked.
type Dump struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment

	// inline, when set (by Filter), holds the clusters' inline load assignments by cluster name, filtered;
	// otherwise they are read from Clusters.
	inline map[string]*endpointv3.ClusterLoadAssignment

	// Bootstrap and Secrets are the dump's bootstrap and secrets sections, if any (for `all`).
	Bootstrap *adminv3.BootstrapConfigDump
	Secrets   *adminv3.SecretsConfigDump
}

// FromConfigDump unpacks the static and dynamic resources of an Envoy admin config dump.
func FromConfigDump(cd *adminv3.ConfigDump) (*Dump, error) {
	d := &Dump{}
	for _, a := range cd.Configs {
		m, err := a.UnmarshalNew()
		if err != nil {
			// A section of a kind this binary does not know (shown by name in -o json): not one of the four.
			continue
		}
		switch s := m.(type) {
		case *adminv3.BootstrapConfigDump:
			d.Bootstrap = s
		case *adminv3.SecretsConfigDump:
			d.Secrets = s
		case *adminv3.ListenersConfigDump:
			for _, l := range s.StaticListeners {
				if err := add(&d.Listeners, l.Listener); err != nil {
					return nil, err
				}
			}
			for _, l := range s.DynamicListeners {
				if err := add(&d.Listeners, l.GetActiveState().GetListener()); err != nil {
					return nil, err
				}
			}
		case *adminv3.RoutesConfigDump:
			for _, r := range s.StaticRouteConfigs {
				if err := add(&d.Routes, r.RouteConfig); err != nil {
					return nil, err
				}
			}
			for _, r := range s.DynamicRouteConfigs {
				if err := add(&d.Routes, r.RouteConfig); err != nil {
					return nil, err
				}
			}
		case *adminv3.ClustersConfigDump:
			for _, c := range s.StaticClusters {
				if err := add(&d.Clusters, c.Cluster); err != nil {
					return nil, err
				}
			}
			for _, c := range s.DynamicActiveClusters {
				if err := add(&d.Clusters, c.Cluster); err != nil {
					return nil, err
				}
			}
		case *adminv3.EndpointsConfigDump:
			for _, e := range s.StaticEndpointConfigs {
				if err := add(&d.Endpoints, e.EndpointConfig); err != nil {
					return nil, err
				}
			}
			for _, e := range s.DynamicEndpointConfigs {
				if err := add(&d.Endpoints, e.EndpointConfig); err != nil {
					return nil, err
				}
			}
		}
	}
	return d, nil
}

func add[T proto.Message](list *[]T, a *anypb.Any) error {
	if a == nil {
		return nil
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return fmt.Errorf("unpacking %s: %w", a.TypeUrl, err)
	}
	t, ok := m.(T)
	if !ok {
		return fmt.Errorf("unexpected %s in config dump section", a.TypeUrl)
	}
	*list = append(*list, t)
	return nil
}

func newWriter(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 1, ' ', 0) }

// Listeners prints listeners: `ADDRESSES PORT MATCH DESTINATION`, or with waypoint set the waypoint view
// `LISTENER CHAIN MATCH DESTINATION` that follows main_internal's filter-chain matcher.
func Listeners(w io.Writer, d *Dump, waypoint bool) error { return listeners(w, d, waypoint, false) }

// listeners prints the listeners table; named adds istioctl's NAME column (listener/NAME) of `all`.
func listeners(w io.Writer, d *Dump, waypoint, named bool) error {
	tw := newWriter(w)
	ls := append([]*listenerv3.Listener(nil), d.Listeners...)
	if waypoint {
		// As istioctl's waypoint view: internal listeners by name, the others by port, address and type
		// (sort.Slice with istioctl's comparator, so ties come out in its order); every listener named
		// envoy://NAME, or "internal" when an internal listener's only chain already carries that name.
		sort.Slice(ls, func(i, j int) bool {
			if ls[i].GetInternalListener() != nil && ls[j].GetInternalListener() != nil {
				return ls[i].Name < ls[j].Name
			}
			return listenerLess(ls[i], ls[j])
		})
		fmt.Fprintln(tw, "LISTENER\tCHAIN\tMATCH\tDESTINATION")
		for _, l := range ls {
			name := "envoy://" + l.Name
			if cs := chains(l); l.GetInternalListener() != nil && len(cs) == 1 && cs[0].Name == name {
				name = "internal"
			}
			for _, fc := range chains(l) {
				for _, m := range chainMatches(l, fc) {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, fc.Name, m, destination(fc.Filters))
				}
			}
		}
		return tw.Flush()
	}
	sort.SliceStable(ls, func(i, j int) bool { return listenerLess(ls[i], ls[j]) })
	// As istioctl: the listener's addresses (an internal listener has none), each chain's filter_chain_match
	// (a filter_chain_matcher tree is shown in the waypoint view only), chains by destination descending.
	header, name := "ADDRESSES\tPORT\tMATCH\tDESTINATION", ""
	if named {
		header = "NAME\t" + header
	}
	fmt.Fprintln(tw, header)
	for _, l := range ls {
		if named {
			name = "listener/" + l.Name + "\t"
		}
		addrs := []string{listenerAddress(l)}
		for _, a := range l.GetAdditionalAddresses() {
			addrs = append(addrs, a.GetAddress().GetSocketAddress().GetAddress())
		}
		type row struct{ match, dest string }
		var rows []row
		for _, fc := range chains(l) {
			rows = append(rows, row{describeFilterChainMatch(fc.FilterChainMatch), destination(fc.Filters)})
		}
		// sort.Slice, not SliceStable, on purpose: istioctl sorts these rows with it, and rows of the same
		// destination then come out in its (deterministic, unstable) order only with the same algorithm.
		sort.Slice(rows, func(i, j int) bool { return rows[i].dest > rows[j].dest })
		for _, r := range rows {
			fmt.Fprintf(tw, "%s%s\t%d\t%s\t%s\n", name, strings.Join(addrs, ","), listenerPort(l), r.match, r.dest)
		}
	}
	return tw.Flush()
}

// listenerLess orders listeners as istioctl's tables do: by port, then address, then type.
func listenerLess(a, b *listenerv3.Listener) bool {
	if pa, pb := listenerPort(a), listenerPort(b); pa != pb {
		return pa < pb
	}
	if aa, ab := listenerAddress(a), listenerAddress(b); aa != ab {
		return aa < ab
	}
	return ListenerType(a) < ListenerType(b)
}

func chains(l *listenerv3.Listener) []*listenerv3.FilterChain {
	out := l.FilterChains
	if l.DefaultFilterChain != nil {
		out = append(append([]*listenerv3.FilterChain(nil), out...), l.DefaultFilterChain)
	}
	return out
}

func listenerAddress(l *listenerv3.Listener) string {
	if sa := l.GetAddress().GetSocketAddress(); sa != nil {
		return sa.Address
	}
	return l.GetAddress().GetPipe().GetPath()
}

func listenerPort(l *listenerv3.Listener) uint32 {
	return l.GetAddress().GetSocketAddress().GetPortValue()
}

// chainMatches describes where a listener's matcher tree sends traffic to chain fc, like istioctl:
// "ip=10.96.0.1 -> port=9080"; ALL without a matcher and criteria; NONE when nothing reaches it.
func chainMatches(l *listenerv3.Listener, fc *listenerv3.FilterChain) []string {
	if l.FilterChainMatcher == nil {
		return []string{describeFilterChainMatch(fc.FilterChainMatch)}
	}
	if out, ok := walk(fc.Name, l.FilterChainMatcher); ok {
		return out
	}
	return []string{"NONE"}
}

func walk(chain string, m *matcherv3.Matcher) ([]string, bool) {
	var out []string
	if tree := m.GetMatcherTree(); tree != nil {
		input := tree.GetInput().GetName()
		var entries map[string]*matcherv3.Matcher_OnMatch
		eq := "="
		switch t := tree.GetTreeType().(type) {
		case *matcherv3.Matcher_MatcherTree_ExactMatchMap:
			entries = t.ExactMatchMap.GetMap()
		case *matcherv3.Matcher_MatcherTree_PrefixMatchMap:
			entries, eq = t.PrefixMatchMap.GetMap(), "^"
		}
		keys := make([]string, 0, len(entries))
		for k := range entries {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
		for _, k := range keys {
			prefix := input + eq + k
			for _, s := range onMatch(chain, entries[k]) {
				if s == "" {
					out = append(out, prefix)
				} else {
					out = append(out, prefix+" -> "+s)
				}
			}
		}
	}
	if nm := m.GetOnNoMatch(); nm != nil {
		for _, s := range onMatch(chain, nm) {
			if s == "" {
				s = "ANY"
			}
			out = append(out, s)
		}
	}
	return out, len(out) > 0
}

// onMatch returns the descriptions under one match result that lead to chain ("" for a direct hit).
func onMatch(chain string, om *matcherv3.Matcher_OnMatch) []string {
	if a := om.GetAction(); a != nil {
		if a.GetName() == chain {
			return []string{""}
		}
		return nil
	}
	if m := om.GetMatcher(); m != nil {
		out, _ := walk(chain, m)
		return out
	}
	return nil
}

// keyLess orders IPs numerically and ports as numbers, anything else as text.
func keyLess(a, b string) bool {
	if ia, ib := net.ParseIP(a), net.ParseIP(b); ia != nil && ib != nil {
		return string(ia.To16()) < string(ib.To16())
	}
	if na, ea := strconv.Atoi(a); ea == nil {
		if nb, eb := strconv.Atoi(b); eb == nil {
			return na < nb
		}
	}
	return a < b
}

// describeFilterChainMatch is istioctl's MATCH column for a FilterChainMatch.
func describeFilterChainMatch(m *listenerv3.FilterChainMatch) string {
	if m == nil {
		return "ALL"
	}
	var parts []string
	if len(m.ServerNames) > 0 {
		parts = append(parts, "SNI: "+strings.Join(m.ServerNames, ","))
	}
	if m.TransportProtocol != "" {
		parts = append(parts, "Trans: "+m.TransportProtocol)
	}
	if len(m.ApplicationProtocols) > 0 {
		parts = append(parts, describeALPN(m.ApplicationProtocols))
	}
	port := ""
	if m.DestinationPort != nil {
		port = fmt.Sprintf(":%d", m.DestinationPort.GetValue())
	}
	if len(m.PrefixRanges) > 0 {
		var pf []string
		for _, p := range m.PrefixRanges {
			pf = append(pf, fmt.Sprintf("%s/%d", p.AddressPrefix, p.GetPrefixLen().GetValue()))
		}
		parts = append(parts, "Addr: "+strings.Join(pf, ",")+port)
	} else if port != "" {
		parts = append(parts, "Addr: *"+port)
	}
	if len(parts) == 0 {
		return "ALL"
	}
	return strings.Join(parts, "; ")
}

// describeALPN names the ALPN lists Istio generates as istioctl does, and lists any other.
func describeALPN(protocols []string) string {
	for _, k := range []struct {
		name  string
		alpns []string
	}{
		{"App: HTTP TLS", []string{"http/1.0", "http/1.1", "h2c", "istio-http/1.0", "istio-http/1.1", "istio-h2"}},
		{"App: Istio HTTP Plain", []string{"istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"}},
		{"App: TCP TLS", []string{"istio-peer-exchange", "istio"}},
		{"App: HTTP", []string{"http/1.0", "http/1.1", "h2c"}},
	} {
		if slices.Equal(protocols, k.alpns) {
			return k.name
		}
	}
	return "App: " + strings.Join(protocols, ",")
}

// destination is istioctl's DESTINATION column: where a chain's network filters send traffic.
func destination(filters []*listenerv3.Filter) string {
	for _, f := range filters {
		switch f.Name {
		case "envoy.filters.network.http_connection_manager":
			m := &hcmv3.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
				return err.Error()
			}
			if rc := m.GetRouteConfig(); rc != nil {
				return describeInlineRoute(rc)
			}
			if n := m.GetRds().GetRouteConfigName(); n != "" {
				return "Route: " + n
			}
			return "HTTP"
		case "envoy.filters.network.tcp_proxy":
			if strings.Contains(string(f.GetTypedConfig().GetValue()), "BlackHoleCluster") {
				continue // istioctl looks past a TCP proxy to the BlackHoleCluster
			}
			m := &tcpproxyv3.TcpProxy{}
			if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
				return err.Error()
			}
			if strings.Contains(m.GetCluster(), "Cluster") {
				return m.GetCluster()
			}
			return "Cluster: " + m.GetCluster()
		}
	}
	return "Non-HTTP/Non-TCP"
}

func describeInlineRoute(rc *routev3.RouteConfiguration) string {
	if vhs := rc.GetVirtualHosts(); len(vhs) == 1 && len(vhs[0].Domains) == 1 && vhs[0].Domains[0] == "*" && len(vhs[0].Routes) == 1 {
		r := vhs[0].Routes[0]
		if c := r.GetRoute().GetCluster(); c != "" && r.GetMatch().GetPrefix() == "/" {
			if strings.Contains(c, "Cluster") {
				return c
			}
			return "Cluster: " + c
		}
	}
	var vhosts []string
	for _, vh := range rc.GetVirtualHosts() {
		var ms []string
		for _, r := range vh.Routes {
			ms = append(ms, describeMatch(r.Match))
		}
		desc := strings.Join(ms, ", ")
		if !(len(vh.Domains) == 1 && vh.Domains[0] == "*") {
			desc = strings.Join(vh.Domains, "/") + " " + desc
		}
		vhosts = append(vhosts, desc)
	}
	return "Inline Route: " + strings.Join(vhosts, "; ")
}

// describeMatch is istioctl's MATCH column for a route.
func describeMatch(m *routev3.RouteMatch) string {
	// As istioctl: the path conditions only (headers, CONNECT and the rest are not shown).
	var conds []string
	switch {
	case m.GetPrefix() != "":
		conds = append(conds, m.GetPrefix()+"*")
	case m.GetPathSeparatedPrefix() != "":
		conds = append(conds, "PathPrefix:"+m.GetPathSeparatedPrefix())
	case m.GetPath() != "":
		conds = append(conds, m.GetPath())
	case m.GetSafeRegex() != nil:
		conds = append(conds, "regex "+m.GetSafeRegex().GetRegex())
	}
	return strings.Join(conds, " ")
}

// Routes prints `NAME VHOST NAME DOMAINS MATCH VIRTUAL SERVICE`, one line per route.
func Routes(w io.Writer, d *Dump) error { return routes(w, d, false) }

// routes prints the routes table; named prefixes the names with route/, as istioctl's `all` does.
func routes(w io.Writer, d *Dump, named bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 5, ' ', 0)
	rcs := append([]*routev3.RouteConfiguration(nil), d.Routes...)
	// istioctl orders numeric names (ports) by number and leaves the rest in the dump's order.
	sort.SliceStable(rcs, func(i, j int) bool {
		a, errA := strconv.Atoi(rcs[i].Name)
		b, errB := strconv.Atoi(rcs[j].Name)
		return errA == nil && errB == nil && a < b
	})
	fmt.Fprintln(tw, "NAME\tVHOST NAME\tDOMAINS\tMATCH\tVIRTUAL SERVICE")
	for _, rc := range rcs {
		name := rc.Name
		if named {
			name = "route/" + name
		}
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				if r.GetRoute().GetCluster() == "PassthroughCluster" {
					continue // istioctl leaves out the routes to the passthrough cluster
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, vh.Name, describeDomains(vh), describeMatch(r.Match), describeConfig(r.Metadata))
			}
			if len(vh.Routes) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, vh.Name, describeDomains(vh), "/*", "404")
			}
		}
	}
	return tw.Flush()
}

// describeDomains shows up to two distinct host names (ports dropped, the virtual host's own name skipped)
// and how many more there are, as istioctl does.
func describeDomains(vh *routev3.VirtualHost) string {
	domains := vh.GetDomains()
	switch len(domains) {
	case 0:
		return ""
	case 1:
		return domains[0]
	}
	// As istioctl: the domains without a port (an IPv6 address only when bracketed with no port), then
	// without the longer forms of a name also listed short (NAME.svc.cluster.local and NAME.svc when NAME
	// is there), in their order; two of them and a count.
	var hosts []string
	for _, d := range domains {
		if !strings.Contains(d, ":") || strings.Count(d, ":") > 2 && strings.HasSuffix(d, "]") {
			hosts = append(hosts, d)
		}
	}
	listed := map[string]bool{}
	for _, h := range hosts {
		listed[h] = true
	}
	short := hosts[:0:0]
	for _, h := range hosts {
		full, partial := strings.TrimSuffix(h, ".svc.cluster.local"), strings.TrimSuffix(h, ".svc")
		if full != h && listed[full] || partial != h && listed[partial] {
			continue
		}
		short = append(short, h)
	}
	if len(short) > 2 {
		return fmt.Sprintf("%s + %d more...", strings.Join(short[:2], ", "), len(short)-2)
	}
	return strings.Join(short, ", ")
}

// describeConfig turns Istio's config metadata (/apis/GROUP/VERSION/namespaces/NS/KIND/NAME) into NAME.NS.
func describeConfig(md *corev3.Metadata) string {
	path := md.GetFilterMetadata()["istio"].GetFields()["config"].GetStringValue()
	parts := strings.Split(path, "/")
	if len(parts) == 8 && parts[4] == "namespaces" {
		return parts[7] + "." + parts[5]
	}
	return ""
}

// ParseClusterName splits direction|port|subset|host; ok is false for names without three bars.
func ParseClusterName(name string) (direction, port, subset, host string, ok bool) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 {
		return "", "", "", "", false
	}
	return parts[0], parts[1], parts[2], parts[3], true
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clusterType is istioctl's TYPE column: the discovery type (STATIC for a custom cluster_type).
func clusterType(c *clusterv3.Cluster) string {
	return c.GetType().String()
}

// Clusters prints `SERVICE FQDN PORT SUBSET DIRECTION TYPE DESTINATION RULE`; names without bars print as
// `name - - - TYPE`.
func Clusters(w io.Writer, d *Dump) error { return clusters(w, d, false) }

// clusters prints the clusters table; named adds istioctl's NAME column (cluster/NAME) of `all`, where a
// name without bars is shown as cluster/NAME in SERVICE FQDN too, as istioctl does.
func clusters(w io.Writer, d *Dump, named bool) error {
	type row struct {
		name                                   string
		fqdn, port, subset, direction, typ, dr string
		// istioctl's sort keys: host, subset, port as a number, direction; a name without bars is the host.
		host, sortSubset, sortDirection string
		sortPort                        int
	}
	var rows []row
	for _, c := range d.Clusters {
		if dir, port, subset, host, ok := ParseClusterName(c.Name); ok {
			p, _ := strconv.Atoi(port)
			rows = append(rows, row{c.Name, host, port, dash(subset), dir, clusterType(c), describeConfig(c.Metadata), host, subset, dir, p})
		} else {
			fqdn := c.Name
			if named && c.Name != "" {
				fqdn = "cluster/" + c.Name
			}
			rows = append(rows, row{c.Name, fqdn, "-", "-", "-", clusterType(c), describeConfig(c.Metadata), c.Name, "", "", 0})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.host != b.host {
			return a.host < b.host
		}
		if a.sortSubset != b.sortSubset {
			return a.sortSubset < b.sortSubset
		}
		if a.sortPort != b.sortPort {
			return a.sortPort < b.sortPort
		}
		return a.sortDirection < b.sortDirection
	})
	tw := tabwriter.NewWriter(w, 0, 8, 5, ' ', 0)
	header := "SERVICE FQDN\tPORT\tSUBSET\tDIRECTION\tTYPE\tDESTINATION RULE"
	if named {
		header = "NAME\t" + header
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		if named && r.name != "" {
			fmt.Fprintf(tw, "cluster/%s\t", r.name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.fqdn, r.port, r.subset, r.direction, r.typ, r.dr)
	}
	return tw.Flush()
}

// Address prints an Envoy address as istioctl does: IP:PORT, envoy://LISTENER/ENDPOINT-ID for internal
// addresses, unix://PATH for pipes.
func Address(a *corev3.Address) string {
	switch {
	case a.GetSocketAddress() != nil:
		sa := a.GetSocketAddress()
		return net.JoinHostPort(sa.Address, strconv.FormatUint(uint64(sa.GetPortValue()), 10))
	case a.GetEnvoyInternalAddress() != nil:
		ia := a.GetEnvoyInternalAddress()
		return "envoy://" + ia.GetServerListenerName() + "/" + ia.EndpointId
	case a.GetPipe() != nil:
		return "unix://" + a.GetPipe().Path
	}
	return ""
}

// Endpoints prints `ENDPOINT STATUS OUTLIER CHECK CLUSTER` for EDS assignments and the load assignments of
// static clusters.

// endpointRow is one line of the endpoints table.
type endpointRow struct {
	address string
	port    uint32
	status  corev3.HealthStatus
	outlier bool
	cluster string
}

// endpointAddress splits an endpoint address as istioctl prints it: IP and port, or the whole
// envoy://LISTENER/ENDPOINT_ID (or pipe path) with port 0.
func endpointAddress(a *corev3.Address) (string, uint32) {
	if sa := a.GetSocketAddress(); sa != nil {
		return sa.GetAddress(), sa.GetPortValue()
	}
	if p := a.GetPipe(); p != nil {
		return "unix://" + p.GetPath(), 0
	}
	if ia := a.GetEnvoyInternalAddress(); ia != nil && ia.GetServerListenerName() != "" {
		return "envoy://" + ia.GetServerListenerName() + "/" + ia.GetEndpointId(), 0
	}
	return "unknown", 0
}

// printEndpoints prints rows as `istioctl proxy-config endpoints` does: sorted by address, port and
// cluster, ADDRESS:PORT, the EDS health status, OK or FAILED for the outlier check.
func printEndpoints(w io.Writer, rows []endpointRow) error {
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].address != rows[j].address {
			return rows[i].address < rows[j].address
		}
		if rows[i].port != rows[j].port {
			return rows[i].port < rows[j].port
		}
		return rows[i].cluster < rows[j].cluster
	})
	tw := tabwriter.NewWriter(w, 0, 8, 5, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tSTATUS\tOUTLIER CHECK\tCLUSTER")
	for _, r := range rows {
		ep := r.address
		if r.port != 0 {
			ep += ":" + strconv.Itoa(int(r.port))
		}
		outlier := "OK"
		if r.outlier {
			outlier = "FAILED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ep, r.status, outlier, r.cluster)
	}
	return tw.Flush()
}

// Endpoints prints the endpoints of a config dump in istioctl's `proxy-config endpoints` table
// (ENDPOINT STATUS OUTLIER CHECK CLUSTER): the EDS assignments (a dump taken with ?include_eds, or
// rendered) and the clusters' inline load assignments. An unknown health status shows as HEALTHY, as
// Envoy reports it. A live proxy's endpoints are best read from /clusters?format=json: EndpointsFromClusters.
func Endpoints(w io.Writer, d *Dump) error {
	var rows []endpointRow
	add := func(name string, c *endpointv3.ClusterLoadAssignment) {
		for _, loc := range c.GetEndpoints() {
			for _, lb := range loc.LbEndpoints {
				status := lb.HealthStatus
				if status == corev3.HealthStatus_UNKNOWN {
					status = corev3.HealthStatus_HEALTHY
				}
				addr, port := endpointAddress(lb.GetEndpoint().GetAddress())
				rows = append(rows, endpointRow{address: addr, port: port, status: status, cluster: name})
			}
		}
	}
	seen := map[string]bool{}
	for _, c := range d.Endpoints {
		if !seen[c.ClusterName] {
			seen[c.ClusterName] = true
			add(c.ClusterName, c)
		}
	}
	if d.inline != nil { // filtered: every cluster's, whatever the cluster filter (rows are sorted below)
		for name, la := range d.inline {
			if !seen[name] {
				seen[name] = true
				add(name, la)
			}
		}
	} else {
		for _, c := range d.Clusters {
			if la := c.GetLoadAssignment(); la != nil && !seen[c.Name] {
				seen[c.Name] = true
				add(c.Name, la)
			}
		}
	}
	return printEndpoints(w, rows)
}

// EndpointsFromClusters prints the hosts of an Envoy /clusters?format=json answer the way
// `istioctl proxy-config endpoints` does (which reads that, not the config dump).
func EndpointsFromClusters(w io.Writer, cs *adminv3.Clusters) error {
	var rows []endpointRow
	for _, c := range cs.GetClusterStatuses() {
		for _, h := range c.GetHostStatuses() {
			addr, port := endpointAddress(h.GetAddress())
			rows = append(rows, endpointRow{address: addr, port: port, status: h.GetHealthStatus().GetEdsHealthStatus(),
				outlier: h.GetHealthStatus().GetFailedOutlierCheck(), cluster: c.GetName()})
		}
	}
	return printEndpoints(w, rows)
}

// All prints what `istioctl proxy-config all` prints: the bootstrap's Istio and Envoy versions, then
// clusters, listeners and routes with a NAME column (TYPE/NAME), the secrets, and the EDS endpoints
// (NAME STATUS LOCALITY CLUSTER), separated by blank lines. With waypoint the listeners are in the
// waypoint view. A section the dump lacks prints as an empty table (istioctl refuses such a dump).
func All(w io.Writer, d *Dump, waypoint bool) error {
	for i, f := range []func() error{
		func() error { return BootstrapSummary(w, d) },
		func() error { return clusters(w, d, true) },
		func() error {
			if waypoint {
				return listeners(w, d, true, false)
			}
			return listeners(w, d, false, true)
		},
		func() error { return routes(w, d, true) },
		func() error { return Secrets(w, d, true) },
		func() error { return edsEndpoints(w, d) },
	} {
		if i > 0 {
			if _, err := fmt.Fprintln(w); err != nil {
				return err
			}
		}
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}
