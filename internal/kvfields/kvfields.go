// Package kvfields reads the key=value fields of meshlab's access-log lines (ztunnel's, in the shape of Istio
// ztunnel's, and the waypoint's), whose values are bare words or Go-quoted strings.
package kvfields

import (
	"strconv"
	"strings"
)

// Parse reads space-separated key=value pairs from s, stopping at the first word that is not one (or a
// quoted value that does not end).
func Parse(s string) map[string]string {
	kv := map[string]string{}
	for {
		s = strings.TrimLeft(s, " ")
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" || strings.Contains(k, " ") {
			return kv
		}
		if strings.HasPrefix(v, `"`) {
			q, err := strconv.QuotedPrefix(v)
			if err != nil {
				return kv
			}
			kv[k], _ = strconv.Unquote(q)
			s = v[len(q):]
			continue
		}
		val, after, _ := strings.Cut(v, " ")
		kv[k], s = val, after
	}
}
