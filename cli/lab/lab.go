// Package lab implements `meshlab lab list|show|run`: the scripted tutorials of package labs, run against
// the running lab cluster step by step, each step's explanation printed before its command. Exit codes:
// 0 every lab passed, 1 a lab failed, 2 a usage or environment error (no lab cluster, or not ready).
package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/labs"
	"github.com/meshlab/meshlab/lifecycle"
)

// Seams for tests: the lab's readiness, the binary the labs run, and the runner.
var (
	getStatus = func(ctx context.Context, g *cliutil.Globals, logger *ui.Logger) (*lifecycle.Status, error) {
		return lifecycle.GetStatus(ctx, g.Name, g.Kubeconfig, logger)
	}
	executable = os.Executable
	runLabs    = labs.Run
)

type flagpole struct {
	all     bool
	timeout time.Duration
}

// NewCommand returns the lab command with list, show and run.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab list|show|run",
		Short: "Scripted tutorials: each step explained, run against the lab and checked",
		Long: `Labs are short tutorials in Istio's terms. Each step says what it shows and why, runs meshlab or
kubectl against the lab cluster, and checks the output. A lab undoes its changes when it ends, passed or
failed, so the cluster returns to what ` + "`meshlab up`" + ` made. Use -v to see every command's output.

Exit codes: 0 all passed, 1 a lab failed, 2 usage or environment error.`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cliutil.Usagef("name a subcommand: list, show or run")
		},
	}
	cmd.AddCommand(newList(env), newShow(env), newRun(env))
	return cmd
}

func newList(env cliutil.Env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the labs",
		Args:  cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			all := labs.All()
			switch output {
			case "":
				tw := tabwriter.NewWriter(env.Streams.Out, 0, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tTITLE")
				for _, l := range all {
					fmt.Fprintf(tw, "%s\t%s\n", l.Name, l.Title)
				}
				return tw.Flush()
			case "json":
				type item struct {
					Name  string `json:"name"`
					Title string `json:"title"`
				}
				items := []item{}
				for _, l := range all {
					items = append(items, item{l.Name, l.Title})
				}
				return cliutil.WriteJSON(env.Streams.Out, items)
			}
			return cliutil.Usagef("unknown output format %q; want json", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json (default: table)")
	return cmd
}

func newShow(env cliutil.Env) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Print a lab's text, commands and files without running it",
		Args:  cliutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ls, err := labs.Select(args[0])
			if err != nil {
				return cliutil.Usagef("%v", err)
			}
			fmt.Fprintf(env.Streams.Out, "=== %s\n", ls[0].Name)
			return ls[0].Format(env.Streams.Out)
		},
	}
}

func newRun(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "run NAME... | --all",
		Short: "Run labs against the running lab cluster",
		Example: `  meshlab lab run ambient-basics
  meshlab lab run --all -v     # with every command's output`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runE(cmd.Context(), env, flags, args)
		},
	}
	cmd.Flags().BoolVar(&flags.all, "all", false, "run every lab")
	cmd.Flags().DurationVar(&flags.timeout, "timeout", 10*time.Minute, "time limit of one lab, its cleanup included")
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, flags *flagpole, names []string) error {
	switch {
	case flags.all && len(names) > 0:
		return cliutil.Usagef("give lab names or --all, not both")
	case !flags.all && len(names) == 0:
		return cliutil.Usagef("name the labs to run, or --all (see `meshlab lab list`)")
	}
	list := labs.All()
	if !flags.all {
		var err error
		if list, err = labs.Select(names...); err != nil {
			return cliutil.Usagef("%v", err)
		}
	}
	if ctx == nil {
		ctx = context.Background()
	}

	// The labs assume the lab `meshlab up` made: check it as `meshlab status` does.
	st, err := getStatus(ctx, env.Globals, env.Logger)
	switch {
	case err != nil:
		return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("reading the lab's status: %w", err)}
	case !st.Exists:
		return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("cluster %q does not exist: run `meshlab up`", st.Cluster)}
	case !st.Ready:
		return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("the lab on cluster %q is not ready (see `meshlab status`)", st.Cluster)}
	}
	self, err := executable()
	if err != nil {
		return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("finding the meshlab binary: %w", err)}
	}

	// On Ctrl-C the running command stops, the lab fails and its cleanups still run before meshlab exits.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := labs.Config{
		Meshlab: self, Name: env.Globals.Name, Kubeconfig: env.Globals.Kubeconfig, Context: ctx,
		Out: env.Streams.Out, Verbose: env.Globals.Verbosity > 0, LabTimeout: flags.timeout,
	}
	results, err := runLabs(cfg, list)
	if err != nil && ctx.Err() == nil {
		return &cliutil.ExitError{Code: 2, Err: err}
	}
	passed, failed := 0, 0
	for _, r := range results {
		if r.Passed {
			passed++
		} else if !r.Skipped {
			failed++
		}
	}
	fmt.Fprintf(env.Streams.Out, "%d passed, %d failed, %d skipped\n", passed, failed, len(results)-passed-failed)
	if ctx.Err() != nil {
		return &cliutil.ExitError{Code: 1, Err: errors.New("interrupted")}
	}
	if failed > 0 {
		return &cliutil.ExitError{Code: 1, Err: errors.New(plural(failed) + " failed")}
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return "1 lab"
	}
	return fmt.Sprintf("%d labs", n)
}
