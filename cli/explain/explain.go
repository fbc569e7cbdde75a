// Package explain implements `meshlab explain`: the path one request takes through the mesh, hop by hop,
// predicted from the config each proxy holds: generated from YAML as `meshlab render` does (-f), or read
// from the running lab's proxies (explain/live); with --observe, compared with what the access logs show.
package explain

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/explain"
)

type flagpole struct {
	files     []string
	from      string
	namespace string
	method    string
	headers   []string
	output    string
	observe   bool
}

// observeWait bounds how long --observe waits for the access-log lines (ztunnel writes its line when
// the connection closes, a moment after the answer).
const observeWait = 20 * time.Second

// NewCommand returns the explain command.
func NewCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "explain [-f PATH...] [--from NAMESPACE/POD | --from deploy/NAME [-n NAMESPACE]] URL [-X METHOD] [-H 'NAME: VALUE']... [--observe]",
		Short: "Explain hop by hop where a request goes and why, from the config each proxy holds",
		Long: `explain predicts the path of one HTTP request through the mesh:
  - the source pod: captured by ambient, a sidecar, an ingress gateway, or not at all, and which label on
    which object decided;
  - its ztunnel: the destination VIP or pod and its Service, whether a waypoint is used and which
    istio.io/use-waypoint label decided, the HBONE target and the identity it expects;
  - the waypoint, sidecar or ingress gateway: listener, filter chain and the match that selected it, route
    configuration, virtual host, the route that matched (and why each earlier one did not) with its
    VirtualService or HTTPRoute rule, weighted clusters with their probabilities, endpoints (subset
    labels), retries, timeout, fault, and its L7 AuthorizationPolicies' verdict;
  - each destination pod and port, with its ztunnel's L4 authorization verdict (or its sidecar's).
The decisions are made by meshlab's own data-plane code (the L7 engine's route matcher and RBAC,
ztunnel's outbound resolution and L4 authorization) on the proxies' config: never a second model of routing.

Where the config comes from:
  - with -f (offline): what the control plane would send each proxy, generated from the YAML as
    'meshlab render' does; --from NAMESPACE/POD names a pod in the YAML.
  - without -f (live, on the lab --name names): the lab's objects as the control plane sees them (listed
    through its own informers), and for each proxy on the path the config it actually holds: its own
    admin /config_dump (waypoints, sidecars, gateways as 'meshlab proxy-config' reads it; ztunnels as
    'meshlab ztunnel-config' reads it), through the API server's port-forward. A proxy whose dump cannot be
    read gets the generated config instead; "config read from" says which. --from is NAMESPACE/POD,
    POD or deploy/NAME (in -n NAMESPACE); the default is deploy/sleep.

--observe (live) then sends the request from the source pod (meshlab curl in the pod, as the scenarios
do) with a fresh x-request-id, reads the hops that actually happened from the access logs of the
ztunnels and the waypoint on the way (the scenarios' path check), and prints predicted and observed side
by side. It exits 1 when they differ.

URL is http://HOST[:PORT]/PATH; HOST is a Service (name, name.namespace or FQDN, from the source's
namespace), a Service VIP or a pod IP. When --from names an ingress gateway's pod, URL is the request as it
reaches the gateway: its port picks the listener (default 80), its host the virtual host.

Input errors (malformed YAML, an unknown pod, a host that is no Service) exit 2 naming file and line where
they come from a file; so does a lab that cannot be reached.`,
		Example: `  meshlab explain http://reviews:9080/reviews/0 -H 'end-user: jason'          # live, from deploy/sleep
  meshlab explain --from deploy/productpage-v1 http://reviews:9080/reviews/0 --observe
  meshlab explain -f bookinfo.yaml -f reviews-vs.yaml --from default/productpage-v1-6b746f74dc-9stvs http://reviews:9080/reviews/0
  meshlab explain -f manifests/ --from default/sleep-5c4d8d9b8b-abcde http://reviews:9080/ -o json`,
		Args: cliutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runE(cmd.Context(), env, flags, args[0]) },
	}
	cmd.Flags().StringArrayVarP(&flags.files, "filename", "f", nil, "YAML file or directory to read (repeatable); without it explain reads the running lab")
	cmd.Flags().StringVar(&flags.from, "from", "", "source: NAMESPACE/POD; live also POD or deploy/NAME in -n NAMESPACE (default deploy/sleep)")
	cmd.Flags().StringVarP(&flags.namespace, "namespace", "n", "", "namespace of a live --from POD or deploy/NAME (default: the context's, default in the lab)")
	cmd.Flags().StringVarP(&flags.method, "request", "X", http.MethodGet, "HTTP method")
	cmd.Flags().StringArrayVarP(&flags.headers, "header", "H", nil, "request header 'NAME: VALUE' (repeatable)")
	cmd.Flags().StringVarP(&flags.output, "output", "o", "text", "output format: text or json")
	cmd.Flags().BoolVar(&flags.observe, "observe", false, "live: send the request from the source pod and compare the access logs with the prediction (exit 1 when they differ)")
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, flags *flagpole, rawURL string) error {
	if flags.output != "text" && flags.output != "json" {
		return cliutil.Usagef("unknown output format %q; want text or json", flags.output)
	}
	headers := http.Header{}
	for _, h := range flags.headers {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return cliutil.Usagef("-H %q: want 'NAME: VALUE'", h)
		}
		headers.Add(name, strings.TrimSpace(value))
	}
	if len(headers) == 0 {
		headers = nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if len(flags.files) == 0 {
		return runLive(ctx, env, flags, rawURL, headers)
	}
	if flags.observe {
		return cliutil.Usagef("--observe sends the request on the running lab: drop -f to explain the lab's own config")
	}
	if strings.HasPrefix(flags.from, "deploy/") {
		return cliutil.Usagef("--from %s names a Deployment of a running lab; with -f give --from NAMESPACE/POD (a pod in the YAML)", flags.from)
	}
	if flags.from == "" {
		return cliutil.Usagef("no source: give --from NAMESPACE/POD")
	}
	snap, err := cliutil.LoadMesh(env, flags.files)
	if err != nil {
		return err
	}
	report, err := explain.Explain(explain.Offline{Snapshot: snap}, explain.Request{From: flags.from, URL: rawURL, Method: flags.method, Headers: headers})
	if err != nil {
		return explainError(err)
	}
	if flags.output == "json" {
		return cliutil.WriteJSON(env.Streams.Out, report)
	}
	return report.WriteText(env.Streams.Out)
}

func explainError(err error) error {
	var in *explain.InputError
	if errors.As(err, &in) {
		return &cliutil.UsageError{Err: err}
	}
	return err
}
