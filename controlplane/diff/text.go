package diff

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// maxTextValue bounds a value printed in the text report; -o json prints values whole.
const maxTextValue = 160

var changeMark = map[Change]string{Added: "+", Removed: "-", Changed: "~"}

// WriteText prints the report for a reader: each changed proxy with its resources (+ added, - removed,
// ~ changed, with the changed fields as PATH: OLD -> NEW), then the untouched proxies and a summary.
func WriteText(w io.Writer, r *Report) error {
	var b strings.Builder
	for _, p := range r.Proxies {
		fmt.Fprintf(&b, "%s %s (%s)\n", changeMark[p.Change], p.Proxy, p.Change)
		for _, res := range p.Resources {
			fmt.Fprintf(&b, "  %s %s %s\n", changeMark[res.Change], res.Type, res.Name)
			for _, f := range res.Fields {
				fmt.Fprintf(&b, "      %s: %s -> %s\n", f.Path, textValue(f.Old), textValue(f.New))
			}
		}
	}
	if len(r.Proxies) > 0 {
		b.WriteByte('\n')
	}
	if len(r.Untouched) > 0 {
		fmt.Fprintf(&b, "untouched (%d): %s\n", len(r.Untouched), strings.Join(r.Untouched, ", "))
	}
	switch n := len(r.Proxies); n {
	case 0:
		b.WriteString("no proxy config changes\n")
	default:
		fmt.Fprintf(&b, "%d of %d proxies change\n", n, n+len(r.Untouched))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func textValue(v any) string {
	if v == nil {
		return "(none)"
	}
	js, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := string(js)
	if len(s) > maxTextValue {
		s = s[:maxTextValue] + "…"
	}
	return s
}
