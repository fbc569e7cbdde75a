// Package log is how meshlab's libraries report what they do without knowing who listens: a levelled
// Logger interface, the plain Logf function type components take, and a Status for step-by-step progress.
// It imports nothing of meshlab, so every package may use it; the terminal (spinner, colour, ✓/✗) lives in
// cli/ui, which implements these interfaces, and libraries never import it (kind's pkg/log pattern).
package log

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Logf is the lightest way to hand a component a logger (Tailscale's logger.Logf).
type Logf func(format string, args ...any)

// Discard is a Logf that drops everything.
func Discard(string, ...any) {}

// WithPrefix returns a Logf that prefixes every line.
func WithPrefix(logf Logf, prefix string) Logf {
	return func(format string, args ...any) { logf(prefix+format, args...) }
}

// Logger writes levelled messages. V(0) is for the user; higher levels are detail a user asks for (-v).
type Logger interface {
	// V returns a Logf that prints only when the verbosity is at least level.
	V(level int) Logf
	// Enabled reports whether messages at level are printed.
	Enabled(level int) bool
	// Warnf reports something the user should know about but that did not stop the work.
	Warnf(format string, args ...any)
	// Errorf reports a failure.
	Errorf(format string, args ...any)
}

// Status shows the progress of one step at a time.
type Status interface {
	// Start begins a step, ending any step still running as successful.
	Start(step string)
	// End finishes the current step, if any, as a success or a failure.
	End(ok bool)
	// Step runs fn as one step and ends it by fn's result.
	Step(step string, fn func() error) error
}

// Progresser is a Status that can also say how far the running step has got ("412 of 2143 packages").
type Progresser interface {
	Progress(detail string)
}

// Progress reports detail on the running step of s, when s can show it; a Status that cannot ignores it.
func Progress(s Status, detail string) {
	if p, ok := s.(Progresser); ok {
		p.Progress(detail)
	}
}

// StatusProvider is a Logger that can show progress its own way (cli/ui's spinner on a terminal).
type StatusProvider interface {
	NewStatus() Status
}

// StatusFor returns logger's own Status when it has one, or else one that prints a line per step.
func StatusFor(logger Logger) Status {
	if p, ok := logger.(StatusProvider); ok {
		return p.NewStatus()
	}
	return &lineStatus{logger: logger}
}

type lineStatus struct {
	logger Logger
	step   string
	start  time.Time
}

func (s *lineStatus) Start(step string) {
	s.End(true)
	s.step, s.start = step, time.Now()
	s.logger.V(0)(" • %s", step)
}

func (s *lineStatus) Step(step string, fn func() error) error {
	s.Start(step)
	err := fn()
	s.End(err == nil)
	return err
}

func (s *lineStatus) End(ok bool) {
	if s.step == "" {
		return
	}
	elapsed := time.Since(s.start).Round(100 * time.Millisecond)
	if ok {
		s.logger.V(1)(" ✓ %s (%s)", s.step, elapsed)
	} else {
		s.logger.Errorf(" ✗ %s failed after %s", s.step, elapsed)
	}
	s.step = ""
}

// NewWriter returns a plain Logger writing lines to w, printing levels up to verbosity: for programs and
// tests that use meshlab's libraries without its terminal UI.
func NewWriter(w io.Writer, verbosity int) Logger {
	return &writer{w: w, verbosity: verbosity}
}

type writer struct {
	mu        sync.Mutex
	w         io.Writer
	verbosity int
}

func (l *writer) V(level int) Logf {
	if level > l.verbosity {
		return Discard
	}
	return l.printf
}

func (l *writer) Enabled(level int) bool { return level <= l.verbosity }

func (l *writer) Warnf(format string, args ...any)  { l.printf("WARNING: "+format, args...) }
func (l *writer) Errorf(format string, args ...any) { l.printf("ERROR: "+format, args...) }

func (l *writer) printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if len(msg) == 0 || msg[len(msg)-1] != '\n' {
		msg += "\n"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.w, msg)
}

// Noop is a Logger that prints nothing.
var Noop Logger = noop{}

type noop struct{}

func (noop) V(int) Logf            { return Discard }
func (noop) Warnf(string, ...any)  {}
func (noop) Errorf(string, ...any) {}
func (noop) Enabled(int) bool      { return false }
