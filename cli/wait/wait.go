// Package wait implements `meshlab wait`: block until the mesh has converged, so a script, a lab or a CI
// job checks config only once every proxy holds it. It is the whole-mesh cousin of istioctl's
// `experimental wait`, which waits for one resource's distribution instead.
package wait

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/waypoints"
	"github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/scenarios"
)

type flagpole struct {
	timeout time.Duration
	quiet   time.Duration
}

// NewCommand returns the wait command.
func NewCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "wait [--timeout D]",
		Short: "Wait until the mesh has converged: every proxy has acknowledged its config",
		Long: `wait returns once the lab's mesh has converged: every proxy connected to the control plane has
acknowledged the config it was last sent (none is STALE, none rejected it), every waypoint and ingress
gateway the waypoint controller deployed has a proxy connected, and nothing changed for --quiet.

A mesh that does not converge within --timeout is an environment problem, not a verdict on the config:
wait prints what it was still waiting for (one line per proxy, as proxy-status names them) and exits 2.
A proxy that rejects its config (NACK) ends the wait at once, also with exit 2.

istioctl's "experimental wait TYPE NAME" waits for one resource's distribution; meshlab waits for the
whole mesh, which is what a lab step or a CI job needs before it reads config or sends traffic.`,
		Example: `  kubectl apply -f reviews-90-10.yaml && meshlab wait && meshlab proxy-config routes deploy/reviews-waypoint
  meshlab wait --timeout 30s`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cliutil.Usagef("meshlab wait takes no arguments (got %q): it waits for the whole mesh; istioctl's per-resource form (experimental wait TYPE NAME) is not implemented", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runE(cmd.Context(), env, flags)
		},
	}
	cmd.Flags().DurationVar(&flags.timeout, "timeout", scenarios.DefaultConvergeTimeout, "how long to wait before giving up (exit 2)")
	cmd.Flags().DurationVar(&flags.quiet, "quiet", scenarios.SettleQuiet, "how long the sync status must stay unchanged")
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, flags *flagpole) error {
	if flags.timeout <= 0 || flags.quiet < 0 {
		return cliutil.Usagef("--timeout must be positive and --quiet not negative")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	clients, err := cliutil.Clients(env)
	if err != nil {
		return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("reaching %s: %w", cliutil.Target(env), err)}
	}
	required, err := gatewayProxies(ctx, clients.Kube)
	if err != nil {
		return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("listing the waypoint and gateway Deployments: %w", err)}
	}
	start := time.Now()
	syncz := func(ctx context.Context) (xds.SyncStatus, error) { return labclient.Syncz(ctx, clients.Kube) }
	if _, err := scenarios.Settle(ctx, syncz, required, start, flags.quiet, flags.timeout); err != nil {
		return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("the mesh did not converge: %w%s", err, whyMissing(ctx, clients.Kube, required))}
	}
	fmt.Fprintf(env.Streams.Out, "converged in %s\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// gatewayProxies are the waypoints and ingress gateways the controller deployed with at least one replica:
// each must have a proxy connected.
func gatewayProxies(ctx context.Context, kc kubernetes.Interface) ([]scenarios.ProxySet, error) {
	list, err := kc.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: waypoints.LabelManaged + "," + model.LabelGatewayName})
	if err != nil {
		return nil, err
	}
	var out []scenarios.ProxySet
	for _, d := range list.Items {
		if d.Spec.Replicas != nil && *d.Spec.Replicas == 0 {
			continue
		}
		kind := ""
		switch d.Labels[waypoints.LabelManaged] {
		case waypoints.ManagedValue:
			kind = xds.KindWaypoint
		case waypoints.IngressManagedValue:
			kind = xds.KindGateway
		default:
			continue
		}
		out = append(out, scenarios.ProxySet{Kind: kind, Namespace: d.Namespace, Name: d.Labels[model.LabelGatewayName]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// whyMissing explains, one line each, the required gateways that have no proxy connected.
func whyMissing(ctx context.Context, kc kubernetes.Interface, required []scenarios.ProxySet) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	st, err := labclient.Syncz(ctx, kc)
	if err != nil {
		return ""
	}
	var out strings.Builder
	for _, set := range required {
		if !slices.ContainsFunc(st.Proxies, set.Matches) {
			fmt.Fprintf(&out, "\n%s: %s", set, scenarios.GatewayProblem(ctx, kc, set))
		}
	}
	return out.String()
}
