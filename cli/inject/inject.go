// Package inject implements `meshlab inject`: `matrix` prints the sidecar injection decision for every
// combination of namespace label and pod setting, `check` says whether a pod (in the cluster or in a file)
// would be injected and which rule decided. Both use controlplane/inject's Decide, as the webhook does.
package inject

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/meshlab/meshlab/cli/cliutil"
	cpinject "github.com/meshlab/meshlab/controlplane/inject"
)

// NewCommand returns the inject command with its subcommands.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inject matrix|check",
		Short: "Explain sidecar injection decisions",
		Args:  cliutil.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newMatrixCommand(env), newCheckCommand(env))
	return cmd
}

func newMatrixCommand(env cliutil.Env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "matrix [-o table|json]",
		Short: "Print the injection decision for every namespace label x pod setting",
		Long: `matrix decides, with the webhook's own code, every combination of a namespace label (none,
istio-injection=enabled, istio-injection=disabled, istio.io/rev=default, istio.io/rev=unknown) and a pod
setting (none, the sidecar.istio.io/inject label or legacy annotation "true" or "false", and label and
annotation disagreeing both ways).`,
		Args: cliutil.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			rows := cpinject.Matrix()
			switch output {
			case "json":
				return cliutil.WriteJSON(env.Streams.Out, rows)
			case "table":
				tw := tabwriter.NewWriter(env.Streams.Out, 0, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "NAMESPACE LABELS\tPOD LABELS\tPOD ANNOTATIONS\tINJECTED\tRULE\tREASON")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", kv(r.NamespaceLabels), kv(r.PodLabels), kv(r.PodAnnotations), yesNo(r.Injected), r.Rule, r.Reason)
				}
				return tw.Flush()
			}
			return cliutil.Usagef("unknown output format %q; want table or json", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

type checkFlags struct {
	file, namespace, nsLabels, output string
}

func newCheckCommand(env cliutil.Env) *cobra.Command {
	flags := &checkFlags{}
	cmd := &cobra.Command{
		Use:   "check POD | -f FILE [--namespace-labels k=v,...]",
		Short: "Say whether a pod would get a sidecar, and which rule decided",
		Long: `check decides like the webhook. With POD ([NAMESPACE/]NAME, or -n NAMESPACE) it reads the pod and its
namespace from the cluster. With -f it reads Pods and workloads (Deployments, StatefulSets, ...) from a file,
taking namespace labels from --namespace-labels, else from Namespace objects in the file, else none.`,
		Example: `  meshlab inject check -n bookinfo reviews-v1-5d8f7c9b6-x2x4z
  meshlab inject check -f app.yaml --namespace-labels istio-injection=enabled`,
		Args: cliutil.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(cmd.Context(), env, flags, args, cmd.Flags().Changed("namespace-labels"))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&flags.file, "filename", "f", "", "manifest to check instead of a pod in the cluster")
	f.StringVarP(&flags.namespace, "namespace", "n", "default", "namespace of the pod (and of objects in the file that name none)")
	f.StringVar(&flags.nsLabels, "namespace-labels", "", "labels the namespace has (overrides the cluster or the file), k=v,...")
	f.StringVarP(&flags.output, "output", "o", "table", "output format: table or json")
	return cmd
}

func runCheck(ctx context.Context, env cliutil.Env, flags *checkFlags, args []string, labelsGiven bool) error {
	if (flags.file == "") == (len(args) == 0) {
		return cliutil.Usagef("give either a POD or -f FILE")
	}
	if flags.output != "table" && flags.output != "json" {
		return cliutil.Usagef("unknown output format %q; want table or json", flags.output)
	}
	override, err := labels.ConvertSelectorToLabelsMap(flags.nsLabels)
	if err != nil {
		return cliutil.Usagef("--namespace-labels %q: %v", flags.nsLabels, err)
	}
	var decisions []cpinject.ManifestDecision
	if flags.file != "" {
		data, err := os.ReadFile(flags.file)
		if err != nil {
			return fmt.Errorf("reading %s: %w", flags.file, err)
		}
		docs, err := cpinject.ReadManifest(flags.file, data)
		if err != nil {
			return cliutil.BadInput(err) // malformed or invalid input exits 2
		}
		lookup := cpinject.LabelsFromManifest(docs, nil)
		if labelsGiven {
			lookup = func(string) map[string]string { return override }
		}
		decisions = cpinject.DecideManifest(docs, cpinject.ManifestOptions{Namespace: flags.namespace, NamespaceLabels: lookup})
		if len(decisions) == 0 {
			return fmt.Errorf("%s has no pods or workloads", flags.file)
		}
	} else {
		d, err := checkPod(ctx, env, flags.namespace, args[0], override, labelsGiven)
		if err != nil {
			return err
		}
		decisions = append(decisions, d)
	}
	if flags.output == "json" {
		return cliutil.WriteJSON(env.Streams.Out, decisions)
	}
	tw := tabwriter.NewWriter(env.Streams.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tINJECTED\tRULE\tREASON")
	for _, d := range decisions {
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\n", d.Namespace, strings.ToLower(d.Kind), d.Name, yesNo(d.Injected), d.Rule, d.Reason)
	}
	return tw.Flush()
}

// checkPod reads the pod and its namespace from the cluster and decides.
func checkPod(ctx context.Context, env cliutil.Env, namespace, name string, override map[string]string, labelsGiven bool) (cpinject.ManifestDecision, error) {
	if ns, n, ok := strings.Cut(name, "/"); ok {
		namespace, name = ns, n
	}
	cfg, err := cliutil.RESTConfig(env)
	if err != nil {
		return cpinject.ManifestDecision{}, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return cpinject.ManifestDecision{}, err
	}
	pod, err := client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return cpinject.ManifestDecision{}, fmt.Errorf("reading pod %s/%s: %w", namespace, name, err)
	}
	nsLabels := override
	if !labelsGiven {
		ns, err := client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
		if err != nil {
			return cpinject.ManifestDecision{}, fmt.Errorf("reading namespace %s: %w", namespace, err)
		}
		nsLabels = ns.Labels
	}
	d := cpinject.Decide(cpinject.Input{
		Namespace: namespace, NamespaceLabels: nsLabels, PodLabels: pod.Labels, PodAnnotations: pod.Annotations,
		HostNetwork: pod.Spec.HostNetwork,
	})
	return cpinject.ManifestDecision{Kind: "Pod", Namespace: namespace, Name: name, Decision: d}, nil
}

// kv prints a map as k=v,... in key order, or "-" when empty.
func kv(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
