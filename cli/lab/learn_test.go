package lab

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/lifecycle"
)

// greetingLab needs no cluster: step 1 changes a file (exec), step 2 has meshlab run a read-only
// command (the fake meshlab's render) and registers a cleanup, step 3 checks a captured variable.
const greetingLab = `# Greeting: a lab that needs no cluster.
#
# Write a greeting into the lab's directory. That is a change: when you run it yourself,
# meshlab does not run it again, it checks the file.
exec sh -c 'echo hello learner >> greeting.txt'
grep -count=1 '^hello learner$' greeting.txt

# Render the greeting's config; meshlab undoes it at the end.
meshlab render greeting
stdout '^rendered greeting$'
capture RENDERED
cleanup meshlab undo-greeting

# Read-only: meshlab runs this again itself, with the variable captured in step 2.
meshlab render $RENDERED
stdout '^rendered rendered greeting$'
`

// terminal is one session of the learner on a real pseudo-terminal: meshlab reads and writes the tty
// side, the test types on and reads the other side.
type terminal struct {
	t    *testing.T
	ptmx *os.File
	mu   sync.Mutex
	seen strings.Builder
	from int // what expect has consumed
	done chan int
}

func startSession(t *testing.T, args ...string) *terminal {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	term := &terminal{t: t, ptmx: ptmx, done: make(chan int, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			term.mu.Lock()
			term.seen.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer tty.Close()
		streams := ui.Streams{In: tty, Out: tty, ErrOut: tty}
		env := cliutil.Env{Logger: ui.NewLogger(tty, 0, false), Streams: streams,
			Globals: &cliutil.Globals{Name: "lab-e2e"}}
		cmd := NewCommand(env)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		cmd.SetArgs(args)
		err := cmd.Execute()
		var exit *cliutil.ExitError
		switch {
		case err == nil:
			term.done <- 0
		case errors.As(err, &exit):
			io.WriteString(tty, exit.Err.Error()+"\n")
			term.done <- exit.Code
		default:
			io.WriteString(tty, err.Error()+"\n")
			term.done <- 2
		}
	}()
	t.Cleanup(func() { ptmx.Close() })
	return term
}

// expect waits for want in the output after what earlier expects consumed, and returns the output up
// to and including it.
func (term *terminal) expect(want string) string {
	term.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		term.mu.Lock()
		s := term.seen.String()[term.from:]
		term.mu.Unlock()
		if i := strings.Index(s, want); i >= 0 {
			term.from += i + len(want)
			return s[:i+len(want)]
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("no %q on the terminal within 20s; it shows:\n%s", want, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (term *terminal) typeLine(s string) {
	term.t.Helper()
	if _, err := term.ptmx.Write([]byte(s + "\r")); err != nil { // Enter, as a terminal sends it
		term.t.Fatal(err)
	}
}

func (term *terminal) exitCode() int {
	term.t.Helper()
	select {
	case code := <-term.done:
		return code
	case <-time.After(20 * time.Second):
		term.t.Fatal("meshlab did not exit")
		return -1
	}
}

// setupLearner writes the lab and fake meshlab and kubectl binaries (the fake meshlab logs its calls),
// and points the state directory at a temporary XDG_STATE_HOME.
func setupLearner(t *testing.T) (labFile, workDir, calls string) {
	t.Helper()
	dir := t.TempDir()
	calls = filepath.Join(dir, "calls")
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	fakeMeshlab := "#!/bin/sh\necho \"$*\" >> " + calls + "\n[ \"$1\" = render ] && echo \"rendered $2\"\nexit 0\n"
	for name, script := range map[string]string{"meshlab": fakeMeshlab, "kubectl": "#!/bin/sh\nexit 1\n"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	labFile = filepath.Join(dir, "greeting.txtar")
	if err := os.WriteFile(labFile, []byte(greetingLab), 0o644); err != nil {
		t.Fatal(err)
	}
	fake(t, &lifecycle.Status{Cluster: "lab-e2e", Exists: true, Ready: true}, nil)
	executable = func() (string, error) { return filepath.Join(bin, "meshlab"), nil }
	return labFile, filepath.Join(dir, "state", "meshlab", "labs", "greeting"), calls
}

func readCalls(t *testing.T, calls string) string {
	data, err := os.ReadFile(calls)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(data)
}

func TestLearnerModeThroughATerminal(t *testing.T) {
	labFile, workDir, calls := setupLearner(t)

	// First session: step 1 checked before and after the learner ran it, step 2 run by meshlab, then quit.
	term := startSession(t, "run", "--step", labFile)
	shown := term.expect("[step 1/3] Enter: check · run: run it for me · q: quit > ")
	for _, want := range []string{"=== greeting: Greeting: a lab that needs no cluster.", "cd " + workDir,
		"--- step 1 of 3", "  Write a greeting into the lab's directory.", "$ sh -c 'echo hello learner >> greeting.txt'",
		"Expected (meshlab checks):", "grep -count=1 '^hello learner$' greeting.txt"} {
		if !strings.Contains(shown, want) {
			t.Errorf("step 1 lacks %q:\n%s", want, shown)
		}
	}
	term.typeLine("") // not done yet: the check fails, showing what it expected
	failure := term.expect("[step 1/3]")
	for _, want := range []string{"✗ not done yet", "expected (" + labFile + ":6):  grep -count=1 '^hello learner$' greeting.txt", "greeting.txt"} {
		if !strings.Contains(failure, want) {
			t.Errorf("failed check lacks %q:\n%s", want, failure)
		}
	}
	// The learner runs the command in their own shell, in the lab's directory.
	if err := os.WriteFile(filepath.Join(workDir, "greeting.txt"), []byte("hello learner\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	term.typeLine("")
	term.expect("✓ step 1 of 3 done")
	term.expect("[step 2/3]")
	term.typeLine("run")
	ran := term.expect("✓ step 2 of 3 done")
	if !strings.Contains(ran, "$ meshlab render greeting") || !strings.Contains(ran, "meshlab undo-greeting   (at the end of the lab)") {
		t.Errorf("step 2 run by meshlab shows:\n%s", ran)
	}
	term.expect("[step 3/3]")
	term.typeLine("q")
	term.expect("Progress saved: 2 of 3 steps done.")
	if code := term.exitCode(); code != 0 {
		t.Fatalf("quit: exit code %d", code)
	}
	// meshlab did not write the greeting again (grep -count=1 passed), and the cleanup has not run.
	if got := readCalls(t, calls); got != "render greeting\n" {
		t.Errorf("calls after the first session = %q", got)
	}
	var st struct {
		Completed int               `json:"completed"`
		Cleanups  [][]string        `json:"cleanups"`
		Vars      map[string]string `json:"vars"`
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(workDir), "greeting.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &st); err != nil || st.Completed != 2 || len(st.Cleanups) != 1 ||
		strings.Join(st.Cleanups[0], " ") != "meshlab undo-greeting" || st.Vars["RENDERED"] != "rendered greeting" {
		t.Errorf("saved progress = %s (%v)", data, err)
	}

	// Second session, as after a restart: it resumes at step 3, whose read-only check meshlab runs
	// with the variable step 2 captured; then the saved cleanup runs and the progress is gone.
	term = startSession(t, "run", "--step", labFile)
	term.expect("Resuming greeting at step 3 of 3")
	term.expect("[step 3/3]")
	term.typeLine("")
	term.expect("✓ step 3 of 3 done")
	term.expect("--- DONE greeting")
	if code := term.exitCode(); code != 0 {
		t.Fatalf("finish: exit code %d", code)
	}
	if got, want := readCalls(t, calls), "render greeting\nrender rendered greeting\nundo-greeting\n"; got != want {
		t.Errorf("calls = %q, want %q", got, want)
	}
	if _, err := os.Stat(workDir); !os.IsNotExist(err) {
		t.Errorf("the lab's directory is still there after the lab: %v", err)
	}
}

func TestLearnerModeChangedLabAndReset(t *testing.T) {
	labFile, _, calls := setupLearner(t)
	term := startSession(t, "run", "--step", labFile)
	term.expect("[step 1/3]")
	term.typeLine("run")
	term.expect("[step 2/3]")
	term.typeLine("run")
	term.expect("[step 3/3]")
	term.typeLine("q")
	term.exitCode()

	// The author edits the lab: the next session undoes the done steps and starts from the start.
	if err := os.WriteFile(labFile, []byte(greetingLab+"\n# One more line of prose.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	term = startSession(t, "run", "--step", labFile)
	term.expect("changed since your last session")
	term.expect("[step 1/4]")
	term.typeLine("run")
	term.expect("[step 2/4]")
	term.typeLine("run")
	term.expect("[step 3/4]") // quit here, with the cleanup recorded again
	term.typeLine("q")
	term.exitCode()
	if got, want := readCalls(t, calls), "render greeting\nundo-greeting\nrender greeting\n"; got != want {
		t.Errorf("calls = %q, want %q", got, want)
	}

	term = startSession(t, "run", "--step", "--reset", labFile)
	term.expect("Undoing what greeting's 2 done step(s) changed")
	if code := term.exitCode(); code != 0 {
		t.Errorf("--reset: exit code %d", code)
	}
	if got := readCalls(t, calls); !strings.HasSuffix(got, "render greeting\nundo-greeting\n") {
		t.Errorf("--reset did not run the cleanup: calls = %q", got)
	}
	term = startSession(t, "run", "--step", "--reset", labFile)
	term.expect("No saved progress for greeting.")
	term.exitCode()
}
