// Package render implements `meshlab render`: print what one proxy would receive from the control plane,
// computed offline from Kubernetes YAML.
package render

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/controlplane/model"
	cprender "github.com/meshlab/meshlab/controlplane/render"
)

type flagpole struct {
	files  []string
	proxy  string
	output string
}

// NewCommand returns the render command.
func NewCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "render -f PATH [-f PATH...] --proxy waypoint/NAMESPACE/NAME|gateway/NAMESPACE/NAME|sidecar/NAMESPACE/POD|ztunnel/NODE",
		Short: "Print the config one proxy would receive, computed from YAML without a cluster",
		Long: `render reads Kubernetes YAML (Namespaces, Services with spec.clusterIP, Pods with labels,
serviceAccountName, spec.nodeName and status.podIP, ServiceAccounts, Gateways, HTTPRoutes, VirtualServices,
DestinationRules, AuthorizationPolicies, PeerAuthentications, RequestAuthentications) into the control
plane's config store and prints what the proxy would receive: an Envoy /config_dump for a waypoint, ingress
gateway or sidecar, workloads, services and policies for a ztunnel.
Every object is decoded strictly and validated as Istio's admission webhook and the API server would:
a misspelt field, a duplicate key or an invalid value is an error naming file, document, line and field, and
nothing is rendered (exit 2). kind: List documents are read as their items. Problems found in the valid
config (a route to a service that does not exist...) are reported as warnings; they do not stop the rest
from rendering.

What meshlab does not implement is never silently ignored (docs/api-coverage.md): a field whose being
ignored degrades gracefully (a mirror, a load balancer setting...) is a warning "meshlab does not implement
<Kind> <field>"; one whose being ignored would mislead (an AuthorizationPolicy condition, a redirect, a
match condition...) is an error, as the validating webhook denies it, and nothing is rendered (exit 2).
Kinds meshlab does not act on (ServiceEntry, PeerAuthentication, Sidecar...) are skipped with a warning.`,
		Example: `  meshlab render -f bookinfo.yaml -f reviews-vs.yaml --proxy waypoint/default/reviews-waypoint
  meshlab render -f manifests/ --proxy ztunnel/meshlab-worker -o yaml`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runE(env, flags) },
	}
	cmd.Flags().StringArrayVarP(&flags.files, "filename", "f", nil, "YAML file or directory to read (repeatable)")
	cmd.Flags().StringVar(&flags.proxy, "proxy", "", "proxy to render: waypoint/NAMESPACE/NAME, gateway/NAMESPACE/NAME (a Gateway of class istio), sidecar/NAMESPACE/POD or ztunnel/NODE")
	cmd.Flags().StringVarP(&flags.output, "output", "o", cprender.FormatJSON, "output format: json or yaml")
	return cmd
}

func runE(env cliutil.Env, flags *flagpole) error {
	if len(flags.files) == 0 {
		return cliutil.Usagef("no input: give at least one -f PATH")
	}
	if flags.proxy == "" {
		return cliutil.Usagef("no proxy: give --proxy waypoint/NAMESPACE/NAME, gateway/NAMESPACE/NAME, sidecar/NAMESPACE/POD or ztunnel/NODE")
	}
	if flags.output != cprender.FormatJSON && flags.output != cprender.FormatYAML {
		return cliutil.Usagef("unknown output format %q; want json or yaml", flags.output)
	}
	proxy, err := model.ProxyFromID(flags.proxy)
	if err != nil {
		return cliutil.Usagef("%v", err)
	}
	snap, err := cliutil.LoadMesh(env, flags.files)
	if err != nil {
		return err
	}
	out, err := cprender.Render(snap, proxy)
	if err != nil {
		var nf *model.NotFoundError
		if errors.As(err, &nf) {
			return fmt.Errorf("proxy %s: %w", flags.proxy, err)
		}
		return err
	}
	data, err := out.Marshal(flags.output)
	if err != nil {
		return err
	}
	_, err = env.Streams.Out.Write(data)
	return err
}
