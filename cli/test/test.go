// Package test implements `meshlab test PATH...`: run a team's own check files (package checks) against
// the lab, or --offline on the config `meshlab render` computes, and gate CI on the outcome. Exit codes:
// 0 every check file passed (skips allowed unless --fail-on-skip), 1 a check failed, 2 bad input (a
// malformed check file: nothing ran) or an environment error.
package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/checks"
	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/explain/live"
	"github.com/meshlab/meshlab/labs"
	"github.com/meshlab/meshlab/scenarios"
)

// Seams for tests: how the lab is reached and where the meshlab binary is.
var (
	connect = func(ctx context.Context, g *cliutil.Globals, logger *ui.Logger) (*scenarios.Env, error) {
		env, err := scenarios.Connect(ctx, g.Target(), logger)
		if err == nil {
			env.Explain = live.Explainer(env.Config) // a failed traffic expectation shows `meshlab explain`
		}
		return env, err
	}
	executable = os.Executable
)

type flagpole struct {
	offline    bool
	base       []string
	parallel   int
	junit      string
	output     string
	bundleDir  string
	failOnSkip bool
	timeout    time.Duration
	converge   time.Duration
}

// NewCommand returns the test command.
func NewCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "test PATH... [--offline [-f BASE]...]",
		Short: "Run check files (your own mesh assertions) against the lab, or offline on rendered config",
		Long: `test runs check files: txtar files in the labs' testscript dialect whose commands assert what the mesh
must do (docs/writing-checks.md). A PATH is a file or a directory of *.txtar files. Every file is parsed
and validated first; a malformed one stops the run before anything touches the lab (exit 2).

Each file runs in a namespace of its own (test-<file>-<random>, enrolled in ambient unless the file says
# meshlab: dataplane sidecar|none), exported as $NS and deleted at the end; files run in parallel (-p)
unless they touch the same other namespace. Every change waits until every proxy has acknowledged it.
A file whose changes the lab never converges on (a proxy never acknowledges them or NACKs them, an
applied waypoint never connects, a rollout never completes) is not judged: it ends as ERROR, its namespace
is deleted like any other, and the run exits 2.

--offline needs no cluster: apply loads objects into an in-memory store with the -f base objects, config
assertions run on the config render computes (a Deployment stands for pods at 10.244.200.x), $NS is
"default", and commands that need a cluster (traffic, ready, converged, kubectl...) are reported skipped.

Exit codes: 0 passed, 1 a check failed, 2 bad input or environment error (the lab never converged).`,
		Example: `  meshlab test examples/canary
  meshlab test --offline examples/canary/canary.txtar
  meshlab test checks/ --junit _out/junit.xml --bundle-dir _out/checks`,
		Args: cliutil.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runE(cmd.Context(), env, flags, args)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&flags.offline, "offline", false, "no cluster: run the config assertions on rendered config")
	f.StringArrayVarP(&flags.base, "filename", "f", nil, "--offline base objects: YAML file or directory, as for render (repeatable)")
	f.IntVarP(&flags.parallel, "parallel", "p", checks.DefaultParallel, "check files run at once")
	f.StringVar(&flags.junit, "junit", "", "also write the results as JUnit XML to FILE")
	f.StringVarP(&flags.output, "output", "o", "", "output format: json (default: a table with failures)")
	f.StringVar(&flags.bundleDir, "bundle-dir", "_out/checks", "where failure bundles go (one folder <file>-<timestamp> each)")
	f.BoolVar(&flags.failOnSkip, "fail-on-skip", false, "exit 1 when a check file was skipped")
	f.DurationVar(&flags.timeout, "timeout", 0, "per-file timeout (default 10m)")
	f.DurationVar(&flags.converge, "converge-timeout", scenarios.DefaultConvergeTimeout, "how long each change may take to converge before the file ends as an environment error")
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, flags *flagpole, args []string) error {
	if flags.output != "" && flags.output != "json" {
		return cliutil.Usagef("unknown output format %q; want json", flags.output)
	}
	if len(flags.base) > 0 && !flags.offline {
		return cliutil.Usagef("-f gives --offline base objects; with a cluster, apply them with `meshlab up --with` or in the check file")
	}
	if flags.parallel < 1 {
		return cliutil.Usagef("-p must be at least 1")
	}
	if flags.converge <= 0 {
		return cliutil.Usagef("--converge-timeout must be positive")
	}
	paths, err := checks.Expand(args)
	if err != nil {
		return cliutil.Usagef("%v", err)
	}
	files, err := checks.Load(paths)
	if err != nil {
		return &cliutil.UsageError{Err: err} // a malformed check file: nothing runs
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := checks.Options{Offline: flags.offline, Parallel: flags.parallel, BundleDir: flags.bundleDir,
		Timeout: flags.timeout, ConvergeTimeout: flags.converge, Logf: env.Logger.V(0), Debugf: env.Logger.V(1)}
	if flags.offline {
		base, warnings, err := checks.LoadBase(flags.base)
		for _, w := range warnings {
			env.Logger.Warnf("%s", w)
		}
		if err != nil {
			return cliutil.BadInput(err)
		}
		opts.Base = base
	} else {
		lab, err := connect(ctx, env.Globals, env.Logger)
		if err != nil {
			return &cliutil.ExitError{Code: scenarios.ExitEnvironment, Err: err}
		}
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err = lab.CheckControlPlane(cctx)
		cancel()
		if err != nil {
			return &cliutil.ExitError{Code: scenarios.ExitEnvironment, Err: err}
		}
		self, err := executable()
		if err != nil {
			return &cliutil.ExitError{Code: scenarios.ExitEnvironment, Err: fmt.Errorf("finding the meshlab binary: %w", err)}
		}
		opts.Env = lab
		opts.Lab = labs.Config{Meshlab: self, Name: env.Globals.Name, Kubeconfig: env.Globals.Kubeconfig, KubeContext: cliutil.KubeContext(env), Context: ctx}
	}

	rep := checks.Run(ctx, opts, files)
	if flags.junit != "" {
		if err := rep.WriteJUnitFile(flags.junit); err != nil {
			return &cliutil.ExitError{Code: scenarios.ExitEnvironment, Err: err}
		}
	}
	if flags.output == "json" {
		err = rep.WriteJSON(env.Streams.Out)
	} else {
		err = writeText(env.Streams.Out, rep)
	}
	if err != nil {
		return err
	}
	if code := rep.ExitCode(flags.failOnSkip); code != scenarios.ExitPassed {
		_, failed, skipped := rep.Counts()
		msg := fmt.Sprintf("%d check file(s) failed", failed)
		if code == scenarios.ExitEnvironment {
			msg = fmt.Sprintf("%d check file(s) could not be judged: the lab never converged (environment error)", rep.Errors())
		} else if failed == 0 {
			msg = fmt.Sprintf("%d check file(s) skipped (--fail-on-skip)", skipped)
		}
		return &cliutil.ExitError{Code: code, Err: errors.New(msg)}
	}
	return nil
}

// writeText is the scenario report plus the commands each file skipped: a pass with skips says so.
func writeText(w io.Writer, rep *scenarios.Report) error {
	if err := rep.WriteText(w); err != nil {
		return err
	}
	for _, res := range rep.Results {
		if skipped := checks.SkippedCommands(res); len(skipped) > 0 && res.Status != scenarios.StatusSkipped {
			fmt.Fprintf(w, "\n%s skipped %d command(s):\n", res.Name, len(skipped))
			for _, s := range skipped {
				fmt.Fprintf(w, "  %s\n", s)
			}
		}
	}
	return nil
}
