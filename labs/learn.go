package labs

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/meshlab/meshlab/internal/scriptrun"
)

// The learner's mode shows a lab one step at a time (a block of prose and the commands after it). The
// learner runs the commands in their own shell, in the lab's directory, and presses Enter: meshlab then
// checks the step by running again only its read-only lines (assertions, waitfor, sleepcurl, kubectl get,
// meshlab proxy-config...), never the lines that change something (kubectl apply, exec...), whose own
// output assertions it skips. Typing `run` has meshlab run the whole step instead. A step's cleanups are
// recorded, not run, and progress is saved after every step, so `q` and a later resume lose nothing; the
// recorded cleanups run when the last step is done, or on Reset.

// Keys the learner types at a step's prompt.
const (
	keyCheck = ""    // Enter: check the step the learner ran
	keyRun   = "run" // meshlab runs the step
	keyQuit  = "q"   // save and quit
)

// Outcome is how a learner's session ended.
type Outcome int

const (
	Finished Outcome = iota // every step done and the lab's changes undone
	Quit                    // the learner quit; progress saved
)

// Learner runs a lab in the learner's mode.
type Learner struct {
	Config             // the cluster and the binaries; Out is where the learner reads
	In       io.Reader // the learner's answers, one line each
	StateDir string    // progress: STATEDIR/NAME.json, and the lab's files in STATEDIR/NAME/
}

// learnState is the saved progress of one lab.
type learnState struct {
	Lab       string            `json:"lab"`
	File      string            `json:"file"`
	Hash      string            `json:"hash"`      // of the lab file the steps were counted in
	Completed int               `json:"completed"` // steps done
	Steps     int               `json:"steps"`
	Vars      map[string]string `json:"vars,omitempty"`     // set by capture
	Cleanups  [][]string        `json:"cleanups,omitempty"` // registered by done steps, in order
	// Script is the lab as it was when the cleanups were registered: they run with its files even
	// after the file changed.
	Script string `json:"script"`
}

func hashOf(script []byte) string {
	sum := sha256.Sum256(script)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// DefaultStateDir is where the learner's progress is kept: $XDG_STATE_HOME/meshlab/labs, else
// ~/.local/state/meshlab/labs.
func DefaultStateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "meshlab", "labs"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".local", "state", "meshlab", "labs"), nil
}

func (lr *Learner) statePath(name string) string { return filepath.Join(lr.StateDir, name+".json") }
func (lr *Learner) workDir(name string) string   { return filepath.Join(lr.StateDir, name) }

func (lr *Learner) load(name string) (*learnState, error) {
	data, err := os.ReadFile(lr.statePath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st learnState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("reading progress %s: %w (remove it to start over)", lr.statePath(name), err)
	}
	return &st, nil
}

func (lr *Learner) save(st *learnState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(lr.StateDir, 0o755); err != nil {
		return err
	}
	tmp := lr.statePath(st.Lab) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, lr.statePath(st.Lab))
}

// writeFiles puts a lab's embedded files into its directory, where the learner and the checks run.
func (lr *Learner) writeFiles(name string, script []byte) error {
	dir := lr.workDir(name)
	for _, f := range txtar.Parse(script).Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return err
		}
	}
	return os.MkdirAll(dir, 0o755)
}

// Learn runs lab l step by step, resuming where the saved progress says unless restart.
func (lr *Learner) Learn(l Lab, restart bool) (Outcome, error) {
	out := lr.out()
	steps := splitSteps(string(txtar.Parse(l.Script).Comment))
	st, err := lr.load(l.Name)
	if err != nil {
		return Quit, err
	}
	switch {
	case st != nil && restart:
		fmt.Fprintf(out, "Starting %s over: first undoing what its done steps changed.\n", l.Name)
		if err := lr.undo(st); err != nil {
			return Quit, err
		}
		st = nil
	case st != nil && st.Hash != hashOf(l.Script):
		fmt.Fprintf(out, "The lab file %s changed since your last session: undoing what its done steps changed and starting from the start.\n", l.File)
		if err := lr.undo(st); err != nil {
			return Quit, err
		}
		st = nil
	case st != nil && st.Completed > 0:
		fmt.Fprintf(out, "Resuming %s at step %d of %d (progress in %s; --restart starts over).\n",
			l.Name, st.Completed+1, len(steps), lr.statePath(l.Name))
	}
	if st == nil {
		st = &learnState{Lab: l.Name, File: l.File, Hash: hashOf(l.Script), Steps: len(steps), Script: string(l.Script)}
		if err := os.RemoveAll(lr.workDir(l.Name)); err != nil {
			return Quit, err
		}
	}
	if st.Vars == nil {
		st.Vars = map[string]string{}
	}
	if err := lr.writeFiles(l.Name, l.Script); err != nil {
		return Quit, fmt.Errorf("writing the lab's files: %w", err)
	}
	if err := lr.save(st); err != nil {
		return Quit, err
	}

	fmt.Fprintf(out, "\n=== %s: %s\n", l.Name, l.Title)
	fmt.Fprintf(out, "Run the commands in your own shell, in the lab's directory:\n    cd %s\n", lr.workDir(l.Name))
	fmt.Fprintf(out, "(kubectl means kubectl --context kind-%s; meshlab means meshlab --name %s.)\n", lr.Name, lr.Name)
	fmt.Fprintf(out, "At each step: Enter = check my work · run = meshlab runs the step for you · q = save and quit\n")

	answers := bufio.NewScanner(lr.In)
	for st.Completed < len(steps) {
		i := st.Completed
		s := steps[i]
		showStep(out, i+1, len(steps), s)
		for done := false; !done; {
			fmt.Fprintf(out, "[step %d/%d] Enter: check · run: run it for me · q: quit > ", i+1, len(steps))
			answer := keyQuit
			if answers.Scan() {
				answer = strings.TrimSpace(answers.Text())
			}
			fmt.Fprintln(out)
			switch answer {
			case keyQuit, "quit":
				fmt.Fprintf(out, "Progress saved: %d of %d steps done.\n  resume:               meshlab lab run --step %s\n  undo and forget it:   meshlab lab run --step --reset %s\n",
					st.Completed, len(steps), lr.arg(l), lr.arg(l))
				return Quit, nil
			case keyCheck, keyRun:
				passed, err := lr.runStep(l, s, st, answer == keyRun)
				if err != nil {
					return Quit, err
				}
				if err := lr.save(st); err != nil { // cleanups and vars, also of a failed attempt
					return Quit, err
				}
				if passed {
					st.Completed++
					if err := lr.save(st); err != nil {
						return Quit, err
					}
					fmt.Fprintf(out, "  ✓ step %d of %d done\n", i+1, len(steps))
					done = true
				}
			default:
				fmt.Fprintf(out, "  %q: type Enter, run or q\n", answer)
			}
		}
	}
	fmt.Fprintf(out, "\nAll %d steps done. Undoing the lab's changes:\n", len(steps))
	if err := lr.undo(st); err != nil {
		return Finished, err
	}
	fmt.Fprintf(out, "--- DONE %s\n", l.Name)
	return Finished, nil
}

// arg is how the learner names the lab again on the command line.
func (lr *Learner) arg(l Lab) string {
	if strings.HasPrefix(l.File, "labs/scripts/") {
		return l.Name
	}
	return l.File
}

// Reset undoes what the done steps of lab l changed (their recorded cleanups) and forgets its progress.
func (lr *Learner) Reset(l Lab) error {
	st, err := lr.load(l.Name)
	if err != nil {
		return err
	}
	if st == nil {
		fmt.Fprintf(lr.out(), "No saved progress for %s.\n", l.Name)
		return nil
	}
	fmt.Fprintf(lr.out(), "Undoing what %s's %d done step(s) changed:\n", l.Name, st.Completed)
	return lr.undo(st)
}

func (lr *Learner) out() io.Writer {
	if lr.Out == nil {
		return io.Discard
	}
	return lr.Out
}

// showStep prints a step as the learner follows it: the prose, then the commands in shell form, what
// meshlab checks, and the cleanups it records.
func showStep(out io.Writer, n, total int, s step) {
	fmt.Fprintf(out, "\n--- step %d of %d\n", n, total)
	for _, p := range s.prose {
		fmt.Fprintf(out, "  %s\n", p)
	}
	var run, checks, undo []string
	for _, l := range s.lines {
		switch {
		case l.name() == "cleanup":
			undo = append(undo, shellForm(line{args: l.args[1:], text: strings.TrimSpace(strings.TrimPrefix(l.text, "cleanup"))}))
		case l.assertsOutput() || isFileCheck(l):
			checks = append(checks, l.text)
		default:
			run = append(run, shellForm(l))
		}
	}
	if len(run) > 0 {
		fmt.Fprintln(out, "\n  Run:")
		for _, r := range run {
			fmt.Fprintf(out, "    $ %s\n", r)
		}
	}
	if len(checks) > 0 {
		fmt.Fprintln(out, "  Expected (meshlab checks):")
		for _, c := range checks {
			fmt.Fprintf(out, "    %s\n", c)
		}
	}
	if len(undo) > 0 {
		fmt.Fprintln(out, "  At the end of the lab meshlab undoes it with:")
		for _, u := range undo {
			fmt.Fprintf(out, "    $ %s\n", u)
		}
	}
}

func isFileCheck(l line) bool {
	switch l.name() {
	case "exists", "grep", "cmp", "cmpenv":
		return true
	}
	return false
}

// shellForm is a lab line as the learner types it in a shell: exec's program itself, sleepcurl as the
// kubectl exec it stands for, waitfor as its command with what to wait for.
func shellForm(l line) string {
	text := strings.TrimSpace(l.text)
	text = strings.TrimSpace(strings.TrimPrefix(text, "!"))
	var note string
	if l.neg {
		note = "   # expected to fail"
	}
	for strings.HasPrefix(text, "[") {
		if i := strings.Index(text, "]"); i > 0 {
			text = strings.TrimSpace(text[i+1:])
		} else {
			break
		}
	}
	text = strings.TrimSpace(strings.TrimPrefix(text, "!"))
	switch l.name() {
	case "exec":
		return strings.TrimSpace(strings.TrimPrefix(text, "exec")) + note
	case "sleepcurl":
		rest := strings.TrimSpace(strings.TrimPrefix(text, "sleepcurl"))
		if m := regexp.MustCompile(`^-count\s+(\S+)\s+`).FindStringSubmatch(rest); m != nil {
			rest = strings.TrimPrefix(rest, m[0])
			note += "   # " + m[1] + " times"
		}
		return "kubectl exec -n " + sleepNamespace + " " + sleepTarget + " -- meshlab curl -sS --max-time " + curlMaxTime + " " + rest + note
	case "waitfor":
		inner := waitforCommand(l.args[1:])
		if len(inner) == 0 {
			return text
		}
		// The command is the end of the line, from its first word on.
		rest := text[strings.LastIndex(text, " "+inner[0]+" ")+1:]
		if !strings.Contains(text, " "+inner[0]+" ") {
			rest = inner[0]
		}
		return shellForm(parseLine(l.no, rest)) + "   # repeat until the output matches " + quote(l.args[len(l.args)-len(inner)-1])
	}
	return text + note
}

// quote writes a word in testscript's quoting.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// runStep runs one step as a script of its own (with the lab's line numbers and files): all of it when
// the learner asked meshlab to run it, else only the lines that change nothing.
func (lr *Learner) runStep(l Lab, s step, st *learnState, all bool) (bool, error) {
	out := lr.out()
	keep := map[int]bool{}
	checked, skipped := 0, 0
	skipping := false // the previous command was the learner's: its output is not ours to check
	for _, ln := range s.lines {
		switch {
		case ln.name() == "cleanup" || ln.name() == "env" || ln.name() == "cd":
			keep[ln.no] = true // recorded or script state: never a change of the cluster
		case all:
			keep[ln.no] = true
		case ln.changes():
			skipping = true
			skipped++
		case ln.assertsOutput() && skipping:
			skipped++
		default:
			if !ln.assertsOutput() {
				skipping = false
			}
			keep[ln.no] = true
			checked++
		}
	}
	switch {
	case all:
		fmt.Fprintln(out, "  Running the step:")
	case checked == 0 && len(s.lines) > 0:
		fmt.Fprintln(out, "  This step only changes things: meshlab cannot check it without running it again, so it takes your word.")
	case checked > 0:
		fmt.Fprintf(out, "  Checking: %d read-only line(s) run again, %d line(s) of yours not repeated...\n", checked, skipped)
	}
	if len(keep) == 0 {
		return true, nil
	}
	comment := strings.Split(string(txtar.Parse(l.Script).Comment), "\n")
	for i := range comment {
		if !keep[i+1] {
			comment[i] = ""
		}
	}
	script := txtar.Format(&txtar.Archive{Comment: []byte(strings.Join(comment, "\n")), Files: txtar.Parse(l.Script).Files})

	dir, err := os.MkdirTemp("", "meshlab-learn-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	hooks := &stepHooks{workDir: lr.workDir(l.Name), vars: st.Vars, record: func(args []string) {
		for _, c := range st.Cleanups {
			if strings.Join(c, "\x00") == strings.Join(args, "\x00") {
				return // the step ran again after a failed attempt
			}
		}
		st.Cleanups = append(st.Cleanups, args)
		if err := lr.save(st); err != nil { // at once: the learner may kill meshlab mid-step
			fmt.Fprintf(out, "  saving the cleanup %s: %v\n", strings.Join(args, " "), err)
		}
	}}
	step := Lab{Name: l.Name, Title: l.Title, Script: script, File: l.File}
	failed, log, err := lr.runScript(step, dir, hooks, true, all)
	if err != nil {
		return false, err
	}
	if !failed {
		return true, nil
	}
	fmt.Fprintf(out, "  ✗ not done yet\n")
	if m := regexp.MustCompile(`FAIL: \S+:(\d+): `).FindStringSubmatch(log); m != nil {
		var no int
		fmt.Sscan(m[1], &no)
		if no >= 1 && no <= len(comment) {
			fmt.Fprintf(out, "    expected (%s:%d):  %s\n", l.File, no, strings.TrimSpace(strings.Split(string(txtar.Parse(l.Script).Comment), "\n")[no-1]))
		}
	}
	fmt.Fprintf(out, "    seen:\n%s\n", indentLines(strings.ReplaceAll(log, filepath.Join(dir, l.Name+".txtar"), l.File), "      "))
	fmt.Fprintln(out, "  Fix it and press Enter to check again, type run to have meshlab run the step, or q to quit.")
	return false, nil
}

// runScript runs a script in the learner's directory and returns whether it failed, with testscript's
// log of the failing part. It shows the command lines and their output as asked; a check shows only
// the lines, since a failure prints the output with the log.
func (lr *Learner) runScript(l Lab, dir string, hooks *stepHooks, showLines, showOutput bool) (bool, string, error) {
	c := lr.Config
	shown := l.Script
	if !showLines {
		shown = nil
	}
	prog := newProgress(lr.Out, showOutput, shown)
	p, cancel, err := c.params(l, dir, prog, hooks)
	if err != nil {
		return false, "", err
	}
	defer cancel()
	p.WorkdirRoot = dir
	root := scriptrun.Run(l.Name, p)
	if !root.Failed() {
		return false, "", nil
	}
	var keep []string
	for _, line := range strings.Split(root.Logs(), "\n") {
		if !strings.HasPrefix(line, "WORK=") && !strings.HasPrefix(line, "#") {
			keep = append(keep, line)
		}
	}
	return true, strings.TrimSpace(strings.Join(keep, "\n")), nil
}

// undo runs the recorded cleanups of a saved state, last first, then forgets the state and the lab's
// directory. A cleanup that fails is reported and the others still run; the state is then kept, so the
// learner can try again.
func (lr *Learner) undo(st *learnState) error {
	out := lr.out()
	if len(st.Cleanups) == 0 {
		fmt.Fprintln(out, "  nothing to undo")
	} else {
		if err := lr.writeFiles(st.Lab, []byte(st.Script)); err != nil {
			return err
		}
		var b strings.Builder
		for _, c := range st.Cleanups {
			words := make([]string, len(c))
			for i, w := range c {
				words[i] = quote(w) // already expanded when recorded
			}
			b.WriteString("cleanup " + strings.Join(words, " ") + "\n")
		}
		dir, err := os.MkdirTemp("", "meshlab-learn-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		undo := Lab{Name: st.Lab, Script: []byte(b.String()), File: st.File}
		failed, log, err := lr.runScript(undo, dir, &stepHooks{workDir: lr.workDir(st.Lab), vars: st.Vars}, false, true)
		if err != nil {
			return err
		}
		if failed {
			return fmt.Errorf("undoing %s's steps:\n%s\n(progress kept in %s: run again with --reset)", st.Lab, log, lr.statePath(st.Lab))
		}
	}
	if err := os.Remove(lr.statePath(st.Lab)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(lr.workDir(st.Lab))
}

// stepHooks change the lab commands for the learner's mode: where they run, the variables earlier steps
// captured, and cleanups recorded rather than deferred (record is nil when the cleanups themselves run).
type stepHooks struct {
	workDir string
	vars    map[string]string
	record  func(args []string)
}
