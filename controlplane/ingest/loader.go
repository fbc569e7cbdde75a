package ingest

import (
	"errors"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshlab/meshlab/controlplane/validation"
	"github.com/meshlab/meshlab/internal/yamldoc"
)

// Warning is something the loader skipped or accepted with a remark, such as a kind the control plane does
// not read or an Istio validation warning.
type Warning struct {
	File    string
	Doc     int    // 1-based index of the YAML document in File
	Line    int    // line where the object starts
	Where   string // the object, e.g. "policy.yaml: document 2 (AuthorizationPolicy default/deny)"
	Message string
	// Skipped is set when the object was not loaded at all (a kind the control plane does not read).
	Skipped bool
}

func (w Warning) String() string {
	if w.Line == 0 { // not from a file (a live lab's object)
		return fmt.Sprintf("%s: %s", w.Where, w.Message)
	}
	return fmt.Sprintf("%s, line %d: %s", w.Where, w.Line, w.Message)
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
		case "GRPCRoute":
			if version == "v1" { // GRPCRoute was v1alpha2 before it went to v1 (Gateway API 1.1)
				return &gwv1.GRPCRoute{}
			}
		case "TCPRoute":
			if version == "v1" { // the only version Gateway API 1.5+ serves (v1alpha2 is no longer served)
				return &gwv1.TCPRoute{}
			}
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
		if version != "v1" && version != "v1beta1" {
			return nil
		}
		switch kind {
		case "AuthorizationPolicy":
			return &securityv1.AuthorizationPolicy{}
		case "PeerAuthentication":
			return &securityv1.PeerAuthentication{}
		case "RequestAuthentication":
			return &securityv1.RequestAuthentication{}
		}
	}
	return nil
}

// LoadFiles reads Kubernetes YAML (multi-document files, or directories of .yaml/.yml/.json files; Lists are
// read as their items) into a new store. It is all or nothing: on any error no store is returned. Kinds the
// control plane does not read are skipped with a warning. Every object is decoded strictly and validated
// with controlplane/validation; problems are errors naming the file, document, object, line and field, e.g.
// `policy.yaml: document 2 (AuthorizationPolicy default/deny), line 7: unknown field "spec.actoin"`. They
// are *yamldoc.Errors (read errors are not). Fields meshlab does not implement (validation.Coverage) are
// warnings, or errors where ignoring them would mislead: "spec.rules[0].when: meshlab does not implement
// AuthorizationPolicy rules.when; ...".
func LoadFiles(paths ...string) (*Store, []Warning, error) {
	if len(paths) == 0 {
		return nil, nil, errors.New("no files given")
	}
	var files []string
	for _, p := range paths {
		fs, err := yamldoc.Files(p)
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
		o, w, err := decodeFile(f, data, true)
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
			errs = append(errs, &yamldoc.Error{Doc: lo.doc, Line: lo.doc.Line, Err: fmt.Errorf("%s is defined twice (first in %s)", key, first.where())})
			continue
		}
		seen[key] = lo
		if _, err := store.Add(lo.obj); err != nil {
			errs = append(errs, &yamldoc.Error{Doc: lo.doc, Line: lo.doc.Line, Err: err})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, warnings, err
	}
	return store, warnings, nil
}

// Decode parses one multi-document YAML stream strictly and validates its objects, as LoadFiles does, but
// without LoadFiles' coverage check (fields meshlab does not implement are neither warned about nor
// rejected: tests use Decode to build snapshots with them); name is used in messages. When the stream cannot be split into documents (malformed YAML, a duplicate key) it
// returns no objects; otherwise it returns every object that decoded and validated, and an error joining
// every one that did not.
func Decode(name string, data []byte) ([]Object, []Warning, error) {
	lo, w, err := decodeFile(name, data, false)
	objs := make([]Object, len(lo))
	for i := range lo {
		objs[i] = lo[i].obj
	}
	return objs, w, err
}

type located struct {
	obj Object
	doc *yamldoc.Doc
}

// where names lo in messages: "file: document N (Kind ns/name), line L".
func (lo located) where() string {
	return fmt.Sprintf("%s, line %d", lo.doc.Where(), lo.doc.Line)
}

// decodeFile decodes and validates every document of a file. With coverage, fields meshlab does not
// implement (validation.Coverage) are reported: as warnings, or as errors for those it rejects.
func decodeFile(file string, data []byte, coverage bool) ([]located, []Warning, error) {
	docs, err := yamldoc.ReadFile(file, data)
	if err != nil {
		return nil, nil, err
	}
	var (
		objs     []located
		warnings []Warning
		errs     []error
	)
	for _, d := range docs {
		obj, w, err := decodeDocument(d, coverage)
		for _, msg := range w {
			warnings = append(warnings, Warning{File: file, Doc: d.Index, Line: d.Line, Where: d.Where(), Message: msg, Skipped: obj == nil && err == nil})
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if obj != nil {
			objs = append(objs, located{obj: obj, doc: d})
		}
	}
	return objs, warnings, errors.Join(errs...)
}

// decodeDocument decodes one object strictly and validates it with controlplane/validation, the rules the
// admission webhook applies: a field the kind does not have, a value of the wrong type or a rule broken is an
// error naming the field, and its line.
func decodeDocument(d *yamldoc.Doc, coverage bool) (Object, []string, error) {
	if newObject(d.APIVersion, d.Kind) == nil {
		group, _, _ := strings.Cut(d.APIVersion, "/")
		if validation.UnimplementedKinds[schema.GroupKind{Group: group, Kind: d.Kind}] {
			return nil, []string{fmt.Sprintf("skipping %s %s: meshlab does not implement %s; it has no effect", d.APIVersion, d.Kind, d.Kind)}, nil
		}
		return nil, []string{fmt.Sprintf("skipping %s %s: not a kind the control plane reads", d.APIVersion, d.Kind)}, nil
	}
	ro, vw, err := validation.ValidateYAML(d.JSON)
	var warnings []string
	for _, w := range vw {
		warnings = append(warnings, w.String())
	}
	if coverage && err == nil {
		findings, cerr := validation.CheckCoverageJSON(d.JSON)
		if cerr != nil {
			return nil, warnings, d.DecodeError("decoding "+d.APIVersion+" "+d.Kind, cerr)
		}
		rejected, warned := validation.SplitFindings(findings)
		for _, f := range warned {
			warnings = append(warnings, f.String())
		}
		if len(rejected) > 0 {
			errs := make([]error, len(rejected))
			for i, f := range rejected {
				errs[i] = &yamldoc.Error{Doc: d, Line: d.LineOf(f.Field), Err: errors.New(f.String())}
			}
			return nil, warnings, errors.Join(errs...)
		}
	}
	if err != nil {
		var invalid *validation.Error
		if !errors.As(err, &invalid) {
			return nil, warnings, d.DecodeError("decoding "+d.APIVersion+" "+d.Kind, err)
		}
		errs := make([]error, len(invalid.Errs))
		for i, fe := range invalid.Errs {
			errs[i] = &yamldoc.Error{Doc: d, Line: d.LineOf(fe.Field), Err: errors.New(validation.Message(fe))}
		}
		return nil, warnings, errors.Join(errs...)
	}
	obj, ok := ro.(Object)
	if !ok {
		return nil, warnings, &yamldoc.Error{Doc: d, Line: d.Line, Err: fmt.Errorf("unexpected type %T", ro)}
	}
	kind, err := KindOf(obj)
	if err != nil {
		return nil, warnings, &yamldoc.Error{Doc: d, Line: d.Line, Err: err}
	}
	if kind.Namespaced() && obj.GetNamespace() == "" {
		obj.SetNamespace("default") // what kubectl apply does without -n
	}
	if !kind.Namespaced() && obj.GetNamespace() != "" {
		obj.SetNamespace("")
	}
	return obj, warnings, nil
}
