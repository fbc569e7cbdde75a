// Package proxyconfig implements `meshlab proxy-config`: print an Envoy config dump (from `meshlab render`
// or a proxy's admin API) in istioctl's proxy-config table formats.
package proxyconfig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"github.com/golang/protobuf/jsonpb" //nolint:staticcheck // deprecated, but it is istioctl's marshaller: same bytes
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/cli/cliutil"
	cprender "github.com/meshlab/meshlab/controlplane/render"
	"github.com/meshlab/meshlab/controlplane/render/tables"
)

type flagpole struct {
	file     string
	waypoint bool
	output   string

	// istioctl's filters (`istioctl proxy-config ... --help`), with its meaning.
	fqdn, subset, direction string // clusters
	port                    int    // clusters, listeners, endpoints
	address, listenerType   string // listeners, endpoints
	routeName               string // routes
	cluster, status         string // endpoints
}

// filter is what the flags select, per table, as istioctl builds its filters.
func (f *flagpole) filter() tables.Filter {
	return tables.Filter{
		Cluster:  tables.ClusterFilter{FQDN: f.fqdn, Port: f.port, Subset: f.subset, Direction: f.direction},
		Listener: tables.ListenerFilter{Address: f.address, Port: uint32(f.port), Type: f.listenerType},
		Route:    tables.RouteFilter{Name: f.routeName},
		Endpoint: tables.EndpointFilter{Address: f.address, Port: uint32(f.port), Cluster: f.cluster, Status: f.status},
	}
}

// registerFilters adds the filter flags istioctl has on section. The local --name (routes, all) and
// --cluster (endpoints) hide meshlab's global flags of those names there, as in `meshlab waypoint`: the
// kind cluster is then named with the other global, --cluster or --name.
func registerFilters(cmd *cobra.Command, section string, f *flagpole) {
	fl := cmd.Flags()
	switch section {
	case "clusters", "all":
		fl.StringVar(&f.fqdn, "fqdn", "", "filter clusters by substring of Service FQDN field")
		fl.StringVar(&f.direction, "direction", "", "filter clusters by substring of Direction field (inbound, outbound, inbound-vip, ...)")
		fl.StringVar(&f.subset, "subset", "", "filter clusters by substring of Subset field")
	}
	switch section {
	case "listeners", "all":
		fl.StringVar(&f.address, "address", "", "filter listeners by address field")
		fl.StringVar(&f.listenerType, "type", "", "filter listeners by type field: HTTP, TCP, HTTP+TCP or UNKNOWN")
	case "endpoints":
		fl.StringVar(&f.address, "address", "", "filter endpoints by address field (the IP, as in the ENDPOINT column without its port)")
		fl.StringVar(&f.cluster, "cluster", "", "filter endpoints by cluster name field (here --cluster is not the kind cluster: name that with --name)")
		fl.StringVar(&f.status, "status", "", "filter endpoints by status field (HEALTHY, UNHEALTHY, DRAINING, ...)")
	}
	switch section {
	case "routes", "all":
		fl.StringVar(&f.routeName, "name", "", "filter routes by route name field (here --name is not the kind cluster: name that with --cluster)")
	}
	switch section {
	case "clusters":
		fl.IntVar(&f.port, "port", 0, "filter clusters by Port field")
	case "listeners":
		fl.IntVar(&f.port, "port", 0, "filter listeners by Port field")
	case "endpoints":
		fl.IntVar(&f.port, "port", 0, "filter endpoints by Port field")
	case "all":
		fl.IntVar(&f.port, "port", 0, "filter clusters, listeners and endpoints by Port field")
	}
}

// sections maps each subcommand (and its istioctl aliases) to what it prints.
var sections = []struct {
	name    string
	aliases []string
	short   string
}{
	{"listeners", []string{"listener", "l"}, "Print the listeners of a config dump"},
	{"routes", []string{"route", "r"}, "Print the routes of a config dump"},
	{"clusters", []string{"cluster", "c"}, "Print the clusters of a config dump"},
	{"endpoints", []string{"endpoint", "ep"}, "Print the endpoints of a config dump"},
	{"secret", []string{"secrets", "s"}, "Print the secrets (certificates) of a config dump"},
	{"bootstrap", []string{"b"}, "Print the bootstrap of a config dump (JSON by default, as istioctl; -o short for the versions)"},
	{"all", []string{"a"}, "Print clusters, listeners, routes and endpoints of a config dump"},
}

// NewCommand returns the proxy-config command and its subcommands.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "proxy-config listeners|routes|clusters|endpoints|secret|bootstrap|all [TARGET | --file DUMP]",
		Aliases: []string{"pc"},
		Short:   "Print an Envoy config dump in istioctl's proxy-config tables",
		Args:    cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cliutil.Usagef("name what to print: listeners, routes, clusters, endpoints, secret, bootstrap or all")
		},
	}
	for _, s := range sections {
		flags := &flagpole{}
		section := s.name
		sub := &cobra.Command{
			Use:     s.name + " [TARGET | --file DUMP]",
			Aliases: s.aliases,
			Short:   s.short,
			Example: "  meshlab render -f bookinfo.yaml --proxy waypoint/default/reviews-waypoint > dump.json\n" +
				"  meshlab proxy-config " + s.name + " --file dump.json --waypoint\n" +
				"  meshlab proxy-config " + s.name + " deploy/reviews-waypoint --waypoint   # live, from the proxy's admin port",
			Args: cliutil.RangeArgs(0, 1),
			RunE: func(cmd *cobra.Command, args []string) error { return runE(cmd.Context(), env, flags, section, args) },
		}
		sub.Flags().StringVarP(&flags.file, "file", "f", "", "config dump file (JSON or YAML), as written by meshlab render or Envoy's /config_dump; for endpoints also Envoy's /clusters?format=json, as istioctl reads")
		if s.name == "listeners" || s.name == "all" {
			sub.Flags().BoolVar(&flags.waypoint, "waypoint", false, "show listeners in the waypoint view (LISTENER CHAIN MATCH DESTINATION); as in istioctl, the listener filters do not apply to it")
		}
		sub.Flags().StringVarP(&flags.output, "output", "o", "", "output format: json or yaml (default: table); with all, the whole dump as read, unfiltered, as istioctl prints it")
		registerFilters(sub, s.name, flags)
		cmd.AddCommand(sub)
	}
	return cmd
}

// livePaths is what each section asks a running proxy's admin for, as istioctl asks it: endpoints from
// /clusters?format=json (the hosts Envoy has, EDS included), the others from /config_dump masked to their
// own fields (so, as with istioctl, a section's last_updated is not shown), all of it with EDS for "all".
var livePaths = map[string]string{
	"listeners": "/config_dump?mask=dynamic_listeners,static_listeners",
	"routes":    "/config_dump?mask=dynamic_route_configs,static_route_configs",
	"clusters":  "/config_dump?mask=dynamic_active_clusters,dynamic_warming_clusters,static_clusters",
	"endpoints": "/clusters?format=json",
	"secret":    "/config_dump?mask=dynamic_active_secrets,dynamic_warming_secrets",
	"bootstrap": "/config_dump?mask=bootstrap",
	"all":       "/config_dump?include_eds",
}

func runE(ctx context.Context, env cliutil.Env, flags *flagpole, section string, args []string) error {
	switch flags.output {
	case "", cprender.FormatJSON, cprender.FormatYAML:
	case "short":
		if section != "bootstrap" {
			return cliutil.Usagef("-o short is for bootstrap; the other tables are the default output")
		}
	default:
		return cliutil.Usagef("unknown output format %q; want json or yaml", flags.output)
	}
	data, source, err := readDump(ctx, env, flags, args, livePaths[section]) // --file DUMP, or live from TARGET (live.go)
	if err != nil {
		return err
	}
	filter := flags.filter()
	if section == "endpoints" && isClustersJSON(data) {
		cs := &adminv3.Clusters{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, cs); err != nil {
			return fmt.Errorf("%s: parsing /clusters?format=json: %w", source, err)
		}
		hosts, whole := tables.FilterClusters(cs, filter.Endpoint)
		if flags.output != "" {
			var msgs []proto.Message
			for _, c := range whole {
				msgs = append(msgs, c)
			}
			return printMessages(env, msgs, flags.output)
		}
		return tables.EndpointsFromClusters(env.Streams.Out, hosts)
	}
	if err := checkConfigDump(data, source, section); err != nil {
		return err
	}
	if flags.output != "" && section == "all" {
		return printAll(env, data, flags.output)
	}
	cd, err := cprender.ParseConfigDump(data)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	d, err := tables.FromConfigDump(cd)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	if section == "endpoints" {
		filter.Endpoint.ByIP = true // --address as the endpoints command means it (the IP)
	}
	full := d
	d = d.Filter(filter)
	switch section {
	case "secret":
		return printSecrets(env, d, flags.output, source)
	case "bootstrap":
		return printBootstrap(env, d, flags.output, source)
	}
	if flags.output != "" {
		return printList(env, d, section, flags.output)
	}
	out := env.Streams.Out
	switch section {
	case "listeners":
		if flags.waypoint { // istioctl's waypoint view ignores the filters
			d = full
		}
		return tables.Listeners(out, d, flags.waypoint)
	case "routes":
		return tables.Routes(out, d)
	case "clusters":
		return tables.Clusters(out, d)
	case "endpoints":
		return tables.Endpoints(out, d)
	}
	return tables.All(out, d, flags.waypoint)
}

// checkConfigDump refuses, with exit status 2, what is not a config dump: a JSON or YAML object with no
// "configs" (or no object at all).
func checkConfigDump(data []byte, source, section string) error {
	js, err := yaml.YAMLToJSON(data)
	var top map[string]json.RawMessage
	if err == nil {
		err = json.Unmarshal(js, &top)
	}
	if err == nil {
		if _, ok := top["configs"]; ok {
			return nil
		}
		err = errors.New(`it has no "configs"`)
	}
	want := "an Envoy config dump (meshlab render, or a proxy's /config_dump)"
	if section == "endpoints" {
		want += " or Envoy's /clusters?format=json"
	}
	return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("%s is not %s: %v", source, want, err)}
}

// printAll prints the whole dump as read, as `istioctl proxy-config all -o json|yaml` does (which applies
// no filter there); a YAML dump (meshlab render -o yaml) is converted to JSON first.
func printAll(env cliutil.Env, data []byte, format string) error {
	if !json.Valid(data) {
		js, err := yaml.YAMLToJSON(data)
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if err := json.Indent(&b, js, "", "  "); err != nil {
			return err
		}
		data = b.Bytes()
	}
	if format == cprender.FormatYAML {
		y, err := yaml.JSONToYAML(data)
		if err != nil {
			return err
		}
		data = y
	}
	_, err := fmt.Fprintln(env.Streams.Out, string(data))
	return err
}

// printSecrets prints the secrets table, or with -o json|yaml the secrets section as istioctl does (indented
// by four spaces).
func printSecrets(env cliutil.Env, d *tables.Dump, format, source string) error {
	if d.Secrets == nil {
		return fmt.Errorf("%s: the config dump has no secrets section", source)
	}
	if format == "" {
		return tables.Secrets(env.Streams.Out, d, false)
	}
	b, err := cprender.MarshalProto(d.Secrets, cprender.FormatJSON)
	if err != nil {
		return err
	}
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return err
	}
	json.HTMLEscape(&out, compact.Bytes())
	var indented bytes.Buffer
	if err := json.Indent(&indented, out.Bytes(), "", "    "); err != nil {
		return err
	}
	b = indented.Bytes()
	if format == cprender.FormatYAML {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintln(env.Streams.Out, string(b))
	return err
}

// printBootstrap prints the bootstrap section as istioctl's proxy-config bootstrap does: JSON by default,
// marshalled as istioctl marshals it (golang/protobuf's jsonpb, four-space indent, so the bytes are the
// same), YAML, or with -o short the versions.
func printBootstrap(env cliutil.Env, d *tables.Dump, format, source string) error {
	if d.Bootstrap == nil {
		return fmt.Errorf("%s: the config dump has no bootstrap section", source)
	}
	if format == "short" {
		return tables.BootstrapSummary(env.Streams.Out, d)
	}
	out, err := (&jsonpb.Marshaler{Indent: "    "}).MarshalToString(protoadapt.MessageV1Of(d.Bootstrap))
	if err != nil {
		return fmt.Errorf("%s: marshalling the bootstrap: %w", source, err)
	}
	if format == cprender.FormatYAML {
		b, err := yaml.JSONToYAML([]byte(out))
		if err != nil {
			return err
		}
		out = string(b)
	}
	_, err = fmt.Fprintln(env.Streams.Out, out)
	return err
}

// isClustersJSON reports whether data is Envoy's /clusters?format=json answer rather than a config dump.
func isClustersJSON(data []byte) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return false
	}
	_, a := top["cluster_statuses"]
	_, b := top["clusterStatuses"]
	return a || b
}

// printList prints one section's resources as a JSON or YAML list, like istioctl's -o json.
func printList(env cliutil.Env, d *tables.Dump, section, format string) error {
	var msgs []proto.Message
	switch section {
	case "listeners":
		for _, m := range d.Listeners {
			msgs = append(msgs, m)
		}
	case "routes":
		for _, m := range d.Routes {
			msgs = append(msgs, m)
		}
	case "clusters":
		for _, m := range d.Clusters {
			msgs = append(msgs, m)
		}
	case "endpoints":
		for _, m := range d.Endpoints {
			msgs = append(msgs, m)
		}
	}
	return printMessages(env, msgs, format)
}

// printMessages prints msgs as one JSON or YAML list, as istioctl does: a JSON array indented by four
// spaces (HTML characters escaped, as Go's encoding/json writes them), or that converted to YAML.
func printMessages(env cliutil.Env, msgs []proto.Message, format string) error {
	var list bytes.Buffer
	list.WriteByte('[')
	for i, m := range msgs {
		b, err := cprender.MarshalProto(m, cprender.FormatJSON)
		if err != nil {
			return err
		}
		if i > 0 {
			list.WriteByte(',')
		}
		if err := json.Compact(&list, b); err != nil {
			return fmt.Errorf("re-encoding %T: %w", m, err)
		}
	}
	list.WriteByte(']')
	var escaped, out bytes.Buffer
	json.HTMLEscape(&escaped, list.Bytes())
	if err := json.Indent(&out, escaped.Bytes(), "", "    "); err != nil {
		return err
	}
	b := out.Bytes()
	if format == cprender.FormatYAML {
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return err
		}
		b = y
	}
	_, err := fmt.Fprintln(env.Streams.Out, string(b))
	return err
}
