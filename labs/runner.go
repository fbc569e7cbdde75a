package labs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/meshlab/meshlab/internal/scriptrun"
)

// Config says where labs run and how they report.
type Config struct {
	Meshlab    string // the meshlab binary the `meshlab` command runs (the CLI: itself)
	Name       string // kind cluster name; kubectl uses context kind-NAME
	Kubeconfig string // explicit kubeconfig; empty: kind's default one
	// KubeContext is the kubeconfig context (meshlab's --context) commands use; empty: kind-NAME.
	KubeContext string
	Kubectl     string // kubectl binary; empty: from PATH or meshlab's node-image cache

	// Context stops the labs (an interrupt): the running command is killed, the lab fails, its cleanups
	// still run, and no further lab starts. nil: never.
	Context context.Context

	Out     io.Writer // live progress: each step's tutorial text and command; nil prints nothing
	Verbose bool      // also print every command's output

	CommandTimeout time.Duration // one meshlab/kubectl invocation (default DefaultCommandTimeout)
	LabTimeout     time.Duration // a whole lab, cleanups included (default 10 minutes)
}

func (c Config) commandTimeout() time.Duration {
	if c.CommandTimeout > 0 {
		return c.CommandTimeout
	}
	return DefaultCommandTimeout
}

func (c Config) context() context.Context {
	if c.Context != nil {
		return c.Context
	}
	return context.Background()
}

func (c Config) labTimeout() time.Duration {
	if c.LabTimeout > 0 {
		return c.LabTimeout
	}
	return 10 * time.Minute
}

// Params returns the testscript parameters that run lab l against the lab cluster, its script written
// into dir. `go test` passes them to testscript.Run; Run passes them to its own T adapter.
func (c Config) Params(l Lab, dir string) (testscript.Params, error) {
	p, _, err := c.params(l, dir, newProgress(c.Out, c.Verbose, l.Script), nil)
	return p, err
}

// params builds the testscript parameters; the returned cancel ends the lab's context. hooks is nil
// except in the learner's mode.
func (c Config) params(l Lab, dir string, prog *progress, hooks *stepHooks) (testscript.Params, context.CancelFunc, error) {
	if c.Meshlab == "" || c.Name == "" {
		return testscript.Params{}, nil, errors.New("labs: Config needs the meshlab binary and the cluster name")
	}
	if c.Kubectl == "" {
		k, err := findKubectl()
		if err != nil {
			return testscript.Params{}, nil, err
		}
		c.Kubectl = k
	}
	file := filepath.Join(dir, l.Name+".txtar")
	if err := os.WriteFile(file, l.Script, 0o644); err != nil {
		return testscript.Params{}, nil, fmt.Errorf("writing lab %s: %w", l.Name, err)
	}
	ctx, cancel := context.WithTimeoutCause(c.context(), c.labTimeout(),
		fmt.Errorf("lab %s exceeded its time limit of %s", l.Name, c.labTimeout()))
	cmds := &commands{cfg: c, ctx: ctx, kubectl: c.Kubectl, progress: prog, hooks: hooks}
	return testscript.Params{
		Files:               []string{file},
		Cmds:                cmds.cmds(),
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Deadline:            time.Now().Add(c.labTimeout()),
		Setup: func(env *testscript.Env) error {
			prog.t = env.T()
			// testscript hides HOME; `exec` lines need the real one for kubeconfig and caches.
			env.Setenv("HOME", os.Getenv("HOME"))
			env.Setenv("CLUSTER", c.Name)
			env.Setenv("CONTEXT", "kind-"+c.Name)
			if hooks != nil {
				for k, v := range hooks.vars {
					env.Setenv(k, v)
				}
				env.Cd = hooks.workDir // where the learner runs the commands too
			}
			return nil
		},
	}, cancel, nil
}

// Result is the outcome of one lab.
type Result struct {
	Name     string        `json:"name"`
	Passed   bool          `json:"passed"`
	Skipped  bool          `json:"skipped,omitempty"`
	Duration time.Duration `json:"duration"`
	// Failure is testscript's log of the failing section: its tutorial text, the commands with their
	// output, and the FAIL line with the assertion (for example the regexp stdout did not match).
	Failure string `json:"failure,omitempty"`
	// NotConverged says why the lab was not judged: a `meshlab wait` found the mesh never converged. Such a
	// lab is neither passed nor failed; `meshlab lab run` exits 2 for it.
	NotConverged string `json:"not_converged,omitempty"`
}

// Run runs labs one after the other (they share the cluster) and returns their results.
func Run(c Config, ls []Lab) ([]Result, error) {
	dir, err := os.MkdirTemp("", "meshlab-labs-")
	if err != nil {
		return nil, fmt.Errorf("creating the labs' work directory: %w", err)
	}
	defer os.RemoveAll(dir)
	var results []Result
	for _, l := range ls {
		if err := c.context().Err(); err != nil {
			return results, fmt.Errorf("stopped before lab %s: %w", l.Name, context.Cause(c.context()))
		}
		r, err := runOne(c, l, dir)
		if err != nil {
			return results, err
		}
		results = append(results, r)
	}
	return results, nil
}

func runOne(c Config, l Lab, dir string) (Result, error) {
	prog := newProgress(c.Out, c.Verbose, l.Script)
	p, cancel, err := c.params(l, dir, prog, nil)
	if err != nil {
		return Result{}, err
	}
	defer cancel()
	p.WorkdirRoot = filepath.Join(dir, "work-"+l.Name) // kept by testscript; removed with dir
	if err := os.MkdirAll(p.WorkdirRoot, 0o755); err != nil {
		return Result{}, fmt.Errorf("creating %s: %w", p.WorkdirRoot, err)
	}
	if c.Out != nil {
		fmt.Fprintf(c.Out, "=== %s: %s\n", l.Name, l.Title)
	}
	start := time.Now()
	root := scriptrun.Run(l.Name, p)
	r := Result{Name: l.Name, Duration: time.Since(start).Round(100 * time.Millisecond)}
	switch {
	case root.Failed():
		r.Failure = failureLog(root.Logs(), filepath.Join(dir, l.Name+".txtar"), l.File)
		r.NotConverged = prog.notConverged
	case root.Skipped():
		r.Skipped, r.Failure = true, root.Logs()
	default:
		r.Passed = true
		prog.finish()
	}
	if c.Out != nil {
		switch {
		case r.Passed:
			fmt.Fprintf(c.Out, "--- PASS %s (%s)\n\n", l.Name, r.Duration)
		case r.Skipped:
			fmt.Fprintf(c.Out, "--- SKIP %s (%s)\n%s\n", l.Name, r.Duration, indent(r.Failure))
		case r.NotConverged != "":
			fmt.Fprintf(c.Out, "--- ERROR %s (%s): not judged, the lab never converged\n%s\n", l.Name, r.Duration, indent(r.Failure))
		default:
			fmt.Fprintf(c.Out, "--- FAIL %s (%s)\n%s\n", l.Name, r.Duration, indent(r.Failure))
		}
	}
	return r, nil
}

// failureLog is testscript's log without the work directory line, the script (written to script for
// testscript) named as the user knows it: file, a path or labs/scripts/NAME.txtar.
func failureLog(log, script, file string) string {
	var keep []string
	for _, line := range strings.Split(log, "\n") {
		if !strings.HasPrefix(line, "WORK=") {
			keep = append(keep, line)
		}
	}
	if file == "" {
		file = path.Join("labs/scripts", filepath.Base(script)) // a built-in lab
	}
	return strings.ReplaceAll(strings.Join(keep, "\n"), script, file)
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}
