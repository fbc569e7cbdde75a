// Package lab implements `meshlab lab list|show|run|new`: the scripted tutorials of package labs, built in
// or the user's own .txtar files, run against the running lab cluster step by step (each step's
// explanation printed before its command), or followed by a learner one step at a time (--step).
// Exit codes: 0 every lab passed, 1 a lab failed, 2 a usage or environment error (a malformed lab, no
// lab cluster, or not ready).
package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
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
		return lifecycle.GetStatus(ctx, g.Target(), logger)
	}
	executable = os.Executable
	runLabs    = labs.Run
	stateDir   = labs.DefaultStateDir
)

type flagpole struct {
	all     bool
	timeout time.Duration
	step    bool // the learner's mode
	restart bool // --step: start over
	reset   bool // --step: undo and forget the progress
}

// NewCommand returns the lab command with list, show and run.
func NewCommand(env cliutil.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab list|show|run|new",
		Short: "Scripted tutorials: each step explained, run against the lab and checked",
		Long: `Labs are short tutorials in Istio's terms. Each step says what it shows and why, runs meshlab or
kubectl against the lab cluster, and checks the output. A lab undoes its changes when it ends, passed or
failed, so the cluster returns to what ` + "`meshlab up`" + ` made. Use -v to see every command's output.
A lab is a built-in one's name or a .txtar file (or a directory of them) of your own; ` + "`meshlab lab new`" + `
writes one to start from, and docs/writing-labs.md describes the format.

Exit codes: 0 all passed, 1 a lab failed, 2 usage or environment error.`,
		Args: cliutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cliutil.Usagef("name a subcommand: list, show, run or new")
		},
	}
	cmd.AddCommand(newList(env), newShow(env), newRun(env), newNew(env))
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
		Use:   "show NAME|PATH",
		Short: "Print a lab's text, commands and files without running it",
		Args:  cliutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ls, err := resolve(args)
			if err != nil {
				return err
			}
			for _, l := range ls {
				fmt.Fprintf(env.Streams.Out, "=== %s\n", l.Name)
				if err := l.Format(env.Streams.Out); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// resolve loads the labs the arguments name and checks every one before anything runs: a malformed lab
// is a usage error listing each problem as FILE:LINE.
func resolve(args []string) ([]labs.Lab, error) {
	ls, err := labs.Resolve(args...)
	if err != nil {
		return nil, cliutil.Usagef("%v", err)
	}
	var problems []string
	for _, l := range ls {
		if err := labs.Check(l); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return nil, &cliutil.ExitError{Code: 2, Err: fmt.Errorf("malformed lab:\n%s", strings.Join(problems, "\n"))}
	}
	return ls, nil
}

func newRun(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "run NAME|PATH... | --all | --step NAME|PATH",
		Short: "Run labs against the running lab cluster, or follow one step by step (--step)",
		Long: `Run labs against the running lab cluster: built-in ones by name, your own as .txtar files or
directories of them. Every lab is checked first; a malformed one is reported as FILE:LINE and nothing runs.

--step is the learner's mode: each step's text and commands are shown, you run the commands in your own
shell and press Enter, and meshlab checks the step by running its read-only lines again (never a line
that changes the cluster). Type run to have meshlab run the step, q to save and quit; --step resumes
where you stopped. --restart undoes the done steps' changes and starts over; --reset undoes them and
stops. Progress is kept in $XDG_STATE_HOME/meshlab/labs (default ~/.local/state/meshlab/labs).`,
		Example: `  meshlab lab run ambient-basics
  meshlab lab run --all -v          # with every command's output
  meshlab lab run ./labs/           # a team's own labs, as CI runs them
  meshlab lab run --step traffic-shifting`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runE(cmd.Context(), env, flags, args)
		},
	}
	cmd.Flags().BoolVar(&flags.all, "all", false, "run every built-in lab")
	cmd.Flags().DurationVar(&flags.timeout, "timeout", 10*time.Minute, "time limit of one lab, its cleanup included")
	cmd.Flags().BoolVar(&flags.step, "step", false, "learner's mode: one step at a time, you run the commands")
	cmd.Flags().BoolVar(&flags.restart, "restart", false, "with --step: undo the done steps and start over")
	cmd.Flags().BoolVar(&flags.reset, "reset", false, "with --step: undo the done steps, forget the progress and stop")
	return cmd
}

func runE(ctx context.Context, env cliutil.Env, flags *flagpole, names []string) error {
	switch {
	case flags.all && len(names) > 0:
		return cliutil.Usagef("give lab names or --all, not both")
	case !flags.all && len(names) == 0:
		return cliutil.Usagef("name the labs to run, or --all (see `meshlab lab list`)")
	case flags.step && (flags.all || len(names) != 1):
		return cliutil.Usagef("--step follows one lab: name it")
	case (flags.restart || flags.reset) && !flags.step:
		return cliutil.Usagef("--restart and --reset go with --step")
	case flags.restart && flags.reset:
		return cliutil.Usagef("give --restart or --reset, not both")
	}
	list := labs.All()
	if !flags.all {
		var err error
		if list, err = resolve(names); err != nil {
			return err
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

	if flags.step {
		// Ctrl-C ends the learner's session at once: progress and cleanups are saved as they happen.
		cfg := labs.Config{Meshlab: self, Name: env.Globals.Name, Kubeconfig: env.Globals.Kubeconfig, KubeContext: cliutil.KubeContext(env), Context: ctx,
			Out: env.Streams.Out, Verbose: true}
		return learn(env, cfg, list[0], flags)
	}

	// On Ctrl-C the running command stops, the lab fails and its cleanups still run before meshlab exits.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := labs.Config{
		Meshlab: self, Name: env.Globals.Name, Kubeconfig: env.Globals.Kubeconfig, KubeContext: cliutil.KubeContext(env), Context: ctx,
		Out: env.Streams.Out, Verbose: env.Globals.Verbosity > 0, LabTimeout: flags.timeout,
	}
	results, err := runLabs(cfg, list)
	if err != nil && ctx.Err() == nil {
		return &cliutil.ExitError{Code: 2, Err: err}
	}
	passed, failed, notJudged := 0, 0, 0
	for _, r := range results {
		switch {
		case r.Passed:
			passed++
		case r.NotConverged != "":
			notJudged++
		case !r.Skipped:
			failed++
		}
	}
	errs := ""
	if notJudged > 0 {
		errs = fmt.Sprintf(", %d not judged (never converged)", notJudged)
	}
	fmt.Fprintf(env.Streams.Out, "%d passed, %d failed%s, %d skipped\n", passed, failed, errs, len(results)-passed-failed-notJudged)
	if ctx.Err() != nil {
		return &cliutil.ExitError{Code: 1, Err: errors.New("interrupted")}
	}
	if notJudged > 0 {
		return &cliutil.ExitError{Code: 2, Err: errors.New(plural(notJudged) + " never converged (environment error): not judged")}
	}
	if failed > 0 {
		return &cliutil.ExitError{Code: 1, Err: errors.New(plural(failed) + " failed")}
	}
	return nil
}

// learn follows one lab in the learner's mode.
func learn(env cliutil.Env, cfg labs.Config, l labs.Lab, flags *flagpole) error {
	dir, err := stateDir()
	if err != nil {
		return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("finding the state directory: %w", err)}
	}
	// A step's commands may run for minutes (waitfor); the learner's session as a whole has no limit.
	cfg.LabTimeout = 24 * time.Hour
	lr := &labs.Learner{Config: cfg, In: env.Streams.In, StateDir: dir}
	if flags.reset {
		if err := lr.Reset(l); err != nil {
			return &cliutil.ExitError{Code: 1, Err: err}
		}
		return nil
	}
	if _, err := lr.Learn(l, flags.restart); err != nil {
		return &cliutil.ExitError{Code: 1, Err: err}
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return "1 lab"
	}
	return fmt.Sprintf("%d labs", n)
}

func newNew(env cliutil.Env) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "new NAME",
		Short: "Write a new lab to start from: NAME.txtar, which passes `meshlab lab run` as written",
		Args:  cliutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := labs.ValidName(args[0]); err != nil {
				return cliutil.Usagef("%v", err)
			}
			path := filepath.Join(dir, args[0]+".txtar")
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			switch {
			case errors.Is(err, os.ErrExist):
				return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("%s already exists: not overwriting it", path)}
			case err != nil:
				return &cliutil.ExitError{Code: 2, Err: err}
			}
			_, err = f.Write(labs.Scaffold(args[0]))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return &cliutil.ExitError{Code: 2, Err: fmt.Errorf("writing %s: %w", path, err)}
			}
			fmt.Fprintf(env.Streams.Out, "Wrote %s. Run it: meshlab lab run %s (or step by step: meshlab lab run --step %s)\n", path, path, path)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "directory to write the lab into")
	return cmd
}
