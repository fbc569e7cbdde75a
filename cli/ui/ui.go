// Package ui is how meshlab talks to the person at the terminal: streams, a levelled logger and kind-style
// progress lines (a spinner then ✓/✗ on a TTY, plain "•" lines otherwise). Logs go to stderr, results to
// stdout; colour and the spinner only appear on a terminal and honour NO_COLOR.
package ui

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/meshlab/meshlab/log"
	"golang.org/x/term"
)

// Streams are the standard streams a command reads and writes; never globals, so tests can capture them.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// StandardStreams returns the process's stdin, stdout and stderr.
func StandardStreams() Streams {
	return Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}

// Logger writes levelled messages to one writer. V(0) is for the user; higher levels need -v.
type Logger struct {
	mu        sync.Mutex
	w         io.Writer
	verbosity int
	quiet     bool
	color     bool
	tty       bool
}

// NewLogger returns a Logger for w. verbosity is the -v level; quiet (-q) silences everything but errors.
func NewLogger(w io.Writer, verbosity int, quiet bool) *Logger {
	tty := IsTerminal(w)
	return &Logger{w: w, verbosity: verbosity, quiet: quiet, tty: tty, color: tty && os.Getenv("NO_COLOR") == ""}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// SetVerbosity changes the -v level and quiet flag after flags are parsed.
func (l *Logger) SetVerbosity(v int, quiet bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.verbosity, l.quiet = v, quiet
}

// V returns a Logf that prints only when the verbosity is at least level.
func (l *Logger) V(level int) log.Logf {
	l.mu.Lock()
	on := !l.quiet && level <= l.verbosity
	l.mu.Unlock()
	if !on {
		return log.Discard
	}
	return l.printf
}

// Enabled reports whether messages at level are printed.
func (l *Logger) Enabled(level int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.quiet && level <= l.verbosity
}

// NewStatus returns a Status for this logger's terminal: it makes *Logger a log.StatusProvider.
func (l *Logger) NewStatus() log.Status { return NewStatus(l) }

var _ log.StatusProvider = (*Logger)(nil)

// Infof prints at level 0.
func (l *Logger) Infof(format string, args ...any) { l.V(0)(format, args...) }

// Warnf prints a warning unless quiet.
func (l *Logger) Warnf(format string, args ...any) {
	if l.isQuiet() {
		return
	}
	l.printf(l.paint("33", "WARNING: ")+format, args...)
}

// Errorf always prints.
func (l *Logger) Errorf(format string, args ...any) {
	l.printf(l.paint("31", "ERROR: ")+format, args...)
}

func (l *Logger) isQuiet() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.quiet
}

func (l *Logger) paint(code, s string) string {
	if !l.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (l *Logger) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if len(msg) == 0 || msg[len(msg)-1] != '\n' {
		msg += "\n"
	}
	io.WriteString(l.w, msg)
}
