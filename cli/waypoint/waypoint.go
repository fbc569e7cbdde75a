// Package waypoint is `meshlab waypoint`, shaped like istioctl's: generate, apply, list, status and delete waypoint
// Gateways (gatewayClassName istio-waypoint, one HBONE listener on 15008), plus `run` (cli/waypoint/run),
// the process the waypoint Deployments execute.
package waypoint

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/waypoint/run"
	"github.com/meshlab/meshlab/controlplane/kube"
	"github.com/meshlab/meshlab/controlplane/model"
)

// NewClients connects to the cluster; tests replace it with fake clientsets.
var NewClients = func(env cliutil.Env) (*kube.Clients, error) {
	cfg, err := cliutil.RESTConfig(env)
	if err != nil {
		return nil, err
	}
	return kube.NewClients(cfg)
}

// NewCommand returns `waypoint` with generate, apply, list, status, delete and run.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "waypoint",
		Short: "Manage waypoint proxies (like istioctl waypoint)",
		Args:  cliutil.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newGenerateCommand(env), newApplyCommand(env), newListCommand(env), newStatusCommand(env),
		newDeleteCommand(env),
		run.NewCommand(env))
	return cmd
}

type gatewayFlags struct {
	namespace, name, trafficType string
}

func (f *gatewayFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "namespace of the waypoint (default: the context's, default in the lab)")
	cmd.Flags().StringVar(&f.name, "name", "waypoint", "name of the waypoint Gateway")
	cmd.Flags().StringVar(&f.trafficType, "for", string(model.TrafficService), "traffic the waypoint handles: service, workload, all or none")
}

func (f *gatewayFlags) validate(env cliutil.Env) error {
	ns, err := cliutil.Namespace(env, f.namespace)
	if err != nil {
		return err
	}
	f.namespace = ns
	switch model.TrafficType(f.trafficType) {
	case model.TrafficService, model.TrafficWorkload, model.TrafficAll, model.TrafficNone:
	default:
		return cliutil.Usagef("--for must be service, workload, all or none, got %q", f.trafficType)
	}
	if f.name == "" || f.namespace == "" {
		return cliutil.Usagef("--name and --namespace must not be empty")
	}
	return nil
}

// Gateway returns the waypoint Gateway for namespace/name handling trafficType.
func Gateway(namespace, name, trafficType string) *gwv1.Gateway {
	return &gwv1.Gateway{
		TypeMeta: metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace,
			Labels: map[string]string{model.LabelWaypointFor: trafficType}},
		Spec: gwv1.GatewaySpec{
			GatewayClassName: model.WaypointGatewayClass,
			Listeners:        []gwv1.Listener{{Name: "mesh", Port: mesh.HBONEPort, Protocol: "HBONE"}},
		},
	}
}

// YAML renders a Gateway without the empty status and timestamps a typed object would carry.
func YAML(gw *gwv1.Gateway) ([]byte, error) {
	b, err := yaml.Marshal(gw)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return yaml.Marshal(m)
}

func newGenerateCommand(env cliutil.Env) *cobra.Command {
	f := &gatewayFlags{}
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Print the Gateway YAML of a waypoint",
		Args:  cliutil.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := f.validate(env); err != nil {
				return err
			}
			b, err := YAML(Gateway(f.namespace, f.name, f.trafficType))
			if err != nil {
				return err
			}
			_, err = env.Streams.Out.Write(b)
			return err
		},
	}
	f.register(cmd)
	return cmd
}

func newApplyCommand(env cliutil.Env) *cobra.Command {
	f := &gatewayFlags{}
	var enroll, wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Create or update a waypoint and wait until it is programmed",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(env); err != nil {
				return err
			}
			ctx := commandContext(cmd)
			c, err := NewClients(env)
			if err != nil {
				return err
			}
			if err := Apply(ctx, c, Gateway(f.namespace, f.name, f.trafficType)); err != nil {
				return err
			}
			// istioctl's lines, in its order (istioctl waits only with --wait; meshlab waits by default).
			fmt.Fprintf(env.Streams.Out, "✅ waypoint %s/%s applied\n", f.namespace, f.name)
			if wait {
				if _, err := WaitProgrammed(ctx, c, f.namespace, f.name, timeout); err != nil {
					return err
				}
				fmt.Fprintf(env.Streams.Out, "✅ waypoint %s/%s is ready!\n", f.namespace, f.name)
			}
			if enroll {
				if err := Enroll(ctx, c, f.namespace, f.name); err != nil {
					return err
				}
				fmt.Fprintf(env.Streams.Out, "✅ namespace %s labeled with \"%s: %s\"\n", f.namespace, model.LabelUseWaypoint, f.name)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&enroll, "enroll-namespace", false, "label the namespace "+model.LabelUseWaypoint+"=NAME so its services use the waypoint")
	cmd.Flags().BoolVarP(&wait, "wait", "w", true, "wait until the waypoint is Programmed (istioctl's default is not to)")
	cmd.Flags().DurationVar(&timeout, "waypoint-timeout", 2*time.Minute, "how long to wait for Programmed")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "same as --waypoint-timeout")
	return cmd
}

// Apply creates the Gateway or updates its spec and labels.
func Apply(ctx context.Context, c *kube.Clients, gw *gwv1.Gateway) error {
	gws := c.Gateway.GatewayV1().Gateways(gw.Namespace)
	cur, err := gws.Get(ctx, gw.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = gws.Create(ctx, gw, metav1.CreateOptions{})
	} else if err == nil {
		cur = cur.DeepCopy()
		cur.Spec = gw.Spec
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		for k, v := range gw.Labels {
			cur.Labels[k] = v
		}
		_, err = gws.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("applying waypoint %s/%s: %w", gw.Namespace, gw.Name, err)
	}
	return nil
}

// WaitProgrammed polls until the Gateway reports Programmed=True, and returns it as read then.
func WaitProgrammed(ctx context.Context, c *kube.Clients, namespace, name string, timeout time.Duration) (*gwv1.Gateway, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		gw, err := c.Gateway.GatewayV1().Gateways(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil && meta.IsStatusConditionTrue(gw.Status.Conditions, string(gwv1.GatewayConditionProgrammed)) {
			return gw, nil
		}
		select {
		case <-ctx.Done():
			reason := "no status yet"
			if err != nil {
				reason = err.Error()
			} else if cond := meta.FindStatusCondition(gw.Status.Conditions, string(gwv1.GatewayConditionProgrammed)); cond != nil {
				reason = cond.Message
			}
			return nil, fmt.Errorf("waypoint %s/%s not programmed after %s: %s", namespace, name, timeout, reason)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Enroll labels namespace with istio.io/use-waypoint=name.
func Enroll(ctx context.Context, c *kube.Clients, namespace, name string) error {
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, model.LabelUseWaypoint, name)
	if _, err := c.Kube.CoreV1().Namespaces().Patch(ctx, namespace, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("labeling namespace %s: %w", namespace, err)
	}
	return nil
}

func newListCommand(env cliutil.Env) *cobra.Command {
	var namespace string
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List waypoints",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := NewClients(env)
			if err != nil {
				return err
			}
			if namespace, err = cliutil.Namespace(env, namespace); err != nil {
				return err
			}
			if all {
				namespace = ""
			}
			gws, err := listWaypoints(commandContext(cmd), c, namespace)
			if err != nil {
				return err
			}
			if len(gws) == 0 {
				fmt.Fprintln(env.Streams.Out, noWaypoints)
				return nil
			}
			return WriteList(env.Streams.Out, gws, all)
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace to list (default: the context's, default in the lab)")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list waypoints in every namespace")
	return cmd
}

// noWaypoints is what istioctl's list and status print when there is nothing to show.
const noWaypoints = "No waypoints found."

// commandContext is the command's context, or Background when it was run without one (tests).
func commandContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// listWaypoints returns the Gateways of class istio-waypoint in namespace ("" for all), sorted by namespace
// and name as istioctl sorts them.
func listWaypoints(ctx context.Context, c *kube.Clients, namespace string) ([]gwv1.Gateway, error) {
	l, err := c.Gateway.GatewayV1().Gateways(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing gateways: %w", err)
	}
	var gws []gwv1.Gateway
	for _, gw := range l.Items {
		if string(gw.Spec.GatewayClassName) == model.WaypointGatewayClass {
			gws = append(gws, gw)
		}
	}
	slices.SortFunc(gws, func(a, b gwv1.Gateway) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return gws, nil
}

// newTable is istioctl waypoint's table layout (tabwriter padding 5), so both print the same bytes.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 5, ' ', 0) }

// WriteList prints waypoints as istioctl does: NAME REVISION TRAFFIC TYPE PROGRAMMED (NAMESPACE first with
// all namespaces). The traffic type is the istio.io/waypoint-for label as written ("none" without one) and
// PROGRAMMED is False until the controller says otherwise, as in istioctl.
func WriteList(w io.Writer, gws []gwv1.Gateway, withNamespace bool) error {
	return writeTable(w, "NAME\tREVISION\tTRAFFIC TYPE\tPROGRAMMED", gws, withNamespace, func(gw *gwv1.Gateway) []string {
		revision := gw.Labels["istio.io/rev"]
		if revision == "" {
			revision = "default"
		}
		traffic := gw.Labels[model.LabelWaypointFor]
		if traffic == "" {
			traffic = string(model.TrafficNone)
		}
		programmed := string(metav1.ConditionFalse)
		if c := meta.FindStatusCondition(gw.Status.Conditions, string(gwv1.GatewayConditionProgrammed)); c != nil {
			programmed = string(c.Status)
		}
		return []string{gw.Name, revision, traffic, programmed}
	})
}

// writeTable prints one row of cells per waypoint under header in istioctl waypoint's layout, with the
// NAMESPACE column first when withNamespace.
func writeTable(w io.Writer, header string, gws []gwv1.Gateway, withNamespace bool, cells func(*gwv1.Gateway) []string) error {
	tw := newTable(w)
	if withNamespace {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(tw, header)
	for i := range gws {
		row := cells(&gws[i])
		if withNamespace {
			row = append([]string{gws[i].Namespace}, row...)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func newStatusCommand(env cliutil.Env) *cobra.Command {
	var namespace string
	var all, wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the status of waypoints (their Programmed condition), waiting until they are programmed",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := commandContext(cmd)
			c, err := NewClients(env)
			if err != nil {
				return err
			}
			if namespace, err = cliutil.Namespace(env, namespace); err != nil {
				return err
			}
			if all {
				namespace = ""
			}
			gws, err := listWaypoints(ctx, c, namespace)
			if err != nil {
				return err
			}
			if len(gws) == 0 {
				fmt.Fprintln(env.Streams.Out, noWaypoints)
				return nil
			}
			if wait {
				for i, gw := range gws {
					programmed, err := WaitProgrammed(ctx, c, gw.Namespace, gw.Name, timeout)
					if err != nil {
						return err
					}
					gws[i] = *programmed
				}
			}
			return WriteStatus(env.Streams.Out, gws, all)
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the waypoints (default: the context's, default in the lab)")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "show waypoints in every namespace")
	cmd.Flags().BoolVarP(&wait, "wait", "w", true, "wait until each waypoint is programmed")
	cmd.Flags().DurationVar(&timeout, "waypoint-timeout", 90*time.Second, "how long to wait for each waypoint")
	return cmd
}

// WriteStatus prints one row per waypoint as istioctl waypoint status does: NAME STATUS TYPE REASON MESSAGE
// (NAMESPACE first with all namespaces), from the Programmed condition, or the last condition when the
// Gateway has no Programmed one yet.
func WriteStatus(w io.Writer, gws []gwv1.Gateway, withNamespace bool) error {
	return writeTable(w, "NAME\tSTATUS\tTYPE\tREASON\tMESSAGE", gws, withNamespace, func(gw *gwv1.Gateway) []string {
		var cond metav1.Condition
		if c := meta.FindStatusCondition(gw.Status.Conditions, string(gwv1.GatewayConditionProgrammed)); c != nil {
			cond = *c
		} else if n := len(gw.Status.Conditions); n > 0 {
			cond = gw.Status.Conditions[n-1]
		}
		return []string{gw.Name, string(cond.Status), cond.Type, cond.Reason, cond.Message}
	})
}

func newDeleteCommand(env cliutil.Env) *cobra.Command {
	var namespace string
	var all bool
	cmd := &cobra.Command{
		Use:   "delete [NAME...]",
		Short: "Delete waypoints by name, or all of a namespace with --all",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return cliutil.Usagef("name one or more waypoints, or pass --all")
			}
			ctx := commandContext(cmd)
			c, err := NewClients(env)
			if err != nil {
				return err
			}
			if namespace, err = cliutil.Namespace(env, namespace); err != nil {
				return err
			}
			gws := c.Gateway.GatewayV1().Gateways(namespace)
			names := args
			if all {
				l, err := gws.List(ctx, metav1.ListOptions{})
				if err != nil {
					return fmt.Errorf("listing gateways: %w", err)
				}
				for _, gw := range l.Items {
					if string(gw.Spec.GatewayClassName) == model.WaypointGatewayClass {
						names = append(names, gw.Name)
					}
				}
			}
			for _, n := range names {
				gw, err := gws.Get(ctx, n, metav1.GetOptions{})
				if err != nil {
					return fmt.Errorf("waypoint %s/%s: %w", namespace, n, err)
				}
				if string(gw.Spec.GatewayClassName) != model.WaypointGatewayClass {
					return fmt.Errorf("gateway %s/%s is not a waypoint (class %s)", namespace, n, gw.Spec.GatewayClassName)
				}
				if err := gws.Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
					return fmt.Errorf("deleting waypoint %s/%s: %w", namespace, n, err)
				}
				fmt.Fprintf(env.Streams.Out, "waypoint %s/%s deleted\n", namespace, n)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the waypoints (default: the context's, default in the lab)")
	cmd.Flags().BoolVar(&all, "all", false, "delete every waypoint of the namespace")
	return cmd
}
