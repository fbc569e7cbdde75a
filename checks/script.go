package checks

import (
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
)

// scriptT is testscript's T outside `go test`: each script runs in its own goroutine (FailNow and Skip end
// that goroutine, as testing.T's do) and the log testscript writes when a script ends is kept.
// It duplicates labs' scriptT (labs/runner.go), which is unexported; the two can become one shared type.
type scriptT struct {
	mu       sync.Mutex
	log      []string
	fail     bool
	skip     bool
	children []*scriptT
}

var _ testscript.T = (*scriptT)(nil)

// run calls f(t) in a new goroutine and waits for it, so runtime.Goexit in FailNow ends only f.
func (t *scriptT) run(f func(*scriptT)) {
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

func (t *scriptT) Run(_ string, f func(testscript.T)) {
	child := &scriptT{}
	t.mu.Lock()
	t.children = append(t.children, child)
	t.mu.Unlock()
	child.run(func(c *scriptT) { f(c) })
}

func (t *scriptT) Log(args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.log = append(t.log, fmt.Sprint(args...))
}

func (t *scriptT) Error(args ...any) {
	t.Log(args...)
	t.mu.Lock()
	t.fail = true
	t.mu.Unlock()
}

func (t *scriptT) Fatal(args ...any) {
	t.Error(args...)
	runtime.Goexit()
}

func (t *scriptT) FailNow() {
	t.mu.Lock()
	t.fail = true
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *scriptT) Skip(args ...any) {
	t.Log(args...)
	t.mu.Lock()
	t.skip = true
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *scriptT) Parallel()     {} // the runner schedules files itself
func (t *scriptT) Verbose() bool { return false }

func (t *scriptT) failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fail {
		return true
	}
	for _, c := range t.children {
		if c.failed() {
			return true
		}
	}
	return false
}

// logs is everything logged by t and its children, in order, without testscript's WORK= line.
func (t *scriptT) logs() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	for _, l := range t.log {
		for _, line := range strings.Split(strings.TrimRight(l, "\n"), "\n") {
			if !strings.HasPrefix(line, "WORK=") {
				b.WriteString(line)
				b.WriteByte('\n')
			}
		}
	}
	for _, c := range t.children {
		b.WriteString(c.logs())
	}
	return b.String()
}
