package labs

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/rogpeppe/go-internal/txtar"
)

// progress prints a script as it runs: its tutorial comments and each command line, as the lab's own
// commands reach them. testscript only hands its log over when a script ends, so the lab commands
// (meshlab, kubectl, sleepcurl, waitfor, ...) move a cursor through the script's lines: every line up
// to the command being run is printed, the builtin assertions between commands included (they passed,
// or the script would have stopped).
type progress struct {
	mu      sync.Mutex
	out     io.Writer // nil: print nothing
	verbose bool      // also print each command's output
	t       testscript.T
	lines   []string
	next    int
	inText  bool // the last thing printed was tutorial text
	// notConverged is set when a `meshlab wait` in the lab found the mesh never converged: the lab is then
	// not judged (an environment error, exit 2), rather than failed.
	notConverged string
}

func newProgress(out io.Writer, verbose bool, script []byte) *progress {
	comment := strings.TrimRight(string(txtar.Parse(script).Comment), "\n")
	return &progress{out: out, verbose: verbose, lines: strings.Split(comment, "\n")}
}

// reach prints the script's lines up to and including the next line that runs command name.
func (p *progress) reach(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := p.next; i < len(p.lines); i++ {
		if commandName(p.lines[i]) == name {
			p.print(p.lines[p.next : i+1])
			p.next = i + 1
			return
		}
	}
}

// finish prints the lines after the last command (the final assertions) of a script that passed.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.print(p.lines[p.next:])
	p.next = len(p.lines)
}

func (p *progress) print(lines []string) {
	if p.out == nil {
		return
	}
	for _, line := range lines {
		if text, ok := commentText(line); ok {
			if !p.inText {
				fmt.Fprintln(p.out)
			}
			if text == "" {
				fmt.Fprintln(p.out)
			} else {
				fmt.Fprintf(p.out, "  %s\n", text)
			}
			p.inText = true
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if p.inText {
			fmt.Fprintln(p.out)
		}
		fmt.Fprintf(p.out, "    $ %s\n", strings.TrimSpace(line))
		p.inText = false
	}
}

// output prints a command's output in verbose mode.
func (p *progress) output(stdout, stderr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil || !p.verbose {
		return
	}
	for _, s := range []string{stdout, stderr} {
		for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
			if line != "" {
				fmt.Fprintf(p.out, "      %s\n", line)
			}
		}
	}
}

// cleanup announces a deferred cleanup command.
func (p *progress) cleanup(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out != nil {
		fmt.Fprintf(p.out, "    ↺ %s\n", line)
	}
}

// commandName is the command a script line runs, after any [condition] and `!` prefixes; "" for
// comments and blank lines.
func commandName(line string) string {
	fields := strings.Fields(line)
	for len(fields) > 0 && (strings.HasPrefix(fields[0], "[") || fields[0] == "!") {
		if strings.HasPrefix(fields[0], "[") && !strings.HasSuffix(fields[0], "]") {
			// a condition with spaces: skip to its closing bracket
			for len(fields) > 0 && !strings.HasSuffix(fields[0], "]") {
				fields = fields[1:]
			}
		}
		if len(fields) > 0 {
			fields = fields[1:]
		}
	}
	if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
		return ""
	}
	return fields[0]
}
