package l7

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// stringMatch is a compiled envoy.type.matcher.v3.StringMatcher.
type stringMatch struct {
	kind       string // exact, prefix, suffix, contains, regex
	value      string
	re         *regexp.Regexp
	ignoreCase bool
}

func compileRegex(m *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	if err := checkFields(m, "regex", "google_re2"); err != nil {
		return nil, err
	}
	// Envoy's safe_regex must match the whole input (RE2 full match).
	re, err := regexp.Compile("^(?:" + m.GetRegex() + ")$")
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", m.GetRegex(), err)
	}
	return re, nil
}

func compileString(m *matcherv3.StringMatcher) (*stringMatch, error) {
	if m == nil {
		return nil, fmt.Errorf("empty string matcher")
	}
	if err := checkFields(m, "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"); err != nil {
		return nil, err
	}
	s := &stringMatch{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s.kind, s.value = "exact", p.Exact
	case *matcherv3.StringMatcher_Prefix:
		s.kind, s.value = "prefix", p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		s.kind, s.value = "suffix", p.Suffix
	case *matcherv3.StringMatcher_Contains:
		s.kind, s.value = "contains", p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex)
		if err != nil {
			return nil, err
		}
		s.kind, s.re = "regex", re
	default:
		return nil, fmt.Errorf("string matcher without a pattern")
	}
	if s.ignoreCase {
		s.value = strings.ToLower(s.value)
	}
	return s, nil
}

func (s *stringMatch) match(v string) bool {
	if s.ignoreCase && s.kind != "regex" {
		v = strings.ToLower(v)
	}
	switch s.kind {
	case "exact":
		return v == s.value
	case "prefix":
		return strings.HasPrefix(v, s.value)
	case "suffix":
		return strings.HasSuffix(v, s.value)
	case "contains":
		return strings.Contains(v, s.value)
	case "regex":
		return s.re.MatchString(v)
	}
	return false
}

// headerMatch is a compiled route.v3.HeaderMatcher.
type headerMatch struct {
	name         string // lower case; pseudo headers keep their colon
	str          *stringMatch
	present      *bool
	invert       bool
	missingEmpty bool
}

func compileHeader(h *routev3.HeaderMatcher) (*headerMatch, error) {
	if err := checkFields(h, "name", "string_match", "exact_match", "prefix_match", "suffix_match", "contains_match",
		"safe_regex_match", "present_match", "invert_match", "treat_missing_header_as_empty"); err != nil {
		return nil, fmt.Errorf("header %q: %w", h.GetName(), err)
	}
	m := &headerMatch{name: strings.ToLower(h.GetName()), invert: h.GetInvertMatch(), missingEmpty: h.GetTreatMissingHeaderAsEmpty()}
	var err error
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		m.str, err = compileString(s.StringMatch)
	case *routev3.HeaderMatcher_ExactMatch:
		m.str = &stringMatch{kind: "exact", value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		m.str = &stringMatch{kind: "prefix", value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		m.str = &stringMatch{kind: "suffix", value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		m.str = &stringMatch{kind: "contains", value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		var re = new(stringMatch)
		re.kind = "regex"
		re.re, err = compileRegex(s.SafeRegexMatch)
		m.str = re
	case *routev3.HeaderMatcher_PresentMatch:
		p := s.PresentMatch
		m.present = &p
	case nil:
		// No specifier: Envoy treats it as a presence match.
		p := true
		m.present = &p
	}
	if err != nil {
		return nil, fmt.Errorf("header %q: %w", h.GetName(), err)
	}
	return m, nil
}

// headerValue reads a header the way Envoy sees it: pseudo headers map onto the request line; repeated
// headers are joined with commas.
func headerValue(r *http.Request, name string) (string, bool) {
	switch name {
	case ":method":
		return r.Method, true
	case ":authority", "host":
		return r.Host, r.Host != ""
	case ":path":
		return r.URL.RequestURI(), true
	case ":scheme":
		return "http", true
	}
	vs, ok := r.Header[http.CanonicalHeaderKey(name)]
	if !ok {
		return "", false
	}
	return strings.Join(vs, ","), true
}

func (m *headerMatch) match(r *http.Request) bool {
	v, ok := headerValue(r, m.name)
	var res bool
	switch {
	case m.present != nil:
		res = ok == *m.present
	case !ok && !m.missingEmpty:
		// A missing header never matches a value matcher, even inverted (Envoy's rule).
		return false
	default:
		res = m.str.match(v)
	}
	if m.invert {
		return !res
	}
	return res
}

// String spells the matcher as Envoy's config does: "exact jason", "prefix /api", "regex v[12]".
func (s *stringMatch) String() string {
	v := s.value
	if s.kind == "regex" {
		v = strings.TrimSuffix(strings.TrimPrefix(s.re.String(), "^(?:"), ")$")
	}
	out := s.kind + " " + v
	if s.ignoreCase {
		out += " (ignoring case)"
	}
	return out
}

// String spells the header matcher: "exact jason", "present", "not exact jason".
func (m *headerMatch) String() string {
	var out string
	switch {
	case m.present != nil && *m.present:
		out = "present"
	case m.present != nil:
		out = "absent"
	default:
		out = m.str.String()
	}
	if m.invert {
		out = "not " + out
	}
	return out
}
