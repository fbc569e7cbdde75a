package labs

import (
	"errors"
	"strings"
)

// line is one command line of a lab script, parsed as testscript parses it.
type line struct {
	no   int      // 1-based line number in the lab file
	text string   // the line as written, trimmed
	neg  bool     // `!` prefix: the command must fail
	cond bool     // a `[condition]` prefix
	args []string // the command and its arguments, quotes removed, $VARs not expanded
	err  error    // a quoting problem
}

func (l line) name() string {
	if len(l.args) == 0 {
		return ""
	}
	return l.args[0]
}

// parseLine splits a script line into words the way testscript does: spaces separate, 'single quotes'
// group (two quotes inside them stand for one), and an unquoted # starts a comment. A line that is only a comment
// or blank has no args.
func parseLine(no int, text string) line {
	l := line{no: no, text: strings.TrimSpace(text)}
	var (
		words          []string
		cur            strings.Builder
		inWord, quoted bool
	)
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case quoted && c == '\'' && i+1 < len(text) && text[i+1] == '\'':
			cur.WriteByte('\'')
			i++
		case c == '\'':
			quoted, inWord = !quoted, true
		case !quoted && (c == ' ' || c == '\t' || c == '\r' || c == '#'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
			if c == '#' {
				i = len(text)
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		l.err = errors.New("unterminated quoted argument")
	}
	if inWord {
		words = append(words, cur.String())
	}
	for len(words) > 0 {
		switch {
		case words[0] == "!":
			l.neg = true
		case strings.HasPrefix(words[0], "[") && strings.HasSuffix(words[0], "]"):
			l.cond = true
		default:
			l.args = words
			return l
		}
		words = words[1:]
	}
	return l
}

// assertsOutput reports whether a line checks the previous command's output rather than running
// anything of its own.
func (l line) assertsOutput() bool {
	switch l.name() {
	case "stdout", "stderr", "capture":
		return true
	case "cmp", "cmpenv":
		return len(l.args) > 1 && (l.args[1] == "stdout" || l.args[1] == "stderr")
	}
	return false
}

// changes reports whether a line changes something outside meshlab's view (the cluster, files): the
// learner's mode never runs such a line again after the learner ran it. Unknown kubectl verbs and
// meshlab subcommands count as changes, so a doubt never applies anything twice.
func (l line) changes() bool {
	switch l.name() {
	case "kubectl":
		return kubectlChanges(l.args[1:])
	case "meshlab":
		return meshlabChanges(l.args[1:])
	case "waitfor":
		inner := waitforCommand(l.args[1:])
		return len(inner) > 0 && (line{args: inner}).changes()
	case "exec", "cp", "mv", "rm", "mkdir", "chmod", "symlink", "unix2dos", "unquote", "kill":
		return true
	}
	// sleepcurl sends requests; stdout, grep, exists... only read; env, cd, cleanup and capture only
	// set the script's own state.
	return false
}

// kubectlFlagsWithValue are the global kubectl flags that take the next word as their value.
var kubectlFlagsWithValue = map[string]bool{
	"-n": true, "--namespace": true, "--context": true, "--kubeconfig": true, "--cluster": true,
	"--user": true, "-s": true, "--server": true, "-l": true, "--selector": true,
}

var kubectlReadOnly = map[string]bool{
	"get": true, "describe": true, "logs": true, "explain": true, "api-resources": true, "api-versions": true,
	"version": true, "top": true, "wait": true, "events": true, "auth": true, "diff": true, "cluster-info": true,
	"exec": true, // the labs use it to send requests from a pod
}

func kubectlChanges(args []string) bool {
	verb, rest := firstWord(args, kubectlFlagsWithValue)
	if verb == "rollout" {
		sub, _ := firstWord(rest, kubectlFlagsWithValue)
		return sub != "status" && sub != "history"
	}
	return !kubectlReadOnly[verb]
}

// meshlabReadOnly are the meshlab commands that only read or print (with the subcommands that do, for
// commands that also change things).
var meshlabReadOnly = map[string]map[string]bool{
	"status": nil, "version": nil, "check": nil, "proxy-status": nil, "render": nil, "proxy-config": nil, "curl": nil,
	"inject": nil, "kube-inject": nil, "iptables": nil, "ztunnel-config": nil,
	"wait":     nil,
	"waypoint": {"list": true, "status": true, "generate": true},
	"lab":      {"list": true, "show": true},
	"scenario": {"list": true},
}

// meshlabGlobalsWithValue are meshlab's global flags that take the next word as their value.
var meshlabGlobalsWithValue = map[string]bool{"--name": true, "--cluster": true, "--kubeconfig": true}

func meshlabChanges(args []string) bool {
	cmd, rest := firstWord(args, meshlabGlobalsWithValue)
	subs, ok := meshlabReadOnly[cmd]
	if !ok {
		return true
	}
	if subs == nil {
		return false
	}
	sub, _ := firstWord(rest, nil)
	return !subs[sub]
}

// firstWord returns the first word that is not a flag (skipping the values of withValue flags) and the
// words after it.
func firstWord(args []string, withValue map[string]bool) (string, []string) {
	for i := 0; i < len(args); i++ {
		switch {
		case withValue[args[i]]:
			i++
		case strings.HasPrefix(args[i], "-"):
		default:
			return args[i], args[i+1:]
		}
	}
	return "", nil
}

// waitforCommand returns the command a waitfor line polls (after its options and regexp).
func waitforCommand(args []string) []string {
	if len(args) >= 2 && args[0] == "-timeout" {
		args = args[2:]
	}
	if len(args) < 2 {
		return nil
	}
	return args[1:]
}

// step is what the learner's mode shows at once: a block of prose and the command lines after it, up
// to the next prose. Prose with no command before the next prose joins it.
type step struct {
	prose []string // the text, without `#`
	lines []line
}

// splitSteps splits a script's comment section (the lines before the first file) into steps.
func splitSteps(comment string) []step {
	var steps []step
	var cur step
	for i, text := range strings.Split(comment, "\n") {
		if prose, ok := commentText(text); ok {
			if len(cur.lines) > 0 {
				steps = append(steps, cur)
				cur = step{}
			}
			cur.prose = append(cur.prose, prose)
			continue
		}
		if l := parseLine(i+1, text); len(l.args) > 0 {
			cur.lines = append(cur.lines, l)
		}
	}
	if len(cur.lines) > 0 || len(cur.prose) > 0 {
		cur.prose = trimBlank(cur.prose)
		steps = append(steps, cur)
	}
	for i := range steps {
		steps[i].prose = trimBlank(steps[i].prose)
	}
	return steps
}

func trimBlank(lines []string) []string {
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}
