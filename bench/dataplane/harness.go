package dataplane

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"testing"
)

// CPUProfileEnv names a directory: when it is set, every proxy process writes a CPU profile of its whole
// life there, as NAME-PID.pprof, and its allocations as NAME-PID.allocs.pprof (for `go tool pprof`). The proxies inherit the benchmark's environment, so
// `MESHLAB_BENCH_CPUPROFILE=/tmp/prof meshlab bench dataplane ...` profiles every proxy of every run.
const CPUProfileEnv = "MESHLAB_BENCH_CPUPROFILE"

// Harness lets `meshlab bench dataplane`, outside `go test`, use dataplane/netnstest, which takes a
// testing.TB: it records cleanups and turns a fatal failure into an error returned by Do. Only the methods
// netnstest calls are implemented; the embedded nil TB is never reached.
type Harness struct {
	testing.TB
	logf     func(string, ...any)
	cleanups []func()
}

// NewHarness returns a Harness that reports non-fatal errors to logf.
func NewHarness(logf func(string, ...any)) *Harness { return &Harness{logf: logf} }

type fatal struct{ err error }

func (h *Harness) Helper()                   {}
func (h *Harness) Cleanup(fn func())         { h.cleanups = append(h.cleanups, fn) }
func (h *Harness) Logf(f string, a ...any)   { h.logf(f, a...) }
func (h *Harness) Errorf(f string, a ...any) { h.logf("error: "+f, a...) }
func (h *Harness) Fatalf(f string, a ...any) { panic(fatal{fmt.Errorf(f, a...)}) }
func (h *Harness) Fatal(a ...any)            { panic(fatal{fmt.Errorf("%s", fmt.Sprint(a...))}) }
func (h *Harness) Skip(a ...any)             { panic(fatal{fmt.Errorf("cannot run: %s", fmt.Sprint(a...))}) }
func (h *Harness) Skipf(f string, a ...any)  { panic(fatal{fmt.Errorf("cannot run: "+f, a...)}) }

// Do runs fn, turning a Fatalf inside it into an error, then runs the cleanups in reverse order.
func (h *Harness) Do(fn func() error) (err error) {
	defer func() {
		for i := len(h.cleanups) - 1; i >= 0; i-- {
			h.cleanups[i]()
		}
		h.cleanups = nil
	}()
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			err = f.err
		}
	}()
	return fn()
}

// CanRun reports why the benchmark cannot run here, or nil: it needs root and the ip command.
func CanRun() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the data-plane benchmark creates network namespaces and needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("the data-plane benchmark needs the ip command (iproute2): %w", err)
	}
	return nil
}

// ServeProxy is the body of a proxy process: it reads the spec at specPath and runs the proxy until its
// stdin closes (the benchmark closes it to stop the proxy).
func ServeProxy(specPath string, stdin io.Reader, ready io.Writer, logf func(string, ...any)) error {
	spec, err := ReadSpec(specPath)
	if err != nil {
		return err
	}
	if dir := os.Getenv(CPUProfileEnv); dir != "" {
		stop, err := startProfiles(filepath.Join(dir, fmt.Sprintf("%s-%d", spec.Name, os.Getpid())))
		if err != nil {
			return err
		}
		defer stop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		io.Copy(io.Discard, stdin)
		cancel()
	}()
	return RunProxy(ctx, spec, ready, logf)
}

// startProfiles starts a CPU profile into prefix.pprof; stop ends it and writes the allocation profile
// into prefix.allocs.pprof.
func startProfiles(prefix string) (stop func(), err error) {
	f, err := os.Create(prefix + ".pprof")
	if err != nil {
		return nil, fmt.Errorf("creating the CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting the CPU profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		if af, err := os.Create(prefix + ".allocs.pprof"); err == nil {
			pprof.Lookup("allocs").WriteTo(af, 0)
			af.Close()
		}
	}, nil
}
