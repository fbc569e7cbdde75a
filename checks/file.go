// Package checks runs a team's own mesh checks written as files: `meshlab test PATH...`. A check file is a
// txtar file in the labs' testscript dialect (`#` comments are prose, one command a line, embedded YAML
// after `-- name.yaml --`) whose commands include first-class mesh assertions (route weights, cluster
// endpoints, scoping, convergence time, traffic). Every file is parsed and validated before anything runs;
// each then runs as a scenarios.Scenario in a namespace of its own, live against the lab or --offline on the
// config `meshlab render` computes.
package checks

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rogpeppe/go-internal/txtar"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshlab/meshlab/scenarios"
)

// Dataplane modes a file's namespace can be enrolled in (directive `# meshlab: dataplane MODE`).
const (
	DataplaneAmbient = "ambient" // label istio.io/dataplane-mode=ambient (the default)
	DataplaneSidecar = "sidecar" // label istio-injection=enabled
	DataplaneNone    = "none"    // no label: plain Kubernetes
)

// directivePrefix starts a comment line that configures the file rather than describing it.
const directivePrefix = "# meshlab:"

// File is one parsed and validated check file.
type File struct {
	Path      string            // as given on the command line
	Dir       string            // its directory, absolute: apply and delete also read files from there
	Name      string            // file name without .txtar: the check's name in reports
	Title     string            // the first prose line
	Dataplane string            // DataplaneAmbient, DataplaneSidecar or DataplaneNone
	Lines     []Line            // the commands, in order
	Files     map[string][]byte // embedded files by name
	Script    []byte            // the whole file, as testscript runs it
	// Shared lists the namespaces other than its own that the file touches (metadata.namespace in its
	// YAML, -n/--namespace arguments): files sharing one run one after the other.
	Shared []string
}

// Line is one command line of a check file.
type Line struct {
	N    int      // 1-based line number in the file
	Neg  bool     // prefixed with `!`
	Cond string   // a [condition] prefix, if any
	Args []string // the command and its arguments, unexpanded
	Text string   // the line as written
}

// Name is the command.
func (l Line) Name() string { return l.Args[0] }

// Error is a problem with a check file, placed at a line (0: the file as a whole).
type Error struct {
	Path string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

// Expand turns the PATH arguments of `meshlab test` into check files: a file as is, a directory as every
// *.txtar in it (not recursively, sorted).
func Expand(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(p, "*.txtar"))
		if err != nil {
			return nil, err
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("%s: no *.txtar check files in this directory", p)
		}
		sort.Strings(matches)
		out = append(out, matches...)
	}
	return out, nil
}

// Load reads and parses check files; the error joins every problem in every file.
func Load(paths []string) ([]*File, error) {
	var files []*File
	var errs []string
	names := map[string]string{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		f, err := Parse(p, data)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if other, dup := names[f.Name]; dup {
			errs = append(errs, (&Error{Path: p, Msg: fmt.Sprintf("two check files named %s (also %s): names must be unique, they name the results", f.Name, other)}).Error())
			continue
		}
		names[f.Name] = p
		files = append(files, f)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return files, nil
}

// Parse parses and validates one check file: its syntax, every command and its arguments, the embedded
// files the commands name and the YAML in them. The error lists every problem, each as PATH:LINE: ....
func Parse(path string, data []byte) (*File, error) {
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	f := &File{Path: path, Dir: dir, Name: name, Dataplane: DataplaneAmbient, Files: map[string][]byte{}, Script: data}
	var errs []error
	bad := func(line int, format string, args ...any) {
		errs = append(errs, &Error{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	if !validName(name) {
		bad(0, "the file name %q must be lowercase letters, digits and dashes (it becomes part of the namespace name)", name)
	}
	ar := txtar.Parse(data)
	commentLines := strings.Count(string(ar.Comment), "\n")
	lineOf := map[string]int{} // embedded file -> line of its `-- name --` marker
	line := commentLines + 1
	for _, af := range ar.Files {
		if _, dup := f.Files[af.Name]; dup {
			bad(line, "embedded file %s appears twice", af.Name)
		}
		f.Files[af.Name] = af.Data
		lineOf[af.Name] = line
		line += 1 + strings.Count(string(af.Data), "\n")
	}
	for i, text := range strings.Split(string(ar.Comment), "\n") {
		n := i + 1
		trimmed := strings.TrimSpace(text)
		switch {
		case trimmed == "":
			continue
		case strings.HasPrefix(trimmed, directivePrefix):
			if err := f.directive(strings.TrimSpace(strings.TrimPrefix(trimmed, directivePrefix))); err != nil {
				bad(n, "%v", err)
			}
			continue
		case strings.HasPrefix(trimmed, "#"):
			if f.Title == "" {
				f.Title = strings.TrimSpace(strings.TrimPrefix(trimmed, "#"))
			}
			continue
		}
		l, err := parseLine(n, text)
		if err != nil {
			bad(n, "%v", err)
			continue
		}
		f.Lines = append(f.Lines, l)
	}
	if len(f.Lines) == 0 && len(errs) == 0 {
		bad(0, "no commands: a check file needs at least one command line")
	}
	for _, l := range f.Lines {
		for _, e := range validate(f, l) {
			bad(l.N, "%s", e)
		}
		f.noteNamespaceArgs(l.Args)
	}
	// YAML must decode, so that nothing is half-applied because of a typo found halfway.
	for fname, data := range f.Files {
		if !isYAML(fname) {
			continue
		}
		objs, err := scenarios.DecodeYAML(string(data))
		if err != nil {
			bad(lineOf[fname], "embedded file %s: %v", fname, err)
			continue
		}
		f.noteNamespaces(objs)
	}
	for _, l := range f.Lines {
		if s := specs[l.Name()]; s == nil || !s.files {
			continue
		}
		for _, a := range l.Args[1:] {
			if _, embedded := f.Files[a]; embedded || strings.Contains(a, "$") {
				continue
			}
			data, err := os.ReadFile(f.beside(a))
			if err != nil {
				continue // reported by validate
			}
			objs, err := scenarios.DecodeYAML(string(data))
			if err != nil {
				bad(l.N, "%s: %v", a, err)
				continue
			}
			f.noteNamespaces(objs)
		}
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].(*Error).Line < errs[j].(*Error).Line })
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("%s", strings.Join(msgs, "\n"))
	}
	sort.Strings(f.Shared)
	return f, nil
}

func (f *File) directive(d string) error {
	fields := strings.Fields(d)
	if len(fields) != 2 || fields[0] != "dataplane" {
		return fmt.Errorf("unknown directive %q; the one directive is `# meshlab: dataplane ambient|sidecar|none`", d)
	}
	switch fields[1] {
	case DataplaneAmbient, DataplaneSidecar, DataplaneNone:
		f.Dataplane = fields[1]
		return nil
	}
	return fmt.Errorf("dataplane %q: want ambient, sidecar or none", fields[1])
}

func (f *File) noteNamespaces(objs []*unstructured.Unstructured) {
	for _, u := range objs {
		if ns := u.GetNamespace(); ns != "" && ns != NamespaceVar {
			f.share(ns)
		}
	}
}

// noteNamespaceArgs records -n NS, --namespace NS and --namespace=NS arguments (kubectl, meshlab).
func (f *File) noteNamespaceArgs(args []string) {
	for i, a := range args {
		ns := ""
		switch {
		case (a == "-n" || a == "--namespace") && i+1 < len(args):
			ns = args[i+1]
		case strings.HasPrefix(a, "--namespace="):
			ns = strings.TrimPrefix(a, "--namespace=")
		}
		if ns != "" && ns != NamespaceVar && ns != "${NS}" {
			f.share(ns)
		}
	}
}

func (f *File) share(ns string) {
	for _, s := range f.Shared {
		if s == ns {
			return
		}
	}
	f.Shared = append(f.Shared, ns)
}

// NamespaceVar is how a check file names its own namespace.
const NamespaceVar = "$NS"

func isYAML(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".json")
}

func validName(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return s[0] != '-' && s[len(s)-1] != '-'
}

// parseLine splits a command line as testscript does: words separated by blanks, '...' quoting (” is a
// quote inside), a leading `!` negation and [condition] prefixes, a `#` word starting a comment.
func parseLine(n int, text string) (Line, error) {
	l := Line{N: n, Text: strings.TrimSpace(text)}
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	s := text
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\'':
			if i+1 < len(s) && s[i+1] == '\'' {
				cur.WriteByte('\'')
				i++
				continue
			}
			quoted = false
		case quoted:
			cur.WriteByte(c)
		case c == '\'':
			quoted, inWord = true, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			i = len(s)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return l, fmt.Errorf("unterminated quoted argument")
	}
	if inWord {
		words = append(words, cur.String())
	}
	for len(words) > 0 {
		w := words[0]
		switch {
		case w == "!":
			if l.Neg {
				return l, fmt.Errorf("two `!` on one line")
			}
			l.Neg, words = true, words[1:]
			continue
		case strings.HasPrefix(w, "[") && strings.HasSuffix(w, "]"):
			l.Cond, words = strings.Trim(w, "[]"), words[1:]
			continue
		}
		break
	}
	if len(words) == 0 {
		return l, fmt.Errorf("a line with only a prefix and no command")
	}
	l.Args = words
	return l, nil
}

// beside resolves a file apply or delete names that is not embedded: relative to the check file.
func (f *File) beside(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(f.Dir, name)
}
