// Package scriptrun runs testscript scripts outside `go test`: T is a testscript.T that the CLI's lab and
// check runners hand to testscript.RunT, recording the outcome and the log instead of reporting to testing.
package scriptrun

import (
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
)

// Run runs testscript.RunT(t, p) for a new root T named name and returns it once the script and its
// deferred cleanups are done.
func Run(name string, p testscript.Params) *T {
	root := &T{name: name}
	root.run(func(t *T) { testscript.RunT(t, p) })
	return root
}

// T is testscript's T outside `go test`: it runs each script in its own goroutine (FailNow and Skip end
// that goroutine, as testing.T's do), collects the log testscript writes when a script ends, and records
// the outcome. Verbose is false, so testscript keeps only the failing section in the log.
type T struct {
	name     string
	parent   *T
	mu       sync.Mutex
	log      []string
	fail     bool
	skip     bool
	children []*T
}

var _ testscript.T = (*T)(nil)

// run calls f(t) in a new goroutine and waits for it, so runtime.Goexit in FailNow ends only f.
func (t *T) run(f func(*T)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				t.Error(fmt.Sprintf("panic: %v", r))
			}
		}()
		f(t)
	}()
	<-done
}

func (t *T) Run(name string, f func(testscript.T)) {
	child := &T{name: name, parent: t}
	t.mu.Lock()
	t.children = append(t.children, child)
	t.mu.Unlock()
	child.run(func(c *T) { f(c) })
}

func (t *T) Log(args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.log = append(t.log, fmt.Sprint(args...))
}

// Error records a failure without stopping (cleanups use it).
func (t *T) Error(args ...any) {
	t.Log(args...)
	t.mu.Lock()
	t.fail = true
	t.mu.Unlock()
}

func (t *T) Fatal(args ...any) {
	t.Error(args...)
	runtime.Goexit()
}

func (t *T) FailNow() {
	t.mu.Lock()
	t.fail = true
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *T) Skip(args ...any) {
	t.Log(args...)
	t.mu.Lock()
	t.skip = true
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *T) Parallel()     {} // callers schedule scripts themselves
func (t *T) Verbose() bool { return false }

// Failed reports whether t or a child failed.
func (t *T) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fail {
		return true
	}
	for _, c := range t.children {
		if c.Failed() {
			return true
		}
	}
	return false
}

// Skipped reports whether t or a child was skipped.
func (t *T) Skipped() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.skip {
		return true
	}
	for _, c := range t.children {
		if c.Skipped() {
			return true
		}
	}
	return false
}

// Logs is everything logged by t and its children, in order.
func (t *T) Logs() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	for _, l := range t.log {
		b.WriteString(strings.TrimRight(l, "\n"))
		b.WriteByte('\n')
	}
	for _, c := range t.children {
		b.WriteString(c.Logs())
	}
	return b.String()
}
