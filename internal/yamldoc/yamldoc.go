// Package yamldoc reads Kubernetes YAML streams for meshlab's offline loaders (meshlab render, kube-inject,
// inject check): it splits a stream into documents the way kubectl does, remembers where each starts,
// rejects duplicate keys, converts each document to JSON with Kubernetes' own YAML rules (sigs.k8s.io/yaml),
// expands `kind: List` documents (what `kubectl get -o yaml` prints) into their items, nested Lists too, and
// maps a field path such as `spec.http[0].route[1].weight` back to the line it is on, so that an error can
// name file, document, object and line.
//
// Documents are split on lines that are `---` (optionally followed by a comment), as
// k8s.io/apimachinery/pkg/util/yaml's YAMLReader does; that reader is not used itself because it drops the
// separators it reads and so loses line numbers. Lines have no length limit and read errors are returned.
package yamldoc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// Doc is one object of a YAML stream: a document, or an item of a List document.
type Doc struct {
	Source string // the file name, as given
	Index  int    // 1-based index of the YAML document in Source
	Items  []int  // for an item of a List: its 1-based index in each enclosing List, outermost first
	List   *Doc   // for an item of a List: that List (its JSON has every item; Raw is set when it is a document)
	Line   int    // the line of Source where the object starts
	// Raw is the document's YAML text for a top-level document; nil for an item of a List.
	Raw []byte
	// JSON is the object as JSON, scalars read as Kubernetes reads them (YAML 1.1: yes is true).
	JSON []byte

	APIVersion, Kind, Namespace, Name string

	node *yamlv3.Node // the object's mapping, line numbers already counted from the start of Source
}

// IsList reports whether a kind with these fields is a list of objects (kubectl's rule: v1 List, or any
// *List kind with items).
func isList(apiVersion, kind string, hasItems bool) bool {
	return kind == "List" || (strings.HasSuffix(kind, "List") && hasItems)
}

// Where names the object for messages: `policy.yaml: document 2 (AuthorizationPolicy default/deny)`, with
// `item 3` (or `item 2.1` for a List nested in a List) for List items.
func (d *Doc) Where() string {
	var b strings.Builder
	b.WriteString(d.Source)
	if d.Index == 0 {
		return b.String() // not in a document
	}
	fmt.Fprintf(&b, ": document %d", d.Index)
	if len(d.Items) > 0 {
		parts := make([]string, len(d.Items))
		for i, n := range d.Items {
			parts[i] = strconv.Itoa(n)
		}
		b.WriteString(" item " + strings.Join(parts, "."))
	}
	if d.Kind != "" {
		b.WriteString(" (" + d.Kind)
		if d.Name != "" {
			b.WriteByte(' ')
			if d.Namespace != "" {
				b.WriteString(d.Namespace + "/")
			}
			b.WriteString(d.Name)
		}
		b.WriteByte(')')
	}
	return b.String()
}

// Error is a problem with one document: where it is, and what.
type Error struct {
	Doc  *Doc
	Line int // 0 when unknown
	Err  error
}

func (e *Error) Error() string {
	where := e.Doc.Where()
	if e.Line > 0 {
		where += fmt.Sprintf(", line %d", e.Line)
	}
	return where + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error about d at the line of path (a field path in YAML form such as
// `spec.http[0].route`; empty for the object's own line).
func (d *Doc) Errorf(path string, format string, args ...any) *Error {
	return &Error{Doc: d, Line: d.LineOf(path), Err: fmt.Errorf(format, args...)}
}

// goTypeError matches the message of a JSON type error from encoding/json or sigs.k8s.io/json.
var goTypeError = regexp.MustCompile(`cannot unmarshal (\w+) into Go struct field \w+\.(\S+) of type (\S+)`)

// DecodeError is an *Error for an error from decoding d's JSON into a typed object: a value of the wrong
// type is reported at its field and line (`spec.replicas: a string cannot be decoded into int32`).
func (d *Doc) DecodeError(what string, err error) *Error {
	if m := goTypeError.FindStringSubmatch(err.Error()); m != nil {
		return d.Errorf(m[2], "%s: a %s cannot be decoded into %s", m[2], m[1], m[3])
	}
	return &Error{Doc: d, Line: d.Line, Err: fmt.Errorf("%s: %w", what, err)}
}

// ReadFile is Read of a file's content, with the file's name in messages.
func ReadFile(name string, data []byte) ([]*Doc, error) {
	return Read(name, bytes.NewReader(data))
}

// Read reads every document of a YAML (or JSON) stream, expanding Lists. Blank and comment-only documents
// are skipped. It is all or nothing: an error from r is returned as is, wrapped with source; problems with
// the documents are *Errors, all of them joined.
func Read(source string, r io.Reader) ([]*Doc, error) {
	br := bufio.NewReader(r)
	var (
		docs  []*Doc
		errs  []error
		cur   bytes.Buffer
		line  = 0 // lines read so far
		start = 1 // the line the current document starts on
		index = 0
		// The text before the first separator is a document only if it has content (YAML's rule: a
		// stream may open with comments and `---`).
		first = true
	)
	flush := func() {
		raw := append([]byte(nil), cur.Bytes()...)
		cur.Reset()
		if first && isBlank(raw) {
			return
		}
		index++
		if isBlank(raw) {
			return
		}
		d, err := decode(source, index, start, raw)
		docs = append(docs, d...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	for {
		text, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading %s: %w", source, err)
		}
		if len(text) > 0 {
			line++
			if sep, bad := separator(text); sep {
				if bad != "" {
					return nil, &Error{Doc: &Doc{Source: source}, Line: line,
						Err: fmt.Errorf("invalid YAML document separator %q: only a comment may follow ---", bad)}
				}
				flush()
				first = false
				start = line + 1
			} else {
				cur.Write(text)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	flush()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return docs, nil
}

// separator reports whether line is a document separator; bad is what follows --- when that is not allowed.
func separator(line []byte) (sep bool, bad string) {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false, ""
	}
	rest := strings.TrimSpace(string(line[3:]))
	if len(line) > 3 && line[3] != ' ' && line[3] != '\t' && line[3] != '\r' && line[3] != '\n' {
		return false, "" // "----" or "---x": not a separator
	}
	if rest != "" && !strings.HasPrefix(rest, "#") {
		return true, rest
	}
	return true, ""
}

func isBlank(data []byte) bool {
	for _, l := range bytes.Split(data, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// decode parses one document that starts at line start of source.
func decode(source string, index, start int, raw []byte) ([]*Doc, error) {
	d := &Doc{Source: source, Index: index, Line: start, Raw: raw}
	// yaml.v3 gives the node tree used for line numbers and duplicate keys; its lines count from the
	// document's first line.
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(raw, &root); err != nil {
		msg, line := err.Error(), 0
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			line, msg = start+n-1, msg[len(m[0]):]
		}
		return nil, &Error{Doc: d, Line: line, Err: fmt.Errorf("malformed YAML: %s", msg)}
	}
	shift(&root, start-1)
	node := &root
	if node.Kind == yamlv3.DocumentNode && len(node.Content) == 1 {
		node = node.Content[0]
	}
	d.node = node
	if node.Kind == yamlv3.MappingNode {
		d.Line = node.Line
	}
	if errs := duplicates(d, node); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// The JSON is sigs.k8s.io/yaml's, as kubectl's: YAML 1.1 scalars, integers kept exact.
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return nil, &Error{Doc: d, Err: fmt.Errorf("malformed YAML: %w", err)}
	}
	return object(d, js)
}

// object fills in d's type and name from js, expanding a List into its items.
func object(d *Doc, js []byte) ([]*Doc, error) {
	d.JSON = js
	if len(js) == 0 || js[0] != '{' {
		return nil, &Error{Doc: d, Line: d.Line, Err: errors.New("not a Kubernetes object: expected a mapping with apiVersion and kind")}
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Items *[]json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		// A field of the wrong type (metadata: 3): say which.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, d.Errorf(te.Field, "%s: must be a %s, not a %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return nil, &Error{Doc: d, Line: d.Line, Err: fmt.Errorf("reading apiVersion, kind and metadata: %w", err)}
	}
	d.APIVersion, d.Kind, d.Namespace, d.Name = head.APIVersion, head.Kind, head.Metadata.Namespace, head.Metadata.Name
	if head.APIVersion == "" || head.Kind == "" {
		return nil, &Error{Doc: d, Line: d.Line, Err: fmt.Errorf("missing apiVersion or kind (apiVersion %q, kind %q)", head.APIVersion, head.Kind)}
	}
	if !isList(head.APIVersion, head.Kind, head.Items != nil) {
		return []*Doc{d}, nil
	}
	var (
		out  []*Doc
		errs []error
	)
	itemsNode := d.lookup("items")
	for i, raw := range deref(head.Items) {
		item := &Doc{Source: d.Source, Index: d.Index, Items: append(append([]int(nil), d.Items...), i+1), Line: d.Line, List: d}
		if itemsNode != nil && itemsNode.Kind == yamlv3.SequenceNode && i < len(itemsNode.Content) {
			item.node = itemsNode.Content[i]
			item.Line = item.node.Line
		}
		o, err := object(item, raw)
		out = append(out, o...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

func deref(p *[]json.RawMessage) []json.RawMessage {
	if p == nil {
		return nil
	}
	return *p
}

func jsonKind(goKind string) string {
	switch goKind {
	case "struct", "map":
		return "mapping"
	case "slice":
		return "list"
	}
	return goKind
}

// shift adds n to the line of every node under root.
func shift(root *yamlv3.Node, n int) {
	seen := map[*yamlv3.Node]bool{}
	var walk func(*yamlv3.Node)
	walk = func(x *yamlv3.Node) {
		if x == nil || seen[x] {
			return
		}
		seen[x] = true
		x.Line += n
		for _, c := range x.Content {
			walk(c)
		}
	}
	walk(root)
}

// duplicates reports every key set twice in one mapping, which YAML forbids and which would otherwise
// silently keep one of the two values.
func duplicates(d *Doc, root *yamlv3.Node) []error {
	var errs []error
	seen := map[*yamlv3.Node]bool{}
	var walk func(x *yamlv3.Node, path string)
	walk = func(x *yamlv3.Node, path string) {
		if x == nil || seen[x] || x.Kind == yamlv3.AliasNode {
			return
		}
		seen[x] = true
		switch x.Kind {
		case yamlv3.MappingNode:
			first := map[string]int{}
			for i := 0; i+1 < len(x.Content); i += 2 {
				k := x.Content[i]
				key := k.Value
				if k.Kind == yamlv3.ScalarNode && key != "<<" {
					if l, dup := first[key]; dup {
						errs = append(errs, &Error{Doc: d, Line: k.Line,
							Err: fmt.Errorf("duplicate key %q (first at line %d)", join(path, key), l)})
					} else {
						first[key] = k.Line
					}
				}
				walk(x.Content[i+1], join(path, key))
			}
		case yamlv3.SequenceNode:
			for i, c := range x.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		default:
			for _, c := range x.Content {
				walk(c, path)
			}
		}
	}
	walk(root, "")
	return errs
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// LineOf returns the line of the field at path, a field path in YAML form (`spec.http[0].route[1].weight`,
// map keys as `metadata.labels[app]` or `metadata.labels.app`). For a path that does not exist in full it
// returns the line of the deepest part that does; for an empty path, the object's line.
func (d *Doc) LineOf(path string) int {
	if d.node == nil {
		return d.Line
	}
	line := d.node.Line
	x := d.node
	for _, seg := range splitPath(path) {
		next, keyLine := child(x, seg)
		if next == nil {
			break
		}
		x, line = next, keyLine
	}
	return line
}

// lookup returns the node at path, or nil.
func (d *Doc) lookup(path string) *yamlv3.Node {
	x := d.node
	for _, seg := range splitPath(path) {
		if x, _ = child(x, seg); x == nil {
			return nil
		}
	}
	return x
}

// child returns x's member seg (a key, or an index of a sequence) and the line that names it: the key's
// line for a mapping member, the element's for a sequence element.
func child(x *yamlv3.Node, seg string) (*yamlv3.Node, int) {
	for x != nil && x.Kind == yamlv3.AliasNode {
		x = x.Alias
	}
	if x == nil {
		return nil, 0
	}
	switch x.Kind {
	case yamlv3.MappingNode:
		for i := 0; i+1 < len(x.Content); i += 2 {
			if x.Content[i].Value == seg {
				return x.Content[i+1], x.Content[i].Line
			}
		}
	case yamlv3.SequenceNode:
		if n, err := strconv.Atoi(seg); err == nil && n >= 0 && n < len(x.Content) {
			return x.Content[n], x.Content[n].Line
		}
	}
	return nil, 0
}

// splitPath splits `spec.http[0].headers[x-a.b]` into spec, http, 0, headers, x-a.b.
func splitPath(path string) []string {
	var segs []string
	for len(path) > 0 {
		switch path[0] {
		case '.':
			path = path[1:]
		case '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return append(segs, path[1:])
			}
			segs = append(segs, path[1:end])
			path = path[end+1:]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			segs = append(segs, path[:end])
			path = path[end:]
		}
	}
	return segs
}

// Files lists the manifest files of path: path itself, or a directory's .yaml, .yml and .json files
// (not its subdirectories), sorted. A directory without any is an error, so that a wrong path is not
// silently an empty input.
func Files(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var files []string
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("reading %s: no .yaml, .yml or .json files in the directory", path)
	}
	sort.Strings(files)
	return files, nil
}
