// Package scenario implements `meshlab scenario list|run`: run meshlab's scenarios (scenarios/suite)
// against the running lab and gate CI on the outcome. Exit codes: 0 every scenario passed (skips allowed
// unless --fail-on-skip), 1 a scenario failed, 2 a usage or environment error (no cluster, API server or
// control plane not reachable).
package scenario

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/explain/live"
	"github.com/meshlab/meshlab/scenarios"
	"github.com/meshlab/meshlab/scenarios/suite"
)

// Seams for tests: the scenarios on offer and how the lab is reached.
var (
	registry = suite.Registry
	connect  = func(ctx context.Context, g *cliutil.Globals, logger *ui.Logger) (*scenarios.Env, error) {
		env, err := scenarios.Connect(ctx, g.Target(), logger)
		if err == nil {
			env.Explain = live.Explainer(env.Config) // a failed traffic expectation shows `meshlab explain`
		}
		return env, err
	}
)

type flagpole struct {
	all        bool
	junit      string
	output     string
	bundleDir  string
	failOnSkip bool
	timeout    time.Duration
}

// NewCommand returns the scenario command with its list and run subcommands.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scenario list|run",
		Short: "List or run mesh scenarios against the running lab",
		Long: `Scenarios change the running lab (routing, policies, waypoints), wait until every affected proxy
has acknowledged the change, check traffic and proxy config, and restore the lab. A scenario whose
prerequisites are missing from the cluster is skipped with the reason.

Exit codes: 0 all passed, 1 a scenario failed, 2 usage or environment error.`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cliutil.Usagef("name a subcommand: list or run")
		},
	}
	cmd.AddCommand(newList(env), newRun(env))
	return cmd
}

func newList(env cliutil.Env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the scenarios",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list := registry().All()
			switch output {
			case "":
				tw := tabwriter.NewWriter(env.Streams.Out, 0, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tDESCRIPTION")
				for _, s := range list {
					fmt.Fprintf(tw, "%s\t%s\n", s.Name, s.Description)
				}
				return tw.Flush()
			case "json":
				type item struct {
					Name        string `json:"name"`
					Description string `json:"description"`
				}
				items := []item{}
				for _, s := range list {
					items = append(items, item{s.Name, s.Description})
				}
				return cliutil.WriteJSON(env.Streams.Out, items)
			}
			return cliutil.Usagef("unknown output format %q; want json", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json (default: table)")
	return cmd
}

func newRun(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "run NAME... | --all",
		Short: "Run scenarios against the running lab",
		Example: `  meshlab scenario run routing-90-10
  meshlab scenario run --all --junit _out/junit.xml
  meshlab scenario run --all -o json > results.json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runE(cmd.Context(), env, flags, args)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&flags.all, "all", false, "run every scenario")
	f.StringVar(&flags.junit, "junit", "", "also write the results as JUnit XML to FILE")
	f.StringVarP(&flags.output, "output", "o", "", "output format: json (default: a table with failures)")
	f.StringVar(&flags.bundleDir, "bundle-dir", scenarios.DefaultBundleDir, "where failure bundles go (one folder <scenario>-<timestamp> each)")
	f.BoolVar(&flags.failOnSkip, "fail-on-skip", false, "exit 1 when a scenario was skipped (for CI once the whole mesh is expected)")
	f.DurationVar(&flags.timeout, "timeout", 0, "per-scenario timeout (default: each scenario's own)")
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, flags *flagpole, names []string) error {
	switch {
	case flags.all && len(names) > 0:
		return cliutil.Usagef("give scenario names or --all, not both")
	case !flags.all && len(names) == 0:
		return cliutil.Usagef("name the scenarios to run, or --all (see `meshlab scenario list`)")
	}
	if flags.output != "" && flags.output != "json" {
		return cliutil.Usagef("unknown output format %q; want json", flags.output)
	}
	reg := registry()
	list := reg.All()
	if !flags.all {
		var err error
		if list, err = reg.Select(names...); err != nil {
			return cliutil.Usagef("%v", err)
		}
	}
	if ctx == nil {
		ctx = context.Background()
	}

	lab, err := connect(ctx, env.Globals, env.Logger)
	if err != nil {
		return &cliutil.ExitError{Code: scenarios.ExitEnvironment, Err: err}
	}
	if lab != nil {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := lab.CheckControlPlane(cctx)
		cancel()
		if err != nil {
			return &cliutil.ExitError{Code: scenarios.ExitEnvironment, Err: err}
		}
	}

	r := &scenarios.Runner{Env: lab, BundleDir: flags.bundleDir, Timeout: flags.timeout,
		Logf: env.Logger.V(0), Debugf: env.Logger.V(1)}
	rep := r.Run(ctx, list)

	if flags.junit != "" {
		if err := rep.WriteJUnitFile(flags.junit); err != nil {
			return &cliutil.ExitError{Code: scenarios.ExitEnvironment, Err: err}
		}
		env.Logger.V(1)("JUnit XML written to %s", flags.junit)
	}
	if flags.output == "json" {
		err = rep.WriteJSON(env.Streams.Out)
	} else {
		err = rep.WriteText(env.Streams.Out)
	}
	if err != nil {
		return err
	}
	if code := rep.ExitCode(flags.failOnSkip); code != scenarios.ExitPassed {
		_, failed, skipped := rep.Counts()
		msg := fmt.Sprintf("%d scenario(s) failed", failed)
		if code == scenarios.ExitEnvironment {
			msg = fmt.Sprintf("%d scenario(s) could not be judged: the lab never converged (environment error)", rep.Errors())
		} else if failed == 0 {
			msg = fmt.Sprintf("%d scenario(s) skipped (--fail-on-skip)", skipped)
		}
		return &cliutil.ExitError{Code: code, Err: errors.New(msg)}
	}
	return nil
}
