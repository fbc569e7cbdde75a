// Package bench implements `meshlab bench`: meshlab's own benchmarks of the control plane (config size,
// push latency, memory) and of the data plane (throughput, latency, CPU and memory per proxy in network
// namespaces). docs/benchmarks.md holds the numbers and the commands that produced them.
package bench

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/bench/controlplane"
	"github.com/meshlab/meshlab/cli/cliutil"
)

// NewCommand returns the bench command and its subcommands.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark meshlab's control plane and data plane (no cluster needed)",
		Args:  cliutil.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newControlPlaneCommand(env), newDataPlaneCommand(env), newProxyCommand(env))
	return cmd
}

type controlPlaneFlags struct {
	output           string
	model            string
	proxies, changes int
	services, pods   int
}

func newControlPlaneCommand(env cliutil.Env) *cobra.Command {
	flags := &controlPlaneFlags{}
	cmd := &cobra.Command{
		Use:   "controlplane",
		Short: "Measure config size (sidecar vs waypoint model), push latency, and memory and CPU at scale",
		Long: `controlplane runs three measurements in this process, on synthetic meshes held in memory:

  memory and CPU   a store of --services services and --pods pods, its model snapshot and the config of
                   every waypoint, every ztunnel and one sidecar per namespace: Go heap in use after GC
                   (heap_mb), peak RSS (rss_mb) and CPU seconds (cpu_s);
  config units     2 namespaces x 25 deployments x 10 pods, 2 waypoint replicas per namespace: the config
                   units (services a proxy holds config for) and serialized bytes that every sidecar
                   (sidecar_configs, sidecar_bytes) and every waypoint replica (waypoint_configs,
                   waypoint_bytes) receives;
  push latency     --proxies simulated sidecars on real loopback gRPC (Delta ADS) against the real xDS
                   server and generators; an HTTPRoute weight change --changes times, each timed until
                   the last proxy ACKed it, debounce excluded (push_p50_ms, push_p99_ms). With
                   --model ambient the proxies are instead the mesh's 4 waypoint replicas and ztunnels,
                   and the change reaches only the 2 waypoint replicas of its namespace.`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runControlPlane(cmd.Context(), env, flags) },
	}
	f := cmd.Flags()
	f.StringVarP(&flags.output, "output", "o", "table", "output format: table or json")
	f.IntVar(&flags.proxies, "proxies", 100, "simulated proxies for push latency (the issue measures 100 and 1000)")
	f.StringVar(&flags.model, "model", controlplane.ModelSidecar, "proxies of the push-latency measurement: sidecar or ambient")
	f.IntVar(&flags.changes, "changes", 50, "config changes timed for push latency")
	f.IntVar(&flags.services, "services", 1000, "services of the memory and CPU measurement")
	f.IntVar(&flags.pods, "pods", 2000, "pods of the memory and CPU measurement")
	return cmd
}

func runControlPlane(ctx context.Context, env cliutil.Env, flags *controlPlaneFlags) error {
	if flags.output != "table" && flags.output != "json" {
		return cliutil.Usagef("--output must be table or json, got %q", flags.output)
	}
	if flags.model != controlplane.ModelSidecar && flags.model != controlplane.ModelAmbient {
		return cliutil.Usagef("--model must be %s or %s, got %q", controlplane.ModelSidecar, controlplane.ModelAmbient, flags.model)
	}
	if flags.model == controlplane.ModelAmbient && flags.proxies < 4 {
		return cliutil.Usagef("--model ambient needs --proxies of at least 4 (the waypoint replicas)")
	}
	if flags.proxies < 1 || flags.changes < 1 || flags.services < 1 || flags.pods < 1 {
		return cliutil.Usagef("--proxies, --changes, --services and --pods must be at least 1")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	r, err := controlplane.Run(ctx, controlplane.Options{
		Proxies: flags.proxies, Model: flags.model, Changes: flags.changes, Services: flags.services, Pods: flags.pods,
		Logf: env.Logger.V(0),
	})
	if err != nil {
		return err
	}
	if flags.output == "json" {
		return cliutil.WriteJSON(env.Streams.Out, r)
	}
	return writeControlPlaneTable(env.Streams.Out, r)
}

func writeControlPlaneTable(w io.Writer, r controlplane.Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	pct := func(a, b int64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f%%", 100*float64(a)/float64(b))
	}
	fmt.Fprintf(tw, "CONFIG DISTRIBUTION\tPROXIES\tCONFIG UNITS\tPER PROXY\tBYTES\tBYTES PER PROXY\n")
	per := func(a int64, n int) string {
		if n == 0 {
			return "-"
		}
		return fmt.Sprint(a / int64(n))
	}
	fmt.Fprintf(tw, "sidecars\t%d\t%d\t%s\t%d\t%s\n", r.Sidecars, r.SidecarConfigs, per(int64(r.SidecarConfigs), r.Sidecars), r.SidecarBytes, per(r.SidecarBytes, r.Sidecars))
	fmt.Fprintf(tw, "sidecars, own namespace only\t%d\t%d\t%s\t-\t-\n", r.Sidecars, r.SidecarConfigsOwnNamespace, per(int64(r.SidecarConfigsOwnNamespace), r.Sidecars))
	fmt.Fprintf(tw, "waypoint replicas\t%d\t%d\t%s\t%d\t%s\n", r.WaypointReplicas, r.WaypointConfigs, per(int64(r.WaypointConfigs), r.WaypointReplicas), r.WaypointBytes, per(r.WaypointBytes, r.WaypointReplicas))
	fmt.Fprintf(tw, "waypoints / sidecars\t\t%s\t\t%s\t\n", pct(int64(r.WaypointConfigs), int64(r.SidecarConfigs)), pct(r.WaypointBytes, r.SidecarBytes))
	fmt.Fprintf(tw, "\nPUSH LATENCY\tPROXIES\tAFFECTED\tCHANGES\tP50\tP99\tMAX\n")
	fmt.Fprintf(tw, "change -> all ACKed (%s)\t%d\t%d\t%d\t%.2f ms\t%.2f ms\t%.2f ms\n", r.PushModel, r.Proxies, r.PushAffected, r.PushChanges, r.PushP50Ms, r.PushP99Ms, r.PushMaxMs)
	fmt.Fprintf(tw, "\nAT SCALE\tSERVICES\tPODS\tHEAP\tPEAK RSS\tCPU\tTIME\n")
	fmt.Fprintf(tw, "store+snapshot\t%d\t%d\t%.1f MB\t\t\t%.0f ms (build)\n", r.ScaleServices, r.ScalePods, r.HeapModelMB, r.ScaleBuildMs)
	fmt.Fprintf(tw, "  + config of %d proxies\t\t\t%.1f MB\t%.1f MB\t%.2f s\t%.0f ms (generate)\n", r.ScaleProxies, r.HeapMB, r.RSSMB, r.CPUSeconds, r.ScaleGenerateMs)
	return tw.Flush()
}
