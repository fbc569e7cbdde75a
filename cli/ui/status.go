package ui

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Status shows the progress of one step at a time, like kind: on a TTY a spinner that turns into
// " ✓ step" or " ✗ step"; elsewhere a plain " • step" line when the step starts and a result line at the end.
type Status struct {
	logger *Logger
	mu     sync.Mutex
	step   string
	start  time.Time
	stop   chan struct{}
	done   chan struct{}
}

// NewStatus returns a Status that writes through logger.
func NewStatus(logger *Logger) *Status { return &Status{logger: logger} }

var spinnerFrames = []string{"⠈⠁", "⠈⠑", "⠈⠱", "⠈⡱", "⢀⡱", "⢄⡱", "⢄⡱", "⢆⡱", "⢎⡱", "⢎⡰", "⢎⡠", "⢎⡀", "⢎⠁", "⠎⠁", "⠊⠁"}

// Start begins a step, ending any step still running as successful.
func (s *Status) Start(step string) {
	s.End(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logger.isQuiet() {
		return
	}
	s.step, s.start = step, time.Now()
	if !s.logger.tty {
		s.logger.printf(" • %s", step)
		return
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go s.spin(s.stop, s.done, step)
}

func (s *Status) spin(stop, done chan struct{}, step string) {
	defer close(done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		s.logger.mu.Lock()
		fmt.Fprintf(s.logger.w, "\r %s %s", spinnerFrames[i%len(spinnerFrames)], step)
		s.logger.mu.Unlock()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// End finishes the current step, if any, as a success or a failure.
func (s *Status) End(ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step == "" {
		return
	}
	step := s.step
	s.step = ""
	elapsed := time.Since(s.start).Round(100 * time.Millisecond)
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop, s.done = nil, nil
		mark := s.logger.paint("32", "✓")
		if !ok {
			mark = s.logger.paint("31", "✗")
		}
		s.logger.mu.Lock()
		fmt.Fprintf(s.logger.w, "\r %s %s (%s)\x1b[K\n", mark, step, elapsed)
		s.logger.mu.Unlock()
		return
	}
	if !ok {
		s.logger.printf(" ✗ %s failed after %s", step, elapsed)
		return
	}
	s.logger.V(1)(" ✓ %s (%s)", step, elapsed)
}

// Step runs fn as one step and ends it by fn's result.
func (s *Status) Step(step string, fn func() error) error {
	s.Start(step)
	err := fn()
	s.End(err == nil)
	return err
}

// Writer returns a writer for free-form output that does not collide with the spinner.
func (s *Status) Writer() io.Writer { return s.logger.w }
