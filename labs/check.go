package labs

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/txtar"
)

// CheckError lists what is wrong with a lab file, each problem as FILE:LINE: what.
type CheckError struct {
	Problems []string
}

func (e *CheckError) Error() string { return strings.Join(e.Problems, "\n") }

// testscriptBuiltins are testscript's own commands; a lab may use any of them.
var testscriptBuiltins = []string{
	"cd", "chmod", "cmp", "cmpenv", "cp", "env", "exec", "exists", "grep", "kill", "mkdir", "mv", "rm",
	"skip", "stderr", "stdin", "stdout", "stop", "symlink", "unix2dos", "unquote", "wait",
}

// labCommands are the commands package labs adds (commands.go).
var labCommands = []string{"meshlab", "kubectl", "sleepcurl", "waitfor", "capture", "cleanup"}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Check reports what would stop a lab from running as its author meant, before anything runs: txtar
// problems, unknown commands, wrong arguments to the lab commands, files the lab applies that it does
// not embed, and a lab with no prose. It returns a *CheckError, or nil.
func Check(l Lab) error {
	c := checker{file: l.File}
	if c.file == "" {
		c.file = l.Name + ".txtar"
	}
	text := string(l.Script)
	archive := txtar.Parse(l.Script)
	c.checkArchive(text, archive)

	known := map[string]bool{}
	for _, n := range append(append([]string{}, testscriptBuiltins...), labCommands...) {
		known[n] = true
	}
	files := map[string]bool{}
	for _, f := range archive.Files {
		files[path.Clean(f.Name)] = true
	}
	prose := false
	for i, raw := range strings.Split(string(archive.Comment), "\n") {
		if t, ok := commentText(raw); ok && strings.TrimSpace(t) != "" {
			prose = true
			continue
		}
		ln := parseLine(i+1, raw)
		if ln.err != nil {
			c.add(ln.no, "%v", ln.err)
			continue
		}
		if len(ln.args) == 0 {
			continue
		}
		if !known[ln.name()] {
			c.add(ln.no, "unknown command %q (lab commands: %s; run other programs with exec)",
				ln.name(), strings.Join(labCommands, ", "))
			continue
		}
		c.checkArgs(ln)
		c.checkFiles(ln, ln.args, files)
	}
	if !prose {
		c.add(1, "the lab has no prose: open it with a `# Title: what it shows` comment and explain each step in # comments")
	}
	if len(c.problems) == 0 {
		return nil
	}
	sort.SliceStable(c.problems, func(i, j int) bool { return c.problems[i].no < c.problems[j].no })
	e := &CheckError{}
	for _, p := range c.problems {
		e.Problems = append(e.Problems, fmt.Sprintf("%s:%d: %s", c.file, p.no, p.msg))
	}
	return e
}

type problem struct {
	no  int
	msg string
}

type checker struct {
	file     string
	problems []problem
}

func (c *checker) add(no int, format string, args ...any) {
	c.problems = append(c.problems, problem{no, fmt.Sprintf(format, args...)})
}

// checkArchive finds what txtar.Parse silently accepts: lines that look like a file marker but are not
// one (they would become part of the previous file or of the script), file names given twice, and
// names that are empty or leave the work directory.
func (c *checker) checkArchive(text string, a *txtar.Archive) {
	seen := map[string]int{}
	for i, raw := range strings.Split(text, "\n") {
		raw = strings.TrimRight(raw, "\r")
		if !strings.HasPrefix(raw, "-- ") && raw != "--" {
			continue
		}
		if !strings.HasSuffix(raw, " --") || len(raw) < len("-- x --") {
			c.add(i+1, "%q looks like a file marker but is not one: write `-- NAME --`", raw)
			continue
		}
		name := strings.TrimSpace(raw[3 : len(raw)-3])
		switch {
		case name == "":
			c.add(i+1, "file marker with no name")
		case path.IsAbs(name) || strings.HasPrefix(path.Clean(name), ".."):
			c.add(i+1, "file %s: an embedded file's name must be relative, inside the lab", name)
		case seen[name] > 0:
			c.add(i+1, "file %s appears twice (first at line %d)", name, seen[name])
		default:
			seen[name] = i + 1
		}
	}
}

// checkArgs checks the arguments of the lab commands and the regexps of the output assertions, as the
// commands themselves would when they run.
func (c *checker) checkArgs(ln line) {
	args := ln.args[1:]
	switch ln.name() {
	case "waitfor":
		if ln.neg {
			c.add(ln.no, "waitfor cannot be negated; wait for the output that shows the change instead")
		}
		if len(args) >= 1 && args[0] == "-timeout" {
			if len(args) < 2 {
				c.add(ln.no, "waitfor -timeout: missing duration")
				return
			}
			if d, err := time.ParseDuration(args[1]); err != nil || d <= 0 {
				c.add(ln.no, "waitfor -timeout %s: want a duration such as 90s or 5m", args[1])
			}
			args = args[2:]
		}
		if len(args) < 2 {
			c.add(ln.no, "usage: waitfor [-timeout DURATION] REGEXP COMMAND ARGS...")
			return
		}
		c.checkRegexp(ln, "waitfor", args[0])
	case "capture":
		switch {
		case ln.neg || len(args) != 1:
			c.add(ln.no, "usage: capture VAR")
		case !varName.MatchString(args[0]):
			c.add(ln.no, "capture %s: a variable name is letters, digits and _", args[0])
		}
	case "sleepcurl":
		if len(args) >= 1 && args[0] == "-count" {
			if len(args) < 2 {
				c.add(ln.no, "sleepcurl -count: missing number")
				return
			}
			if n, err := strconv.Atoi(args[1]); err != nil || n < 1 {
				c.add(ln.no, "sleepcurl -count: want a positive number, got %q", args[1])
			}
			args = args[2:]
		}
		if len(args) == 0 {
			c.add(ln.no, "usage: sleepcurl [-count N] [CURL-FLAGS] URL")
		}
	case "cleanup":
		if ln.neg {
			c.add(ln.no, "cleanup cannot be negated")
		}
		if len(args) == 0 {
			c.add(ln.no, "usage: cleanup COMMAND ARGS...")
		}
	case "exec", "meshlab", "kubectl":
		if ln.name() == "exec" && len(args) == 0 {
			c.add(ln.no, "usage: exec PROGRAM ARGS...")
		}
	case "stdout", "stderr":
		if len(args) > 0 && strings.HasPrefix(args[0], "-count=") {
			if n, err := strconv.Atoi(strings.TrimPrefix(args[0], "-count=")); err != nil || n < 0 {
				c.add(ln.no, "%s %s: want -count=N", ln.name(), args[0])
			}
			args = args[1:]
		}
		if len(args) != 1 {
			c.add(ln.no, "usage: %s [-count=N] REGEXP", ln.name())
			return
		}
		c.checkRegexp(ln, ln.name(), args[0])
	}
}

func (c *checker) checkRegexp(ln line, cmd, re string) {
	_, err := regexp.Compile(`(?m)` + re)
	if err != nil && !mayHoldVariable.MatchString(re) { // testscript expands $VAR before compiling
		c.add(ln.no, "%s: bad regexp: %v", cmd, err)
	}
}

var mayHoldVariable = regexp.MustCompile(`\$(\{|[A-Za-z_])`)

// checkFiles finds the files a kubectl or meshlab line applies with -f that the lab does not embed.
// Names with $VARIABLES, URLs, absolute paths and - (standard input) are not checked.
func (c *checker) checkFiles(ln line, args []string, files map[string]bool) {
	switch ln.name() {
	case "waitfor":
		args = append([]string{"waitfor"}, waitforCommand(args[1:])...)
		if len(args) < 2 {
			return
		}
		c.checkFiles(line{no: ln.no, args: args[1:]}, args[1:], files)
		return
	case "cleanup":
		if len(args) > 1 {
			c.checkFiles(line{no: ln.no, args: args[1:]}, args[1:], files)
		}
		return
	case "kubectl", "meshlab":
	default:
		return
	}
	for i := 1; i < len(args); i++ {
		var name string
		switch a := args[i]; {
		case (a == "-f" || a == "--filename") && i+1 < len(args):
			name = args[i+1]
			i++
		case strings.HasPrefix(a, "-f="), strings.HasPrefix(a, "--filename="):
			name = a[strings.Index(a, "=")+1:]
		default:
			continue
		}
		if name == "-" || name == "" || strings.Contains(name, "$") || strings.Contains(name, "://") || path.IsAbs(name) {
			continue
		}
		if !embeds(files, path.Clean(name)) {
			c.add(ln.no, "%s -f %s: the lab embeds no file %s (add `-- %s --` and its content at the end)", ln.name(), name, name, name)
		}
	}
}

// embeds reports whether name is an embedded file or a directory holding one.
func embeds(files map[string]bool, name string) bool {
	if files[name] || name == "." {
		return true
	}
	for f := range files {
		if strings.HasPrefix(f, name+"/") {
			return true
		}
	}
	return false
}
