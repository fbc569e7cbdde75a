// Package cli is meshlab's command tree. Main wires the real streams and logger; Run does the work so that
// tests can drive the whole CLI in-process.
package cli

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/meshlab/meshlab/cli/bench"
	"github.com/meshlab/meshlab/cli/bookinfo"
	"github.com/meshlab/meshlab/cli/check"
	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/cniagent"
	"github.com/meshlab/meshlab/cli/controlplane"
	"github.com/meshlab/meshlab/cli/curl"
	clidiff "github.com/meshlab/meshlab/cli/diff"
	"github.com/meshlab/meshlab/cli/down"
	"github.com/meshlab/meshlab/cli/echo"
	"github.com/meshlab/meshlab/cli/explain"
	clihost "github.com/meshlab/meshlab/cli/host"
	"github.com/meshlab/meshlab/cli/image"
	"github.com/meshlab/meshlab/cli/inject"
	"github.com/meshlab/meshlab/cli/iptables"
	"github.com/meshlab/meshlab/cli/kubeinject"
	"github.com/meshlab/meshlab/cli/lab"
	"github.com/meshlab/meshlab/cli/load"
	"github.com/meshlab/meshlab/cli/nodeimage"
	"github.com/meshlab/meshlab/cli/proxy"
	"github.com/meshlab/meshlab/cli/proxyconfig"
	"github.com/meshlab/meshlab/cli/proxystatus"
	"github.com/meshlab/meshlab/cli/render"
	"github.com/meshlab/meshlab/cli/scenario"
	"github.com/meshlab/meshlab/cli/sleep"
	"github.com/meshlab/meshlab/cli/status"
	clitest "github.com/meshlab/meshlab/cli/test"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/cli/up"
	"github.com/meshlab/meshlab/cli/version"
	"github.com/meshlab/meshlab/cli/wait"
	"github.com/meshlab/meshlab/cli/waypoint"
	"github.com/meshlab/meshlab/cli/ztunnel"
	"github.com/meshlab/meshlab/cli/ztunnelconfig"
	"github.com/meshlab/meshlab/cluster"
	"github.com/meshlab/meshlab/cluster/host"
)

// Main runs meshlab with the process's arguments and streams and returns the exit code.
func Main() int {
	if filepath.Base(os.Args[0]) == host.ShimName {
		return host.RunShim(os.Args[1:]) // dockerd runs meshlab as its runc shim; see cluster/host
	}
	streams := ui.StandardStreams()
	return Run(ui.NewLogger(streams.ErrOut, 0, false), streams, Args(os.Args))
}

// Args returns the command line to run for argv: meshlab's arguments, or, when the binary is called by
// one of the echo stand-in image's names (`server`, `client`), `echo server|client` and the arguments.
func Args(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	switch base := filepath.Base(argv[0]); base {
	case "server", "client":
		return append([]string{"echo", base}, argv[1:]...)
	}
	return argv[1:]
}

// Run executes one meshlab invocation. Exit codes: 0 success, 1 failure, 2 usage error.
func Run(logger *ui.Logger, streams ui.Streams, args []string) int {
	cmd := NewRootCommand(logger, streams)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return 0
	}
	var exit *cliutil.ExitError
	if errors.As(err, &exit) {
		if exit.Err != nil {
			logger.Errorf("%v", exit.Err)
		}
		return exit.Code
	}
	logger.Errorf("%v", err)
	if cliutil.IsUsage(err) || isCobraUsage(err) || isEnvironment(err) {
		return 2
	}
	return 1
}

// isEnvironment recognises failures of the environment, exit 2 like usage errors: the lab cannot be
// reached (kind cannot list clusters, the cluster is missing, its API server does not answer: see
// cluster.MarkUnreachable).
func isEnvironment(err error) bool {
	return errors.Is(err, cluster.ErrEnvironment)
}

// isCobraUsage recognises the errors cobra itself returns for a bad command line.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.HasPrefix(msg, p) || strings.Contains(msg, " "+p) {
			return true
		}
	}
	return false
}

// NewRootCommand builds the whole command tree.
func NewRootCommand(logger *ui.Logger, streams ui.Streams) *cobra.Command {
	globals := &cliutil.Globals{}
	env := cliutil.Env{Logger: logger, Streams: streams, Globals: globals}
	root := &cobra.Command{
		Use:   "meshlab",
		Short: "A local service-mesh sandbox: a kind cluster with meshlab's own ambient mesh, bookinfo and scenarios",
		Long: `meshlab brings up a kind cluster with its own istiod-like control plane, ztunnel-like node proxies,
waypoint proxies, the bookinfo sample and a sleep client, and checks mesh behaviour with scenarios.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			logger.SetVerbosity(globals.Verbosity, globals.Quiet)
			quietLibraries(globals.Verbosity)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cliutil.Usagef("unknown command %q for meshlab", args[0])
			}
			return cmd.Help()
		},
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetIn(streams.In)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cliutil.UsageError{Err: err} })
	pf := root.PersistentFlags()
	pf.CountVarP(&globals.Verbosity, "verbose", "v", "more output (repeat for more)")
	pf.BoolVarP(&globals.Quiet, "quiet", "q", false, "print only errors and results")
	// Some commands have a --name or --cluster of their own, with istioctl's meaning (`waypoint apply
	// --name`, `proxy-config routes --name`, `proxy-config endpoints --cluster`), which hides the global of
	// that name there: the other global, or MESHLAB_CLUSTER, names the kind cluster everywhere.
	clusterName := cliutil.EnvOr(cluster.NameEnv, "meshlab")
	pf.StringVar(&globals.Name, "name", clusterName, "kind cluster name (default $"+cluster.NameEnv+", else meshlab)")
	pf.StringVar(&globals.Name, "cluster", clusterName, "kind cluster name (same as --name; use it with commands whose own --name means something else)")
	pf.StringVar(&globals.Kubeconfig, "kubeconfig", "", "kubeconfig to use, as kubectl's (default: the lab's kind cluster; with --context, $KUBECONFIG merged or ~/.kube/config)")
	pf.StringVar(&globals.Context, "context", "", "kubeconfig context to use, as kubectl's (default: with --kubeconfig, kind-NAME if the file has it, else its current context)")

	for _, sub := range commands(env) {
		root.AddCommand(sub)
	}
	return root
}

// commands lists the subcommands; each lives in its own package with a NewCommand(env) constructor.
func commands(env cliutil.Env) []*cobra.Command {
	return []*cobra.Command{
		up.NewCommand(env),
		down.NewCommand(env),
		status.NewCommand(env),
		load.NewCommand(env), // load docker-image|image-archive (your own images)
		version.NewCommand(env),
		nodeimage.NewCommand(env),
		cniagent.NewCommand(env),
		clihost.NewCommand(env),
		image.NewCommand(env),
		proxystatus.NewCommand(env), wait.NewCommand(env), // proxy-status; wait (until the mesh converged)
		render.NewCommand(env), proxyconfig.NewCommand(env),
		clidiff.NewCommand(env), // diff -f NEW --base-file OLD (what a change does to every proxy)
		explain.NewCommand(env), // explain -f YAML --from NS/POD URL (offline; live mode not built yet)
		bookinfo.NewCommand(env), sleep.NewCommand(env), curl.NewCommand(env), echo.NewCommand(env),
		inject.NewCommand(env), kubeinject.NewCommand(env), iptables.NewCommand(env), // sidecar injection
		bench.NewCommand(env),
		scenario.NewCommand(env), // scenario list|run
		clitest.NewCommand(env),  // test PATH... (check files, package checks)
		lab.NewCommand(env),      // lab list|show|run (tutorials, package labs)
		ztunnel.NewCommand(env), ztunnelconfig.NewCommand(env),
		waypoint.NewCommand(env), controlplane.NewCommand(env), // waypoint generate|apply|list|delete|run; controlplane
		proxy.NewCommand(env), // proxy sidecar
		check.NewCommand(env), // check (injection webhook, CA root, control plane)
	}
}

// quietLibraries keeps client-go's klog and controller-runtime's logger off the user's terminal unless
// they asked for a lot of detail (-vvv): their messages (stream copy errors on exec, a logger never
// set) are noise next to meshlab's own.
func quietLibraries(verbosity int) {
	if verbosity >= 3 {
		ctrllog.SetLogger(klog.NewKlogr())
		return
	}
	klog.SetOutput(io.Discard)
	klog.LogToStderr(false)
	// klog still copies errors to stderr (stderrthreshold ERROR): informers stopped by their context log
	// "Failed to watch ... context canceled" there (meshlab explain and diff list the lab that way).
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("stderrthreshold", "FATAL") // a flag klog defines: cannot fail
	ctrllog.SetLogger(logr.Discard())
}
