// Package proxyconfig implements `meshlab proxy-config`: print an Envoy config dump (from `meshlab render`
// or a proxy's admin API) in istioctl's proxy-config table formats.
package proxyconfig

import (
	"context"
	"encoding/json"
	"fmt"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshlab/meshlab/cli/cliutil"
	cprender "github.com/meshlab/meshlab/controlplane/render"
	"github.com/meshlab/meshlab/controlplane/render/tables"
)

type flagpole struct {
	file     string
	waypoint bool
	output   string
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
	{"all", []string{"a"}, "Print clusters, listeners, routes and endpoints of a config dump"},
}

// NewCommand returns the proxy-config command and its subcommands.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "proxy-config listeners|routes|clusters|endpoints|all [TARGET | --file DUMP]",
		Aliases: []string{"pc"},
		Short:   "Print an Envoy config dump in istioctl's proxy-config tables",
		Args:    cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cliutil.Usagef("name what to print: listeners, routes, clusters, endpoints or all")
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
		sub.Flags().BoolVar(&flags.waypoint, "waypoint", false, "show listeners in the waypoint view (LISTENER CHAIN MATCH DESTINATION)")
		sub.Flags().StringVarP(&flags.output, "output", "o", "", "output format: json or yaml (default: table)")
		cmd.AddCommand(sub)
	}
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, flags *flagpole, section string, args []string) error {
	switch flags.output {
	case "", cprender.FormatJSON, cprender.FormatYAML:
	default:
		return cliutil.Usagef("unknown output format %q; want json or yaml", flags.output)
	}
	// Live, as istioctl does: endpoints from /clusters?format=json (the hosts Envoy has, EDS included),
	// everything else from /config_dump, with EDS for "all".
	path := "/config_dump"
	switch section {
	case "endpoints":
		path = "/clusters?format=json"
	case "all":
		path = "/config_dump?include_eds"
	}
	data, source, err := readDump(ctx, env, flags, args, path) // --file DUMP, or live from TARGET (live.go)
	if err != nil {
		return err
	}
	if section == "endpoints" && isClustersJSON(data) {
		cs := &adminv3.Clusters{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, cs); err != nil {
			return fmt.Errorf("%s: parsing /clusters?format=json: %w", source, err)
		}
		if flags.output != "" {
			var msgs []proto.Message
			for _, c := range cs.ClusterStatuses {
				msgs = append(msgs, c)
			}
			return printMessages(env, msgs, flags.output)
		}
		return tables.EndpointsFromClusters(env.Streams.Out, cs)
	}
	cd, err := cprender.ParseConfigDump(data)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	if flags.output != "" && section == "all" {
		out, err := cprender.MarshalProto(cd, flags.output)
		if err != nil {
			return err
		}
		_, err = env.Streams.Out.Write(out)
		return err
	}
	d, err := tables.FromConfigDump(cd)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	if flags.output != "" {
		return printList(env, d, section, flags.output)
	}
	out := env.Streams.Out
	switch section {
	case "listeners":
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

// printMessages prints msgs as one JSON or YAML list.
func printMessages(env cliutil.Env, msgs []proto.Message, format string) error {
	list := &structpb.ListValue{}
	for _, m := range msgs {
		b, err := cprender.MarshalProto(m, cprender.FormatJSON)
		if err != nil {
			return err
		}
		v := &structpb.Value{}
		if err := v.UnmarshalJSON(b); err != nil {
			return fmt.Errorf("re-encoding %T: %w", m, err)
		}
		list.Values = append(list.Values, v)
	}
	out, err := cprender.MarshalProto(list, format)
	if err != nil {
		return err
	}
	_, err = env.Streams.Out.Write(out)
	return err
}
