// Package labs holds meshlab's scripted tutorials. Each lab is a testscript (txtar) file in scripts/: its
// leading `#` comments are the text a learner reads, in Istio's terms, and its commands run against the
// lab cluster with assertions on their output. The same scripts run from `meshlab lab run` (through
// Run's testscript.T adapter) and from `go test` (testscript.Run with Params).
package labs

import (
	"embed"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/rogpeppe/go-internal/txtar"
)

//go:embed scripts/*.txtar
var scripts embed.FS

// Lab is one tutorial.
type Lab struct {
	Name   string // file name without .txtar
	Title  string // the first comment line
	Script []byte // the whole txtar file
	File   string // where the script came from, as errors name it: a path, or labs/scripts/NAME.txtar
}

// Text returns the tutorial text: every comment line of the script, without its `# ` marker.
func (l Lab) Text() string {
	var b strings.Builder
	for _, line := range strings.Split(string(txtar.Parse(l.Script).Comment), "\n") {
		if text, ok := commentText(line); ok {
			b.WriteString(text)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// commentText returns the text of a `#` comment line.
func commentText(line string) (string, bool) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "#") {
		return "", false
	}
	return strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "), true
}

// All returns every lab, by name.
func All() []Lab {
	entries, err := scripts.ReadDir("scripts")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	var out []Lab
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".txtar")
		if !ok {
			continue
		}
		data, err := scripts.ReadFile(path.Join("scripts", e.Name()))
		if err != nil {
			panic(err)
		}
		out = append(out, Lab{Name: name, Title: title(data), Script: data, File: path.Join("labs/scripts", e.Name())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// title is the first comment line of a script.
func title(script []byte) string {
	for _, line := range strings.Split(string(txtar.Parse(script).Comment), "\n") {
		if text, ok := commentText(line); ok && text != "" {
			return text
		}
	}
	return ""
}

// Select returns the named labs, in the order given.
func Select(names ...string) ([]Lab, error) {
	byName := map[string]Lab{}
	var known []string
	for _, l := range All() {
		byName[l.Name] = l
		known = append(known, l.Name)
	}
	var out []Lab
	for _, n := range names {
		l, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("no lab %q (have: %s)", n, strings.Join(known, ", "))
		}
		out = append(out, l)
	}
	return out, nil
}

// Format writes the lab as a learner reads it: the tutorial text, each command as `$ command`, and the
// files the lab applies.
func (l Lab) Format(w io.Writer) error {
	newProgress(w, false, l.Script).finish()
	for _, f := range txtar.Parse(l.Script).Files {
		if _, err := fmt.Fprintf(w, "\n  --- %s ---\n%s", f.Name, indentLines(string(f.Data), "  ")); err != nil {
			return err
		}
	}
	return nil
}

func indentLines(s, prefix string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if line != "" {
			b.WriteString(prefix + line)
		}
	}
	return b.String()
}
