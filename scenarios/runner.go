package scenarios

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/meshlab/meshlab/log"
)

// Status is a scenario's outcome.
type Status string

// Outcomes. A skipped scenario did not run for lack of a prerequisite; it did not pass. An errored one
// could not be judged: the lab never reached the state its checks need (the proxies never acknowledged the
// change, a rollout never completed), which is an environment error, not a verdict on the config.
const (
	StatusPassed  Status = "passed"
	StatusFailed  Status = "failed"
	StatusSkipped Status = "skipped"
	StatusError   Status = "error"
)

// Result is how one scenario went.
type Result struct {
	Name        string
	Description string
	Status      Status
	SkipReason  string
	Failures    []Failure
	Phases      []PhaseResult
	Steps       []StepTime
	Start       time.Time
	Duration    time.Duration
	Bundle      string // folder holding the failure bundle, if any
	Log         []string
}

// StepTime is how long one step took.
type StepTime struct {
	Name     string
	Duration time.Duration
}

// Runner runs scenarios against a lab.
type Runner struct {
	// Env is the lab; nil runs scenarios without one (unit tests), and their live helpers fail.
	Env *Env
	// BundleDir is where failure bundles go, one folder <name>-<timestamp> each (default _out/scenarios).
	BundleDir string
	// Logf receives progress lines: each scenario's start and outcome (may be nil).
	Logf log.Logf
	// Debugf receives each scenario's own log lines and failures as they happen (may be nil).
	Debugf log.Logf
	// Timeout overrides each scenario's own Timeout when set; TeardownTimeout likewise for teardowns.
	Timeout, TeardownTimeout time.Duration
	// now is replaceable in tests.
	now func() time.Time
}

// DefaultBundleDir is where failure bundles go by default.
const DefaultBundleDir = "_out/scenarios"

// Run runs the scenarios in order and reports each.
func (r *Runner) Run(ctx context.Context, list []*Scenario) *Report {
	rep := &Report{Start: r.clock()}
	if r.Env != nil {
		rep.Cluster = r.Env.Cluster
	}
	for _, s := range list {
		res := r.RunOne(ctx, s)
		rep.Results = append(rep.Results, res)
		if ctx.Err() != nil {
			break
		}
	}
	rep.Duration = r.clock().Sub(rep.Start)
	return rep
}

func (r *Runner) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

func (r *Runner) logf(format string, args ...any) {
	if r.Logf != nil {
		r.Logf(format, args...)
	}
}

// RunOne runs one scenario: Requires, Setup, Wait, Check (stopping at the first step that fails or
// skips), then always Teardown. A panic in any step is a failure, not a crash.
func (r *Runner) RunOne(ctx context.Context, s *Scenario) Result {
	start := r.clock()
	res := Result{Name: s.Name, Description: s.Description, Start: start}
	timeout := s.Timeout
	if r.Timeout > 0 {
		timeout = r.Timeout
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := &T{Env: r.Env, name: s.Name, ctx: sctx, logf: r.Debugf}
	r.logf("• %s: %s", s.Name, s.Description)

	steps := []struct {
		name string
		fn   func(*T)
	}{
		{"requires", s.Requires},
		{"baseline", r.baseline},
		{"setup", s.Setup},
		{"wait", s.Wait},
		{"check", s.Check},
	}
	if s.Wait == nil {
		steps[3].fn = defaultWait
	}
	if s.Check == nil {
		steps[4].fn = func(t *T) { t.Fatalf("scenario %s has no Check", s.Name) }
	}
	skipped := false
	for _, st := range steps {
		if st.fn == nil {
			continue
		}
		d, outcome := r.step(sctx, t, st.name, st.fn)
		res.Steps = append(res.Steps, StepTime{st.name, d})
		if _, skip := outcome.(skipNow); skip {
			skipped = true
			break
		}
		if _, stop := outcome.(failNow); stop || t.Failed() {
			break
		}
	}
	if t.Failed() {
		res.Bundle = r.bundle(ctx, t, &res)
	}

	// Teardown: the scenario's own, then the framework's undo and restore, with a fresh deadline.
	tctx, tcancel := context.WithTimeout(context.WithoutCancel(ctx), r.teardownTimeout())
	defer tcancel()
	t.mu.Lock()
	t.ctx = tctx
	t.mu.Unlock()
	failedBefore := len(t.failures)
	d, _ := r.step(tctx, t, "teardown", func(t *T) {
		if s.Teardown != nil {
			func() {
				defer func() {
					if rec := recover(); rec != nil && rec != (failNow{}) && rec != (skipNow{}) {
						t.Errorf("panic in teardown: %v", rec)
					}
				}()
				s.Teardown(t)
			}()
		}
		r.restore(t)
	})
	res.Steps = append(res.Steps, StepTime{"teardown", d})
	if len(t.failures) > failedBefore && res.Bundle == "" {
		res.Bundle = r.bundle(ctx, t, &res)
	}

	t.mu.Lock()
	res.Failures = append(res.Failures, t.failures...)
	res.Phases = append(res.Phases, t.phases...)
	res.Log = append(res.Log, t.log...)
	res.SkipReason = t.skipReason
	t.mu.Unlock()
	switch {
	case hasEnvFailure(res.Failures):
		res.Status = StatusError
	case len(res.Failures) > 0:
		res.Status = StatusFailed
	case skipped:
		res.Status = StatusSkipped
	default:
		res.Status = StatusPassed
	}
	res.Duration = r.clock().Sub(start)
	if res.Bundle != "" {
		writeBundleSummary(res.Bundle, res)
	}
	r.logf("  %s: %s (%s)%s", s.Name, strings.ToUpper(string(res.Status)), res.Duration.Round(time.Millisecond), skipSuffix(res))
	return res
}

func skipSuffix(res Result) string {
	if res.Status == StatusSkipped {
		return ": " + res.SkipReason
	}
	return ""
}

func (r *Runner) teardownTimeout() time.Duration {
	if r.TeardownTimeout > 0 {
		return r.TeardownTimeout
	}
	return TeardownTimeout
}

// step runs one step in its own goroutine so that a step that ignores its context cannot hold the run
// past the deadline. It returns how the step ended: nil, failNow{} or skipNow{}.
func (r *Runner) step(ctx context.Context, t *T, name string, fn func(*T)) (time.Duration, any) {
	start := r.clock()
	t.mu.Lock()
	t.step = name
	t.mu.Unlock()
	done := make(chan any, 1)
	go func() {
		var outcome any
		defer func() {
			if rec := recover(); rec != nil {
				switch rec.(type) {
				case failNow, skipNow:
					outcome = rec
				case abortNow:
					outcome = failNow{}
				default:
					t.addFailure(Failure{What: fmt.Sprintf("panic: %v", rec)})
					t.Logf("panic in %s: %v\n%s", name, rec, debug.Stack())
					outcome = failNow{}
				}
			}
			done <- outcome
		}()
		fn(t)
	}()
	select {
	case outcome := <-done:
		return r.clock().Sub(start), outcome
	case <-ctx.Done():
		// Give a step that honours its context a moment to return with its own, better message.
		select {
		case outcome := <-done:
			return r.clock().Sub(start), outcome
		case <-time.After(2 * time.Second):
		}
		t.addFailure(Failure{What: fmt.Sprintf("step %s did not finish before the deadline: %v", name, ctx.Err())})
		return r.clock().Sub(start), failNow{}
	}
}

// baseline records the control plane's sync state before Setup, for teardown to restore.
func (r *Runner) baseline(t *T) {
	if t.Env == nil {
		return
	}
	if st, err := t.Env.Syncz(t.Context()); err == nil {
		t.baseline = &st
	}
}

// defaultWait waits until every connected proxy is in sync, when the scenario changed anything and a
// control plane is there to ask.
func defaultWait(t *T) {
	t.mu.Lock()
	changed := len(t.applied) > 0
	t.mu.Unlock()
	if t.Env == nil || !changed || t.baseline == nil {
		return
	}
	t.WaitConverged()
}

// restore undoes what the scenario applied and waits until the proxies it touched are back at their
// config from before Setup (or gone, if Setup created them).
func (r *Runner) restore(t *T) {
	t.mu.Lock()
	n, touched := len(t.applied), t.touched
	t.mu.Unlock()
	if t.Env == nil || n == 0 {
		return
	}
	if err := t.undoAll(t.Context()); err != nil {
		t.Errorf("teardown: %v", err)
	}
	if t.baseline == nil || len(touched) == 0 {
		return
	}
	if err := t.converge(t.Context(), *t.baseline, touched, modeRestored, r.teardownTimeout()-5*time.Second); err != nil {
		t.addFailure(Failure{What: "teardown: the lab is not restored", Expected: "every touched proxy back at its config from before the scenario", Seen: err.Error()})
	}
}

// bundlePath is <dir>/<name>-<timestamp>.
func (r *Runner) bundlePath(name string) string {
	dir := r.BundleDir
	if dir == "" {
		dir = DefaultBundleDir
	}
	return filepath.Join(dir, name+"-"+r.clock().UTC().Format("20060102-150405"))
}
