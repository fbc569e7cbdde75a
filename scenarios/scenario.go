// Package scenarios is meshlab's scenario framework: a Scenario is Go code that changes the running lab
// (Setup), waits until every affected proxy has acknowledged the change (Wait, read from the control
// plane's /debug/syncz), asserts on traffic and on proxy config (Check) and restores the lab (Teardown).
// The Runner runs scenarios one after another, turns panics and timeouts into failures, always tears down,
// saves a bundle of evidence for each failure and reports results as text, JSON or JUnit XML.
//
// The scenarios themselves live in scenarios/suite; the API-server plumbing in cluster/labclient.
package scenarios

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/meshlab/meshlab/controlplane/xds"
)

// Scenario is one mesh behaviour to check on the running lab. Every func receives the running scenario's
// *T; a func stops early with t.Fatalf or t.Skipf. Only Name and Check are required.
type Scenario struct {
	Name        string
	Description string
	// Timeout bounds Requires, Setup, Wait and Check together (default DefaultTimeout); Teardown has its
	// own TeardownTimeout so that a scenario that ran out of time still restores the lab.
	Timeout time.Duration
	// Requires checks prerequisites in the cluster and calls t.Skipf("requires ...") when one is absent.
	Requires func(t *T)
	// Setup applies the scenario's config, usually with t.Apply.
	Setup func(t *T)
	// Wait waits until the affected proxies have acknowledged the config Setup applied, usually with
	// t.WaitConverged. Nil waits until every connected proxy is in sync.
	Wait func(t *T)
	// Check sends traffic and reads config, recording failures with t.Expect, t.Errorf or t.Fatalf.
	Check func(t *T)
	// Teardown runs first in the teardown, before the framework deletes what t.Apply created, restores
	// what it patched and waits for the touched proxies to return to their config from before Setup.
	Teardown func(t *T)
}

// Default timeouts.
const (
	DefaultTimeout         = 3 * time.Minute
	TeardownTimeout        = 90 * time.Second
	DefaultConvergeTimeout = 60 * time.Second
)

// Failure is one failed expectation: what was checked, what was expected and what was seen.
type Failure struct {
	Phase    string `json:"phase,omitempty"`
	Step     string `json:"step"`
	What     string `json:"what"`
	Expected string `json:"expected,omitempty"`
	Seen     string `json:"seen,omitempty"`
	// Env marks an environment error (t.Abortf): the lab never got to where the check could be judged.
	Env bool `json:"environment,omitempty"`
	// Explain is `meshlab explain`'s prediction for the request a failed traffic expectation sent (the
	// path it should take, hop by hop, from the config each proxy holds), when the lab can give one.
	Explain string `json:"explain,omitempty"`
}

func hasEnvFailure(fs []Failure) bool {
	for _, f := range fs {
		if f.Env {
			return true
		}
	}
	return false
}

// String formats the failure over up to three lines: the check, then expected and seen.
func (f Failure) String() string {
	var b strings.Builder
	if f.Phase != "" {
		fmt.Fprintf(&b, "[%s] ", f.Phase)
	}
	b.WriteString(f.What)
	if f.Expected != "" || f.Seen != "" {
		fmt.Fprintf(&b, "\n    expected: %s", indentRest(f.Expected))
		fmt.Fprintf(&b, "\n    seen:     %s", indentRest(f.Seen))
	}
	if f.Explain != "" {
		fmt.Fprintf(&b, "\n    explain:\n      %s", strings.ReplaceAll(strings.TrimRight(f.Explain, "\n"), "\n", "\n      "))
	}
	return b.String()
}

// indentRest keeps multi-line values aligned under their label.
func indentRest(s string) string {
	return strings.ReplaceAll(s, "\n", "\n              ")
}

// stop values unwind a step the way testing.T's FailNow and SkipNow do; the runner recovers them.
type (
	failNow  struct{}
	skipNow  struct{}
	abortNow struct{} // ends the whole scenario, not just the phase
)

// T is a running scenario, handed to each of its funcs.
type T struct {
	// Env is the live lab; nil when the runner has no cluster (unit tests of the framework).
	Env  *Env
	name string
	ctx  context.Context

	mu         sync.Mutex
	step       string
	phase      string
	failures   []Failure
	skipReason string
	log        []string
	logf       func(format string, args ...any)
	phases     []PhaseResult

	// What teardown undoes and waits for.
	applied  []appliedObject
	touched  []ProxySet
	baseline *xds.SyncStatus // syncz before Setup; nil when the control plane is not reachable
	before   *xds.SyncStatus // syncz before the latest change, for WaitConverged
	involved []PodSelector   // pods whose logs go into a failure bundle
	lastSent *Request        // the last request sent from a pod, for explaining a failed traffic expectation
}

// Name is the scenario's name.
func (t *T) Name() string { return t.name }

// Context is the scenario's context; it ends at the scenario's deadline.
func (t *T) Context() context.Context {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ctx
}

// Logf records a line in the scenario's log (shown with -v, kept in bundles and JUnit system-out).
func (t *T) Logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	t.mu.Lock()
	t.log = append(t.log, time.Now().Format("15:04:05.000")+" "+line)
	t.mu.Unlock()
	if t.logf != nil {
		t.logf("  %s: %s", t.name, line)
	}
}

// Skipf stops the scenario (or the current phase) as skipped, with the reason, e.g. "requires the
// meshlab control plane (Deployment istio-system/istiod)". A skip is not a pass.
func (t *T) Skipf(format string, args ...any) {
	t.mu.Lock()
	t.skipReason = fmt.Sprintf(format, args...)
	t.mu.Unlock()
	panic(skipNow{})
}

// Errorf records a failure without expected/seen values and continues.
func (t *T) Errorf(format string, args ...any) {
	t.addFailure(Failure{What: fmt.Sprintf(format, args...)})
}

// Fatalf records a failure and stops the current step (or phase).
func (t *T) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	panic(failNow{})
}

// Abortf records an environment error and stops the scenario, phases included: the lab never reached the
// state a check needs (the proxies never converged, a rollout never completed), so nothing can be judged.
// The scenario's status is StatusError and the run exits 2, not 1.
func (t *T) Abortf(format string, args ...any) {
	t.addFailure(Failure{What: fmt.Sprintf(format, args...), Env: true})
	panic(abortNow{})
}

// IsAbort reports whether a recovered panic value is Abortf's: code that runs a scenario's funcs inside
// its own recover (the check files' script runner) stops there and lets the result say not judged.
func IsAbort(r any) bool { _, ok := r.(abortNow); return ok }

// FailNow stops the current step (or phase) after failures were recorded.
func (t *T) FailNow() { panic(failNow{}) }

// Must stops with a failure when err is not nil; doing says what was being done.
func (t *T) Must(err error, doing string) {
	if err != nil {
		t.Fatalf("%s: %v", doing, err)
	}
}

// Expect records a failure unless ok; expected and seen are formatted with %v. It returns ok.
func (t *T) Expect(ok bool, what string, expected, seen any) bool {
	if !ok {
		t.addFailure(Failure{What: what, Expected: fmt.Sprint(expected), Seen: fmt.Sprint(seen)})
	}
	return ok
}

// expectTraffic is Expect for what a request just sent showed: a failure carries the lab's explanation of
// that request's path (Env.Explain), so that expected-vs-seen comes with where the request should have gone.
func (t *T) expectTraffic(ok bool, what string, expected, seen any) bool {
	if ok {
		return true
	}
	f := Failure{What: what, Expected: fmt.Sprint(expected), Seen: fmt.Sprint(seen)}
	t.mu.Lock()
	req := t.lastSent
	t.mu.Unlock()
	if req != nil && t.Env != nil && t.Env.Explain != nil {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		text, err := t.Env.Explain(ctx, *req)
		cancel()
		if err != nil {
			text = "explain: " + err.Error()
		}
		f.Explain = text
	}
	t.addFailure(f)
	return false
}

// ExpectEqual records a failure unless expected and seen are deeply equal. It returns whether they are.
func (t *T) ExpectEqual(what string, expected, seen any) bool {
	return t.Expect(reflect.DeepEqual(expected, seen), what, expected, seen)
}

// Failed reports whether any failure was recorded so far.
func (t *T) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.failures) > 0
}

func (t *T) addFailure(f Failure) {
	t.mu.Lock()
	f.Step, f.Phase = t.step, t.phase
	t.failures = append(t.failures, f)
	t.mu.Unlock()
	if t.logf != nil {
		t.logf("  %s: FAIL %s", t.name, strings.ReplaceAll(f.String(), "\n", "\n  "))
	}
}

// PhaseResult is how one phase of a scenario went.
type PhaseResult struct {
	Name       string        `json:"name"`
	Status     Status        `json:"status"`
	SkipReason string        `json:"skip_reason,omitempty"`
	Duration   time.Duration `json:"-"`
}

// Phase runs fn as a named part of a step (routing-90-10 checks a VirtualService, then an HTTPRoute).
// Failures inside are tagged with the phase; Fatalf and Skipf end only the phase.
func (t *T) Phase(name string, fn func()) {
	t.mu.Lock()
	outer, before := t.phase, len(t.failures)
	t.phase = name
	t.mu.Unlock()
	start := time.Now()
	t.Logf("phase %s", name)
	res := PhaseResult{Name: name, Status: StatusPassed}
	aborted := false
	func() {
		defer func() {
			switch r := recover(); r.(type) {
			case nil, failNow:
			case abortNow:
				aborted = true
			case skipNow:
				t.mu.Lock()
				res.Status, res.SkipReason, t.skipReason = StatusSkipped, t.skipReason, ""
				t.mu.Unlock()
			default:
				t.Errorf("panic: %v", r)
			}
		}()
		fn()
	}()
	t.mu.Lock()
	if len(t.failures) > before {
		res.Status = StatusFailed
	}
	t.phase = outer
	res.Duration = time.Since(start)
	t.phases = append(t.phases, res)
	t.mu.Unlock()
	if aborted {
		panic(abortNow{}) // an environment error ends the scenario, not just the phase
	}
}

// PodSelector names pods by namespace and label selector.
type PodSelector struct {
	Namespace string
	Selector  string
}

// Involve adds pods whose logs a failure bundle should hold (the control plane, ztunnels and sleep are
// always included when present).
func (t *T) Involve(namespace, selector string) {
	t.mu.Lock()
	t.involved = append(t.involved, PodSelector{namespace, selector})
	t.mu.Unlock()
}
