// Package explain implements `meshlab explain`: the path one request takes through the mesh, hop by hop,
// predicted from the config each proxy would hold (computed offline from YAML, as `meshlab render` does).
package explain

import (
	"errors"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/explain"
)

type flagpole struct {
	files   []string
	from    string
	method  string
	headers []string
	output  string
	observe bool
}

// NewCommand returns the explain command.
func NewCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "explain -f PATH [-f PATH...] --from NAMESPACE/POD URL [-X METHOD] [-H 'NAME: VALUE']...",
		Short: "Explain hop by hop where a request goes and why, from the config each proxy would hold",
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
The config is what the control plane would send each proxy, generated from the YAML as 'meshlab render'
does, and the decisions are made by meshlab's own data-plane code (the L7 engine's route matcher and RBAC,
ztunnel's outbound resolution and L4 authorization) on that config: never a second model of routing.

URL is http://HOST[:PORT]/PATH; HOST is a Service (name, name.namespace or FQDN, from the source's
namespace), a Service VIP or a pod IP. When --from names an ingress gateway's pod, URL is the request as it
reaches the gateway: its port picks the listener (default 80), its host the virtual host.

Input errors (malformed YAML, an unknown pod, a host that is no Service) exit 2 naming file and line where
they come from a file. Live mode (--from deploy/NAME on a running lab, --observe) is not built yet.`,
		Example: `  meshlab explain -f bookinfo.yaml -f reviews-vs.yaml --from default/productpage-v1-6b746f74dc-9stvs http://reviews:9080/reviews/0
  meshlab explain -f manifests/ --from default/sleep-5c4d8d9b8b-abcde http://reviews:9080/ -H 'end-user: jason' -o json`,
		Args: cliutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runE(env, flags, args[0]) },
	}
	cmd.Flags().StringArrayVarP(&flags.files, "filename", "f", nil, "YAML file or directory to read (repeatable); without it explain would ask the running lab, which is not built yet")
	cmd.Flags().StringVar(&flags.from, "from", "", "source pod, NAMESPACE/POD")
	cmd.Flags().StringVarP(&flags.method, "request", "X", http.MethodGet, "HTTP method")
	cmd.Flags().StringArrayVarP(&flags.headers, "header", "H", nil, "request header 'NAME: VALUE' (repeatable)")
	cmd.Flags().StringVarP(&flags.output, "output", "o", "text", "output format: text or json")
	cmd.Flags().BoolVar(&flags.observe, "observe", false, "send the request on the running lab and compare with the access logs (not built yet)")
	return cmd
}

func runE(env cliutil.Env, flags *flagpole, rawURL string) error {
	if flags.output != "text" && flags.output != "json" {
		return cliutil.Usagef("unknown output format %q; want text or json", flags.output)
	}
	if flags.observe {
		return cliutil.Usagef("--observe needs a running lab, and live explain is not built yet: predict offline with -f PATH")
	}
	if strings.HasPrefix(flags.from, "deploy/") {
		return cliutil.Usagef("--from %s is the live form (a Deployment on a running lab), which is not built yet: give -f PATH and --from NAMESPACE/POD", flags.from)
	}
	if len(flags.files) == 0 {
		return cliutil.Usagef("explain on a running lab is not built yet: give the mesh's YAML with -f PATH")
	}
	if flags.from == "" {
		return cliutil.Usagef("no source: give --from NAMESPACE/POD")
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
	store, warnings, err := ingest.LoadFiles(flags.files...)
	for _, w := range warnings {
		env.Logger.Warnf("%s", w)
	}
	if err != nil {
		return cliutil.BadInput(err) // malformed or invalid input exits 2
	}
	snap := model.Build(store.Objects())
	for _, p := range snap.Problems {
		env.Logger.Warnf("%s", p)
	}
	if len(headers) == 0 {
		headers = nil
	}
	report, err := explain.Explain(explain.Offline{Snapshot: snap}, explain.Request{From: flags.from, URL: rawURL, Method: flags.method, Headers: headers})
	if err != nil {
		var in *explain.InputError
		if errors.As(err, &in) {
			return &cliutil.UsageError{Err: err}
		}
		return err
	}
	if flags.output == "json" {
		return cliutil.WriteJSON(env.Streams.Out, report)
	}
	return report.WriteText(env.Streams.Out)
}
