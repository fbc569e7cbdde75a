package echo

import "strings"

// PeerIdentity returns the identity of the peer the nearest proxy saw, from an X-Forwarded-Client-Cert
// header: the URI (a SPIFFE ID in a mesh) of its last element, the one the proxy next to the app appended
// for the mTLS connection it terminated. In a mesh the app itself only sees plaintext, so this header is
// how it learns who called. It returns "" when the header is absent or names no URI.
//
// The header is comma-separated elements of semicolon-separated KEY=VALUE pairs; a value may be
// double-quoted, and commas and semicolons inside quotes do not separate (Envoy's format).
func PeerIdentity(xfcc string) string {
	elems := splitOutsideQuotes(xfcc, ',')
	if len(elems) == 0 {
		return ""
	}
	for _, pair := range splitOutsideQuotes(elems[len(elems)-1], ';') {
		k, v, ok := strings.Cut(pair, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "URI") {
			return unquote(strings.TrimSpace(v))
		}
	}
	return ""
}

// splitOutsideQuotes splits s at sep where sep is not inside double quotes; a backslash escapes the next
// character inside quotes. Empty parts are dropped.
func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	quoted, escaped, start := false, false, 0
	add := func(p string) {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			add(s[start:i])
			start = i + 1
		}
	}
	add(s[start:])
	return parts
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		v = strings.ReplaceAll(v, `\"`, `"`)
	}
	return v
}
