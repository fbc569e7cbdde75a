package ui

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// heartbeat is how often a step still running prints a line when the output is not a terminal (a CI log, a
// pipe): long work such as compiling Kubernetes must show a sign of life there too.
var heartbeat = 30 * time.Second

// Status shows the progress of one step at a time, like kind: on a TTY a spinner with the time elapsed and
// the step's latest progress, turning into " ✓ step (time)" or " ✗ step"; elsewhere a plain " • step" line
// when the step starts, a "still running" line every 30 s, and a result line at the end.
type Status struct {
	logger *Logger
	mu     sync.Mutex
	step   string
	detail string
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
	s.step, s.detail, s.start = step, "", time.Now()
	if !s.logger.tty {
		s.logger.printf(" • %s", step)
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	if s.logger.tty {
		go s.spin(s.stop, s.done)
	} else {
		go s.beat(s.stop, s.done)
	}
}

// Progress sets what the running step reports of itself, shown after its elapsed time.
func (s *Status) Progress(detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.detail = detail
}

// line is the running step as shown: the step, the time so far and its latest progress.
func (s *Status) line() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := fmt.Sprintf("%s (%s", s.step, time.Since(s.start).Truncate(time.Second))
	if s.detail != "" {
		l += ", " + s.detail
	}
	return l + ")"
}

func (s *Status) spin(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		line := s.line()
		s.logger.mu.Lock()
		fmt.Fprintf(s.logger.w, "\r %s %s\x1b[K", spinnerFrames[i%len(spinnerFrames)], line)
		s.logger.mu.Unlock()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (s *Status) beat(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.logger.printf(" • %s: still running", s.line())
		}
	}
}

// End finishes the current step, if any, as a success or a failure.
func (s *Status) End(ok bool) {
	s.mu.Lock()
	if s.step == "" {
		s.mu.Unlock()
		return
	}
	step := s.step
	elapsed := time.Since(s.start).Round(100 * time.Millisecond)
	stop, done := s.stop, s.done
	s.stop, s.done = nil, nil
	s.mu.Unlock()
	// The spinner or heartbeat reads the step under s.mu: stop it before the step is cleared.
	if stop != nil {
		close(stop)
		<-done
	}
	s.mu.Lock()
	s.step, s.detail = "", ""
	s.mu.Unlock()
	if s.logger.tty {
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
