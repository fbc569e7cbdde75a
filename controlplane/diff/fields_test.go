package diff_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/diff"
)

func tree(t *testing.T, js string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func toJSON(v any) string {
	js, _ := json.Marshal(v)
	return string(js)
}

func TestFields(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
		want           []string // PATH: OLD -> NEW
	}{
		{"equal", `{"a":[1,2],"b":{"c":"x"}}`, `{"a":[1,2],"b":{"c":"x"}}`, nil},
		{"scalar", `{"a":{"b":1}}`, `{"a":{"b":2}}`, []string{`a.b: 1 -> 2`}},
		{"added and removed keys", `{"a":1}`, `{"b":true}`, []string{`a: 1 -> null`, `b: null -> true`}},
		{"odd keys quoted", `{"m":{"10.0.0.1":1}}`, `{"m":{"10.0.0.1":2}}`, []string{`m["10.0.0.1"]: 1 -> 2`}},
		{"element inserted at the top", `{"l":["b","c"]}`, `{"l":["a","b","c"]}`, []string{`l[0]: null -> "a"`}},
		{"named elements by name", `{"l":[{"name":"x","v":1},{"name":"y","v":1}]}`, `{"l":[{"name":"y","v":2},{"name":"x","v":1}]}`,
			[]string{`l[name=y].v: 1 -> 2`}},
		{"named element removed", `{"l":[{"name":"x"},{"name":"y"}]}`, `{"l":[{"name":"x"}]}`, []string{`l[name=y]: {"name":"y"} -> null`}},
		{"type change", `{"a":"1"}`, `{"a":{"b":1}}`, []string{`a: "1" -> {"b":1}`}},
		{"big numbers stay exact", `{"n":18446744073709551615}`, `{"n":18446744073709551614}`, []string{`n: 18446744073709551615 -> 18446744073709551614`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range diff.Fields(tree(t, tc.old), tree(t, tc.new)) {
				got = append(got, f.Path+": "+toJSON(f.Old)+" -> "+toJSON(f.New))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Fields =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
