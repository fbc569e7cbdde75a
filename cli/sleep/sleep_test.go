package sleep

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
)

func testEnv() cliutil.Env {
	var out bytes.Buffer
	return cliutil.Env{Logger: ui.NewLogger(&out, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &out}, Globals: &cliutil.Globals{}}
}

func TestSleepUntilSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			ready := make(chan struct{})
			notified = func() { close(ready) }
			defer func() { notified = func() {} }()

			cmd := NewCommand(testEnv())
			cmd.SetArgs(nil)
			done := make(chan error, 1)
			go func() { done <- cmd.Execute() }()
			<-ready
			select {
			case err := <-done:
				t.Fatalf("sleep returned before a signal: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
			if err := syscall.Kill(syscall.Getpid(), sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("sleep after %v = %v, want nil (exit 0)", sig, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("sleep did not return after %v", sig)
			}
		})
	}
}

func TestSleepUntilContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	cmd := NewCommand(testEnv())
	cmd.SetArgs(nil)
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Errorf("Execute() = %v", err)
	}
	cmd = NewCommand(testEnv())
	cmd.SetArgs([]string{"extra"})
	if err := cmd.Execute(); !cliutil.IsUsage(err) {
		t.Errorf("sleep extra = %v, want a usage error", err)
	}
}
