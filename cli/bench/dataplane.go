package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/bench/dataplane"
	"github.com/meshlab/meshlab/cli/cliutil"
)

type dataPlaneFlags struct {
	output      string
	paths       []string
	connections []int
	duration    time.Duration
	maxRequests int
	qps         float64
}

func newDataPlaneCommand(env cliutil.Env) *cobra.Command {
	flags := &dataPlaneFlags{}
	cmd := &cobra.Command{
		Use:   "dataplane",
		Short: "Measure requests/s, latency, and CPU and memory per proxy in network namespaces (root)",
		Long: `dataplane builds two "nodes" and fresh "pods" as network namespaces on this machine (no cluster),
runs each proxy as its own process, and drives 1 KB HTTP GETs from the client pod to the server pod over:

  direct                     client pod -> server pod, no proxy
  forwarder-forwarder        the floor: ztunnel's capture, with a plain TCP forwarder per node in its
                             place (no TLS, no HTTP/2); MESHLAB_BENCH_FORWARDER_IO=epoll runs them as a
                             raw epoll loop instead of Go's net package
  ztunnel-ztunnel            both pods enrolled, one ztunnel per node, HBONE (HTTP/2 CONNECT over mTLS)
  ztunnel-waypoint-ztunnel   client -> ztunnel -> waypoint (HBONE, L7 route) -> ztunnel -> server, by
                             the server Service's VIP; the waypoint gets its config from the real xDS
                             server and generators

For each path and connection count it reports requests/s, p50/p90/p99 latency, the p50 added over direct
at the same connection count (when direct is measured too), each proxy's CPU seconds
per 1,000 requests (utime+stime from /proc/PID/stat), its peak RSS during the run (VmHWM) and its RSS
before the run (VmRSS, what the binary costs idle), and its anonymous memory at the end (RssAnon: heap and
stacks, without the shared pages of the binary). It needs root.`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDataPlane(cmd.Context(), env, flags) },
	}
	f := cmd.Flags()
	f.StringVarP(&flags.output, "output", "o", "table", "output format: table or json")
	f.StringSliceVar(&flags.paths, "paths", dataplane.AllPaths, "paths to measure")
	f.IntSliceVar(&flags.connections, "connections", []int{1, 64}, "concurrent connections (one run each)")
	f.DurationVar(&flags.duration, "duration", 5*time.Second, "length of each run")
	f.IntVar(&flags.maxRequests, "max-requests", 1000000, "stop a run after this many requests")
	f.Float64Var(&flags.qps, "qps", 0, "total target requests per second per run; 0 means as fast as possible")
	return cmd
}

func runDataPlane(ctx context.Context, env cliutil.Env, flags *dataPlaneFlags) error {
	if flags.output != "table" && flags.output != "json" {
		return cliutil.Usagef("--output must be table or json, got %q", flags.output)
	}
	for _, p := range flags.paths {
		if !slices.Contains(dataplane.AllPaths, p) {
			return cliutil.Usagef("unknown path %q; want one of %s", p, strings.Join(dataplane.AllPaths, ", "))
		}
	}
	for _, c := range flags.connections {
		if c < 1 || c > 1000 {
			return cliutil.Usagef("--connections must be between 1 and 1000, got %d", c)
		}
	}
	if flags.duration <= 0 || flags.duration > 10*time.Minute {
		return cliutil.Usagef("--duration must be positive and at most 10m, got %s", flags.duration)
	}
	if err := dataplane.CanRun(); err != nil {
		return &cliutil.ExitError{Code: 2, Err: err}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the meshlab binary to run proxies with: %w", err)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	var results []dataplane.Result
	h := dataplane.NewHarness(env.Logger.V(1))
	err = h.Do(func() error {
		var err error
		results, err = dataplane.Run(ctx, h, dataplane.Options{
			Paths: flags.paths, Connections: flags.connections, Duration: flags.duration,
			MaxRequests: flags.maxRequests, QPS: flags.qps, Logf: env.Logger.V(0),
			ProxyCommand: func(spec string) ([]string, []string) {
				return []string{exe, "bench", "proxy", "--spec", spec}, nil
			},
		})
		return err
	})
	if err != nil {
		return err
	}
	for _, r := range results {
		if r.Error != "" {
			env.Logger.Warnf("%s, %d connections: %s", r.Path, r.Connections, r.Error)
		}
	}
	if flags.output == "json" {
		return cliutil.WriteJSON(env.Streams.Out, results)
	}
	return writeDataPlaneTable(env.Streams.Out, results)
}

func writeDataPlaneTable(w io.Writer, results []dataplane.Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tCONNS\tREQ/S\tP50\tADDED P50\tP90\tP99\tCPU S/1000 REQ\tPEAK RSS\tANON RSS")
	for _, r := range results {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t%d\t%s\t\t\t\t\t\t\t\n", r.Path, r.Connections, r.Error)
			continue
		}
		added := "-"
		if r.AddedP50Ms != nil {
			added = fmt.Sprintf("%+.3f ms", *r.AddedP50Ms)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.3f ms\t%s\t%.3f ms\t%.3f ms\t%s\t%s\t%s\n", r.Path, r.Connections, r.RPS,
			r.P50Ms, added, r.P90Ms, r.P99Ms, perProxy(r.CPUPer1000, "%.4f"), perProxy(r.RSSMB, "%.1f MB"), perProxy(r.RSSAnonMB, "%.1f MB"))
	}
	return tw.Flush()
}

func perProxy(m map[string]float64, format string) string {
	if len(m) == 0 {
		return "-"
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + fmt.Sprintf(format, m[n])
	}
	return strings.Join(parts, " ")
}

type proxyFlags struct{ spec string }

// newProxyCommand is the hidden `meshlab bench proxy`: the benchmark re-executes meshlab with it to run
// each proxy in a process of its own.
func newProxyCommand(env cliutil.Env) *cobra.Command {
	flags := &proxyFlags{}
	cmd := &cobra.Command{
		Use:    "proxy",
		Short:  "Run one proxy of the data-plane benchmark (internal)",
		Hidden: true,
		Args:   cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if flags.spec == "" {
				return cliutil.Usagef("--spec is required")
			}
			return dataplane.ServeProxy(flags.spec, env.Streams.In, env.Streams.Out, env.Logger.V(1))
		},
	}
	cmd.Flags().StringVar(&flags.spec, "spec", "", "proxy spec file written by meshlab bench dataplane")
	return cmd
}
