package l7

import (
	"fmt"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// valueMatch is a compiled envoy.type.matcher.v3.ValueMatcher over a value of dynamic metadata (a
// protobuf Struct value: nil, float64, string, bool, []any or map[string]any).
type valueMatch func(v any) bool

// compileMetadata compiles an RBAC metadata principal: the value at filter/path in the request's dynamic
// metadata, matched by value (inverted if asked). A missing value matches nothing but a present_match false.
func compileMetadata(m *matcherv3.MetadataMatcher) (predicate, error) {
	if err := checkFields(m, "filter", "path", "value", "invert"); err != nil {
		return nil, err
	}
	var path []string
	for i, seg := range m.GetPath() {
		if err := checkFields(seg, "key"); err != nil {
			return nil, fmt.Errorf("path %d: %w", i, err)
		}
		path = append(path, seg.GetKey())
	}
	if len(path) == 0 {
		return nil, fmt.Errorf("path: empty")
	}
	vm, err := compileValue(m.GetValue())
	if err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	filter, invert := m.GetFilter(), m.GetInvert()
	return func(ri *requestInfo) bool {
		var cur any = map[string]any(ri.meta[filter])
		for _, k := range path {
			obj, _ := cur.(map[string]any)
			cur = obj[k]
		}
		return vm(cur) != invert
	}, nil
}

func compileValue(m *matcherv3.ValueMatcher) (valueMatch, error) {
	if m == nil {
		return nil, fmt.Errorf("missing")
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_StringMatch:
		sm, err := compileString(p.StringMatch)
		if err != nil {
			return nil, fmt.Errorf("string_match: %w", err)
		}
		return func(v any) bool {
			s, ok := v.(string)
			return ok && sm.match(s)
		}, nil
	case *matcherv3.ValueMatcher_BoolMatch:
		want := p.BoolMatch
		return func(v any) bool {
			b, ok := v.(bool)
			return ok && b == want
		}, nil
	case *matcherv3.ValueMatcher_PresentMatch:
		want := p.PresentMatch
		return func(v any) bool { return (v != nil) == want }, nil
	case *matcherv3.ValueMatcher_ListMatch:
		if err := checkFields(p.ListMatch, "one_of"); err != nil {
			return nil, fmt.Errorf("list_match: %w", err)
		}
		elem, err := compileValue(p.ListMatch.GetOneOf())
		if err != nil {
			return nil, fmt.Errorf("list_match.one_of: %w", err)
		}
		return func(v any) bool {
			list, _ := v.([]any)
			for _, e := range list {
				if elem(e) {
					return true
				}
			}
			return false
		}, nil
	case *matcherv3.ValueMatcher_OrMatch:
		var anyOf []valueMatch
		for i, c := range p.OrMatch.GetValueMatchers() {
			vm, err := compileValue(c)
			if err != nil {
				return nil, fmt.Errorf("or_match %d: %w", i, err)
			}
			anyOf = append(anyOf, vm)
		}
		return func(v any) bool {
			for _, vm := range anyOf {
				if vm(v) {
					return true
				}
			}
			return false
		}, nil
	case nil:
		return nil, fmt.Errorf("empty value matcher")
	default:
		return nil, fmt.Errorf("unsupported value matcher %s", oneofName(m))
	}
}
