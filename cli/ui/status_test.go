package ui

import (
	"bytes"

	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/meshlab/meshlab/log"
)

// On a real terminal the running step's line is redrawn with the time so far and its latest progress, then
// replaced by ✓ and the step's total time.
func TestStatusOnATerminalShowsElapsedTimeAndProgress(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	var mu sync.Mutex
	var seen bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			seen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	logger := NewLogger(tty, 0, false)
	if !logger.tty {
		t.Fatal("a pty is not taken for a terminal")
	}
	status := logger.NewStatus()
	status.Step("Compiling", func() error {
		log.Progress(status, "1 of 3 packages compiled")
		time.Sleep(1500 * time.Millisecond)
		log.Progress(status, "3 of 3 packages compiled")
		time.Sleep(1500 * time.Millisecond)
		return nil
	})
	tty.Close()
	time.Sleep(200 * time.Millisecond) // let the reader drain what is buffered
	mu.Lock()
	out := seen.String()
	mu.Unlock()
	for _, want := range []string{
		"Compiling (0s, 1 of 3 packages compiled)",
		"Compiling (1s, 1 of 3 packages compiled)",
		"Compiling (2s, 3 of 3 packages compiled)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the live line never showed %q:\n%q", want, out)
		}
	}
	if !regexp.MustCompile(`✓\S* Compiling \(3(\.\d)?s\)`).MatchString(out) {
		t.Errorf("no final ✓ line with the total time:\n%q", out)
	}
}

// Off a terminal (a CI log) a step still running prints a line at every heartbeat, with its progress.
func TestStatusOffATerminalPrintsAHeartbeat(t *testing.T) {
	defer func(d time.Duration) { heartbeat = d }(heartbeat)
	heartbeat = 300 * time.Millisecond
	var buf syncBuffer
	logger := NewLogger(&buf, 0, false)
	status := logger.NewStatus()
	status.Step("Building Kubernetes", func() error {
		log.Progress(status, "412 of 2143 packages compiled")
		time.Sleep(1 * time.Second)
		return nil
	})
	out := buf.String()
	if !strings.HasPrefix(out, " • Building Kubernetes\n") {
		t.Errorf("the step's first line is missing:\n%s", out)
	}
	beats := regexp.MustCompile(`(?m)^ • Building Kubernetes \(0s, 412 of 2143 packages compiled\): still running$`).FindAllString(out, -1)
	if len(beats) < 2 || len(beats) > 4 {
		t.Errorf("%d heartbeat lines in 1s at 300ms, want about 3:\n%s", len(beats), out)
	}
	if strings.Contains(out, "\r") || strings.Contains(out, "\x1b") {
		t.Errorf("terminal control characters in a log:\n%q", out)
	}
	// Nothing more once the step has ended.
	n := len(buf.String())
	time.Sleep(700 * time.Millisecond)
	if len(buf.String()) != n {
		t.Errorf("the heartbeat outlived its step:\n%s", buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
