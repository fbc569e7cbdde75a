package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Warning is something the loader skipped without failing, such as a kind the control plane does not read.
type Warning struct {
	File    string
	Doc     int // 1-based index of the YAML document in File
	Line    int // line where the document starts
	Message string
}

func (w Warning) String() string {
	return fmt.Sprintf("%s: document %d (line %d): %s", w.File, w.Doc, w.Line, w.Message)
}

// newObject maps apiVersion and kind to an empty typed object. Istio and Gateway API objects are accepted
// in every served version because their specs are identical across them.
func newObject(apiVersion, kind string) Object {
	group, version := "", apiVersion
	if i := strings.LastIndex(apiVersion, "/"); i >= 0 {
		group, version = apiVersion[:i], apiVersion[i+1:]
	}
	switch group {
	case "":
		if version != "v1" {
			return nil
		}
		switch kind {
		case "Namespace":
			return &corev1.Namespace{}
		case "Service":
			return &corev1.Service{}
		case "Pod":
			return &corev1.Pod{}
		case "ServiceAccount":
			return &corev1.ServiceAccount{}
		}
	case "discovery.k8s.io":
		if version == "v1" && kind == "EndpointSlice" {
			return &discoveryv1.EndpointSlice{}
		}
	case "gateway.networking.k8s.io":
		if version != "v1" && version != "v1beta1" {
			return nil
		}
		switch kind {
		case "GatewayClass":
			return &gwv1.GatewayClass{}
		case "Gateway":
			return &gwv1.Gateway{}
		case "HTTPRoute":
			return &gwv1.HTTPRoute{}
		}
	case "networking.istio.io":
		if version != "v1" && version != "v1beta1" && version != "v1alpha3" {
			return nil
		}
		switch kind {
		case "VirtualService":
			return &networkingv1.VirtualService{}
		case "DestinationRule":
			return &networkingv1.DestinationRule{}
		}
	case "security.istio.io":
		if (version == "v1" || version == "v1beta1") && kind == "AuthorizationPolicy" {
			return &securityv1.AuthorizationPolicy{}
		}
	}
	return nil
}

// LoadFiles reads Kubernetes YAML (multi-document files, or directories of .yaml/.yml/.json files) into a
// new store. It is all or nothing: on any error no store is returned. Kinds the control plane does not read
// are skipped with a warning; malformed documents are errors naming the file, document and problem.
func LoadFiles(paths ...string) (*Store, []Warning, error) {
	if len(paths) == 0 {
		return nil, nil, errors.New("no files given")
	}
	var files []string
	for _, p := range paths {
		fs, err := expand(p)
		if err != nil {
			return nil, nil, err
		}
		files = append(files, fs...)
	}
	var (
		objs     []located
		warnings []Warning
		errs     []error
	)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", f, err)
		}
		o, w, err := decodeFile(f, data)
		objs, warnings = append(objs, o...), append(warnings, w...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, warnings, err
	}
	seen := map[Key]located{}
	store := NewStore()
	for _, lo := range objs {
		key, _ := KeyOf(lo.obj)
		if first, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("%s: %s is defined twice (first in %s)", lo.where, key, first.where))
			continue
		}
		seen[key] = lo
		if _, err := store.Add(lo.obj); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", lo.where, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, warnings, err
	}
	return store, warnings, nil
}

// Decode parses one multi-document YAML stream; name is used in messages. It returns every object it could
// decode and an error joining every document that failed.
func Decode(name string, data []byte) ([]Object, []Warning, error) {
	lo, w, err := decodeFile(name, data)
	objs := make([]Object, len(lo))
	for i := range lo {
		objs[i] = lo[i].obj
	}
	return objs, w, err
}

type located struct {
	obj   Object
	where string // "file: document N (line L)"
}

func expand(path string) ([]string, error) {
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
		return nil, fmt.Errorf("reading %s: no .yaml, .yml or .json files in directory", path)
	}
	sort.Strings(files)
	return files, nil
}

type document struct {
	index, line int
	data        []byte
}

// splitDocuments splits a YAML stream on "---" lines, remembering where each document starts.
func splitDocuments(data []byte) []document {
	var (
		docs []document
		cur  bytes.Buffer
		line = 0
		doc  = document{index: 1, line: 1}
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "---" || strings.HasPrefix(text, "--- ") || strings.HasPrefix(text, "---\t") {
			doc.data = append([]byte(nil), cur.Bytes()...)
			docs = append(docs, doc)
			cur.Reset()
			doc = document{index: doc.index + 1, line: line + 1}
			continue
		}
		cur.WriteString(text)
		cur.WriteByte('\n')
	}
	doc.data = cur.Bytes()
	return append(docs, doc)
}

func isBlank(data []byte) bool {
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

func decodeFile(file string, data []byte) ([]located, []Warning, error) {
	var (
		objs     []located
		warnings []Warning
		errs     []error
	)
	for _, d := range splitDocuments(data) {
		if isBlank(d.data) {
			continue
		}
		where := fmt.Sprintf("%s: document %d (line %d)", file, d.index, d.line)
		o, w, err := decodeDocument(d.data)
		for _, msg := range w {
			warnings = append(warnings, Warning{File: file, Doc: d.index, Line: d.line, Message: msg})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		for _, obj := range o {
			objs = append(objs, located{obj: obj, where: where})
		}
	}
	return objs, warnings, errors.Join(errs...)
}

type typeMeta struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

// decodeDocument decodes one YAML document (possibly a v1 List) into typed objects.
func decodeDocument(data []byte) ([]Object, []string, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, nil, fmt.Errorf("malformed YAML: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return nil, nil, nil
	}
	if len(js) == 0 || js[0] != '{' {
		return nil, nil, errors.New("not a Kubernetes object: expected a mapping with apiVersion and kind")
	}
	return decodeJSON(js)
}

func decodeJSON(js []byte) ([]Object, []string, error) {
	var tm typeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, nil, fmt.Errorf("reading apiVersion and kind: %w", err)
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return nil, nil, fmt.Errorf("missing apiVersion or kind (apiVersion %q, kind %q)", tm.APIVersion, tm.Kind)
	}
	if tm.APIVersion == "v1" && tm.Kind == "List" {
		var objs []Object
		var warnings []string
		for i, item := range tm.Items {
			o, w, err := decodeJSON(item)
			if err != nil {
				return nil, nil, fmt.Errorf("List item %d: %w", i+1, err)
			}
			objs, warnings = append(objs, o...), append(warnings, w...)
		}
		return objs, warnings, nil
	}
	obj := newObject(tm.APIVersion, tm.Kind)
	if obj == nil {
		return nil, []string{fmt.Sprintf("skipping %s %s: not a kind the control plane reads", tm.APIVersion, tm.Kind)}, nil
	}
	// Strict and case-sensitive, like the API server's field validation: a misspelt field is an error.
	strict, err := sigsjson.UnmarshalStrict(js, obj, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, nil, fmt.Errorf("decoding %s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	if len(strict) > 0 {
		return nil, nil, fmt.Errorf("decoding %s %s: %w", tm.APIVersion, tm.Kind, errors.Join(strict...))
	}
	kind, _ := KindOf(obj)
	if obj.GetName() == "" {
		return nil, nil, fmt.Errorf("%s has no metadata.name", kind)
	}
	if kind.Namespaced() && obj.GetNamespace() == "" {
		obj.SetNamespace("default") // what kubectl apply does without -n
	}
	if !kind.Namespaced() && obj.GetNamespace() != "" {
		obj.SetNamespace("")
	}
	return []Object{obj}, nil, nil
}
