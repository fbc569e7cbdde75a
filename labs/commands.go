package labs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/meshlab/meshlab/cluster"
	"github.com/meshlab/meshlab/cluster/nodeimage"
)

// Defaults for the lab commands' bounds.
const (
	DefaultCommandTimeout = 3 * time.Minute // one meshlab/kubectl invocation
	DefaultWaitTimeout    = 2 * time.Minute // one waitfor
	pollInterval          = 2 * time.Second
	curlMaxTime           = "10" // seconds, for every request from the sleep pod
)

// Namespace and workload the sleep client runs as in the lab.
const (
	sleepNamespace = "default"
	sleepTarget    = "deploy/sleep"
)

// commands are the lab's own testscript commands. Each turns its arguments into a process to run
// (argv), so waitfor and cleanup can run any of them too.
type commands struct {
	cfg      Config
	ctx      context.Context // the lab's: cancelled at its deadline or on interrupt (cleanups do not use it)
	kubectl  string
	progress *progress
	hooks    *stepHooks // the learner's mode: nil otherwise
}

// argv returns the process a lab command stands for: meshlab (its cluster comes from MESHLAB_CLUSTER, set
// in every command's environment, so that no command's own --name or --cluster flag is taken for it),
// kubectl with the lab's context, sleepcurl as meshlab curl in the sleep pod. Any other name is a program
// on PATH.
func (c *commands) argv(name string, args []string) []string {
	switch name {
	case "meshlab":
		pre := []string{c.cfg.Meshlab}
		if c.cfg.Kubeconfig != "" {
			pre = append(pre, "--kubeconfig", c.cfg.Kubeconfig)
		}
		if c.cfg.KubeContext != "" {
			pre = append(pre, "--context", c.cfg.KubeContext)
		}
		return append(pre, args...)
	case "kubectl":
		kubeContext := c.cfg.KubeContext
		if kubeContext == "" {
			kubeContext = "kind-" + c.cfg.Name
		}
		pre := []string{c.kubectl, "--context", kubeContext}
		if c.cfg.Kubeconfig != "" {
			pre = append(pre, "--kubeconfig", c.cfg.Kubeconfig)
		}
		return append(pre, args...)
	case "sleepcurl":
		curl := []string{"-n", sleepNamespace, "exec", sleepTarget, "--", "meshlab", "curl", "-sS", "--max-time", curlMaxTime}
		return c.argv("kubectl", append(curl, args...))
	}
	return append([]string{name}, args...)
}

// cmds returns the custom commands for testscript.Params.Cmds.
func (c *commands) cmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	run := func(name string) func(ts *testscript.TestScript, neg bool, args []string) {
		return func(ts *testscript.TestScript, neg bool, args []string) {
			c.progress.reach(name)
			c.runOnce(ts, neg, name, args)
		}
	}
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"meshlab":   run("meshlab"),
		"kubectl":   run("kubectl"),
		"sleepcurl": c.sleepcurl,
		"waitfor":   c.waitfor,
		"capture":   c.capture,
		"cleanup":   c.cleanup,
	}
}

// exec runs one process within the command timeout and the lab's context and returns its output.
func (c *commands) exec(ts *testscript.TestScript, argv []string) (stdout, stderr string, err error) {
	return c.execIn(c.ctx, ts, argv)
}

func (c *commands) execIn(parent context.Context, ts *testscript.TestScript, argv []string) (stdout, stderr string, err error) {
	if err := parent.Err(); err != nil {
		return "", "", fmt.Errorf("not run: %w", context.Cause(parent))
	}
	ctx, cancel := context.WithTimeout(parent, c.cfg.commandTimeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if ts != nil {
		cmd.Dir = ts.MkAbs(".") // $WORK, where the txtar files are
	}
	// The process's own environment, not the script's: kubectl and kind need the real HOME for the
	// kubeconfig, and meshlab its cache.
	cmd.Env = append(os.Environ(), "NO_COLOR=1", cluster.NameEnv+"="+c.cfg.Name)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	switch {
	case parent.Err() != nil:
		err = fmt.Errorf("stopped: %w", context.Cause(parent))
	case ctx.Err() != nil:
		err = fmt.Errorf("timed out after %s", c.cfg.commandTimeout())
	}
	return out.String(), errOut.String(), err
}

// runOnce runs a command once and records its output for stdout/stderr assertions, failing the script
// as exec does: on failure, or on success when negated.
func (c *commands) runOnce(ts *testscript.TestScript, neg bool, name string, args []string) {
	stdout, stderr, err := c.exec(ts, c.argv(name, args))
	fmt.Fprint(ts.Stdout(), stdout)
	fmt.Fprint(ts.Stderr(), stderr)
	c.progress.output(stdout, stderr)
	if name == "meshlab" && isWait(args) && exitCode(err) == 2 && c.ctx.Err() == nil {
		// meshlab wait exits 2 only when the mesh did not converge (or on a usage error, which the lab's
		// validation catches before anything runs): the lab cannot be judged.
		c.progress.mu.Lock()
		c.progress.notConverged = strings.TrimSpace(stderr)
		c.progress.mu.Unlock()
		ts.Fatalf("the lab never converged: meshlab wait: %s", strings.TrimSpace(stderr))
	}
	switch {
	case err != nil && (!neg || c.ctx.Err() != nil): // a stopped command fails even when negated
		ts.Fatalf("%s failed: %v", name, err)
	case err == nil && neg:
		ts.Fatalf("%s succeeded unexpectedly", name)
	}
}

// isWait reports whether meshlab's arguments run `meshlab wait`.
func isWait(args []string) bool {
	cmd, _ := firstWord(args, meshlabGlobalsWithValue)
	return cmd == "wait"
}

// exitCode is a finished process's exit code: 0 for no error, -1 when it did not run to an exit.
func exitCode(err error) int {
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	return -1
}

// sleepcurl [-count N] CURL-ARGS... sends requests from the sleep pod with `meshlab curl` (-sS and a
// 10 s --max-time added), N times one after the other (default 1), stopping at the first that fails;
// stdout holds every answer.
func (c *commands) sleepcurl(ts *testscript.TestScript, neg bool, args []string) {
	c.progress.reach("sleepcurl")
	count := 1
	if len(args) >= 2 && args[0] == "-count" {
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 1 {
			ts.Fatalf("sleepcurl -count: want a positive number, got %q", args[1])
		}
		count, args = n, args[2:]
	}
	if len(args) == 0 {
		ts.Fatalf("usage: sleepcurl [-count N] [CURL-FLAGS] URL")
	}
	argv := c.argv("sleepcurl", args)
	var stdout, stderr strings.Builder
	var err error
	for i := 0; i < count && err == nil; i++ {
		var o, e string
		o, e, err = c.exec(ts, argv)
		stdout.WriteString(o)
		stderr.WriteString(e)
		if err != nil && count > 1 {
			err = fmt.Errorf("request %d of %d: %w", i+1, count, err)
		}
	}
	fmt.Fprint(ts.Stdout(), stdout.String())
	fmt.Fprint(ts.Stderr(), stderr.String())
	c.progress.output(stdout.String(), stderr.String())
	switch {
	case err != nil && (!neg || c.ctx.Err() != nil):
		ts.Fatalf("sleepcurl failed: %v", err)
	case err == nil && neg:
		ts.Fatalf("sleepcurl succeeded unexpectedly")
	}
}

// waitfor [-timeout D] REGEXP COMMAND ARGS... runs COMMAND every two seconds until its standard output
// matches REGEXP (its exit status is not required to be 0 meanwhile), for changes that converge: a
// proxy receiving config, a pod becoming ready. It fails at the deadline with the last output; after a
// match, stdout holds the matching output for further assertions.
func (c *commands) waitfor(ts *testscript.TestScript, neg bool, args []string) {
	c.progress.reach("waitfor")
	if neg {
		ts.Fatalf("waitfor cannot be negated; wait for the output that shows the change instead")
	}
	timeout := DefaultWaitTimeout
	if len(args) >= 2 && args[0] == "-timeout" {
		d, err := time.ParseDuration(args[1])
		if err != nil {
			ts.Fatalf("waitfor -timeout: %v", err)
		}
		timeout, args = d, args[2:]
	}
	if len(args) < 2 {
		ts.Fatalf("usage: waitfor [-timeout DURATION] REGEXP COMMAND ARGS...")
	}
	re, err := regexp.Compile(`(?m)` + args[0])
	if err != nil {
		ts.Fatalf("waitfor: %v", err)
	}
	argv := c.argv(args[1], args[2:])
	deadline := time.Now().Add(timeout)
	for attempt := 1; ; attempt++ {
		stdout, stderr, err := c.exec(ts, argv)
		if re.MatchString(stdout) {
			fmt.Fprint(ts.Stdout(), stdout)
			c.progress.output(stdout, "")
			ts.Logf("matched after %d attempt(s)", attempt)
			return
		}
		if time.Now().Add(pollInterval).After(deadline) || c.ctx.Err() != nil {
			fmt.Fprint(ts.Stdout(), stdout)
			fmt.Fprint(ts.Stderr(), stderr)
			c.progress.output(stdout, stderr)
			ts.Fatalf("waitfor: no match for `%s` in the output of %s within %s (%d attempts, last exit: %v)",
				args[0], args[1], timeout, attempt, errOrOK(err))
		}
		select {
		case <-time.After(pollInterval):
		case <-c.ctx.Done():
		}
	}
}

func errOrOK(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// capture VAR sets the script variable VAR to the last command's standard output, trimmed, so later
// lines can use $VAR (for example an image name read from a Deployment).
func (c *commands) capture(ts *testscript.TestScript, neg bool, args []string) {
	c.progress.reach("capture")
	if neg || len(args) != 1 {
		ts.Fatalf("usage: capture VAR")
	}
	v := strings.TrimSpace(ts.ReadFile("stdout"))
	if v == "" {
		ts.Fatalf("capture %s: the last command printed nothing", args[0])
	}
	ts.Setenv(args[0], v)
	if c.hooks != nil && c.hooks.vars != nil {
		c.hooks.vars[args[0]] = v // later steps run as scripts of their own
	}
}

// cleanup COMMAND ARGS... runs COMMAND when the script ends, passed or failed, like Go's defer: labs
// register the undo of each change right after making it, so the lab returns to its baseline. Cleanups
// run last-registered first; one that fails is reported and fails the lab, and the others still run.
func (c *commands) cleanup(ts *testscript.TestScript, neg bool, args []string) {
	c.progress.reach("cleanup")
	if neg || len(args) == 0 {
		ts.Fatalf("usage: cleanup COMMAND ARGS...")
	}
	line := strings.Join(args, " ")
	if c.hooks != nil && c.hooks.record != nil {
		// A step of the learner's mode is a script of its own: its cleanups must outlive it.
		c.progress.cleanup(line + "   (at the end of the lab)")
		c.hooks.record(args)
		return
	}
	argv := c.argv(args[0], args[1:])
	t := c.progress.t
	ts.Defer(func() {
		c.progress.cleanup(line)
		stdout, stderr, err := c.execIn(context.Background(), ts, argv) // also after an interrupt
		c.progress.output(stdout, stderr)
		if err != nil {
			msg := fmt.Sprintf("cleanup %s failed: %v\n%s%s", line, err, stdout, stderr)
			if e, ok := t.(interface{ Error(...any) }); ok {
				e.Error(msg)
			} else {
				t.Log(msg)
			}
		}
	})
}

// findKubectl returns kubectl from PATH, or the one `meshlab node-image build` compiled into meshlab's
// cache (the node image carries Kubernetes built from source, kubectl included).
func findKubectl() (string, error) {
	if p, err := exec.LookPath("kubectl"); err == nil {
		return p, nil
	}
	cache, err := nodeimage.CacheDir()
	if err != nil {
		return "", err
	}
	matches, _ := filepath.Glob(filepath.Join(cache, "nodeimage", "kube-*", "bin", "kubectl"))
	if len(matches) == 0 {
		return "", errors.New("no kubectl on PATH and none built by `meshlab node-image build` under " + cache)
	}
	return matches[len(matches)-1], nil
}
