package diff

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/go-cmp/cmp"
)

// Fields lists where two JSON trees (decoded with json.Number numbers) differ, as paths into the JSON
// `meshlab render` prints: `virtualHosts[name=inbound|http|9080].routes[0].route.weightedClusters
// .clusters[name=inbound-vip|9080|http/v1|reviews.default.svc.cluster.local].weight`, with the old and
// new values.
//
// The walk is go-cmp's, with a Reporter collecting the leaves that differ: go-cmp aligns lists by a
// minimal edit script, so one route inserted at the top of a list reads as one addition rather than as
// every later route changed, and its path steps say which side each index belongs to. protocmp would
// compare the messages themselves, but in proto field names (snake_case) and with Any values opaque to a
// path; the JSON trees are what the user reads in `meshlab render`, for Envoy and ztunnel alike. Lists
// whose elements all carry a distinct "name" (listeners' filter chains and filters, virtual hosts,
// weighted clusters, ...) are compared by name instead of by position: a path names the element, and
// the result does not depend on how an edit script breaks ties.
func Fields(old, new any) []FieldChange {
	r := &fieldReporter{}
	cmp.Equal(old, new, cmp.Reporter(r), byName)
	return r.changes
}

// byName compares lists of named objects as maps from name to object.
var byName = cmp.FilterValues(func(x, y []any) bool { return named(x) && named(y) },
	cmp.Transformer(byNameTransformer, func(s []any) map[string]any {
		m := make(map[string]any, len(s))
		for _, e := range s {
			m[e.(map[string]any)["name"].(string)] = e
		}
		return m
	}))

const byNameTransformer = "byName"

// named reports whether every element of s is an object with a "name" string, no two alike.
func named(s []any) bool {
	seen := make(map[string]bool, len(s))
	for _, e := range s {
		obj, ok := e.(map[string]any)
		if !ok {
			return false
		}
		name, ok := obj["name"].(string)
		if !ok || name == "" || seen[name] {
			return false
		}
		seen[name] = true
	}
	return len(s) > 0
}

type fieldReporter struct {
	path    cmp.Path
	changes []FieldChange
}

func (r *fieldReporter) PushStep(ps cmp.PathStep) { r.path = append(r.path, ps) }
func (r *fieldReporter) PopStep()                 { r.path = r.path[:len(r.path)-1] }

func (r *fieldReporter) Report(rs cmp.Result) {
	if rs.Equal() {
		return
	}
	vx, vy := r.path.Last().Values()
	fc := FieldChange{Path: formatPath(r.path)}
	if v := jsonValue(vx); v != nil {
		fc.Old = v
	}
	if v := jsonValue(vy); v != nil {
		fc.New = v
	}
	r.changes = append(r.changes, fc)
}

// jsonValue returns v as the JSON value it holds, or nil when v is absent.
func jsonValue(v reflect.Value) any {
	if !v.IsValid() || (v.Kind() == reflect.Interface && v.IsNil()) {
		return nil
	}
	return v.Interface()
}

var identifier = regexp.MustCompile(`^[A-Za-z_@][A-Za-z0-9_@]*$`)

// formatPath writes a cmp path over JSON trees as a JSON path: .field, ["odd key"], [index], and
// [name=NAME] for an element of a list compared by name.
func formatPath(p cmp.Path) string {
	var b strings.Builder
	inByName := false
	for _, step := range p {
		switch s := step.(type) {
		case cmp.Transform:
			inByName = s.Name() == byNameTransformer
			continue
		case cmp.MapIndex:
			key := s.Key().String()
			switch {
			case inByName:
				b.WriteString("[name=" + key + "]")
			case identifier.MatchString(key):
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(key)
			default:
				b.WriteString("[" + strconv.Quote(key) + "]")
			}
		case cmp.SliceIndex:
			ix, iy := s.SplitKeys()
			if iy < 0 {
				iy = ix
			}
			b.WriteString("[" + strconv.Itoa(iy) + "]")
		default:
			continue // type assertions and the root step print nothing
		}
		inByName = false
	}
	if b.Len() == 0 {
		return "."
	}
	return b.String()
}
