package l7

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// headerMutation is a compiled pair of headers_to_add / headers_to_remove lists at one level (route or
// weighted cluster). Envoy's HeaderParser removes first, then adds in order.
type headerMutation struct {
	remove []string // canonical names
	add    []headerAdd
}

type headerAdd struct {
	name, value string // canonical name
	action      corev3.HeaderValueOption_HeaderAppendAction
	keepEmpty   bool
}

// compileHeaderMutation returns nil when both lists are empty, so routes without header manipulation
// pay only a nil check.
func compileHeaderMutation(add []*corev3.HeaderValueOption, remove []string) (*headerMutation, error) {
	if len(add) == 0 && len(remove) == 0 {
		return nil, nil
	}
	m := &headerMutation{}
	for _, name := range remove {
		if err := modifiableHeader(name); err != nil {
			return nil, err
		}
		m.remove = append(m.remove, http.CanonicalHeaderKey(name))
	}
	for i, o := range add {
		if err := checkFields(o, "header", "append", "append_action", "keep_empty_value"); err != nil {
			return nil, fmt.Errorf("header %d: %w", i, err)
		}
		h := o.GetHeader()
		if err := checkFields(h, "key", "value"); err != nil {
			return nil, fmt.Errorf("header %d: %w", i, err)
		}
		if err := modifiableHeader(h.GetKey()); err != nil {
			return nil, err
		}
		// Envoy's header values are format strings (%VAR%); meshlab supports literal values only, and "%%"
		// is a literal percent sign.
		v := h.GetValue()
		if strings.Contains(strings.ReplaceAll(v, "%%", ""), "%") {
			return nil, fmt.Errorf("header %q: unsupported command operator in value %q", h.GetKey(), v)
		}
		v = strings.ReplaceAll(v, "%%", "%")
		a := headerAdd{name: http.CanonicalHeaderKey(h.GetKey()), value: v, action: o.GetAppendAction(), keepEmpty: o.GetKeepEmptyValue()}
		if ap := o.GetAppend(); ap != nil {
			// The deprecated boolean wins over append_action when set (Envoy rejects both together).
			a.action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			if ap.GetValue() {
				a.action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			}
		}
		m.add = append(m.add, a)
	}
	return m, nil
}

// modifiableHeader refuses what Envoy refuses to mutate: pseudo headers and Host.
func modifiableHeader(name string) error {
	if name == "" {
		return fmt.Errorf("empty header name")
	}
	if strings.HasPrefix(name, ":") || strings.EqualFold(name, "host") {
		return fmt.Errorf("header %q cannot be modified", name)
	}
	return nil
}

// apply mutates h as Envoy does: removals, then each addition by its append action.
func (m *headerMutation) apply(h http.Header) {
	if m == nil {
		return
	}
	for _, k := range m.remove {
		delete(h, k)
	}
	for _, a := range m.add {
		if a.value == "" && !a.keepEmpty {
			continue
		}
		_, exists := h[a.name]
		switch a.action {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			h[a.name] = append(h[a.name], a.value)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if !exists {
				h[a.name] = []string{a.value}
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h[a.name] = []string{a.value}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if exists {
				h[a.name] = []string{a.value}
			}
		}
	}
}

// regexRewrite is a compiled RegexMatchAndSubstitute: every match in the path (query excluded) is
// replaced, RE2 GlobalReplace style, with \N back references.
type regexRewrite struct {
	re  *regexp.Regexp
	sub string // in Go's Expand syntax
}

func compileRegexRewrite(m *matcherv3.RegexMatchAndSubstitute) (*regexRewrite, error) {
	if err := checkFields(m, "pattern", "substitution"); err != nil {
		return nil, err
	}
	if err := checkFields(m.GetPattern(), "regex", "google_re2"); err != nil {
		return nil, fmt.Errorf("pattern: %w", err)
	}
	re, err := regexp.Compile(m.GetPattern().GetRegex())
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", m.GetPattern().GetRegex(), err)
	}
	// Translate RE2's \N into Go's ${N}; a literal $ becomes $$.
	var b strings.Builder
	s := m.GetSubstitution()
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '$':
			b.WriteString("$$")
		case c == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			b.WriteString("${" + string(s[i+1]) + "}")
			i++
		case c == '\\' && i+1 < len(s) && s[i+1] == '\\':
			b.WriteByte('\\')
			i++
		default:
			b.WriteByte(c)
		}
	}
	return &regexRewrite{re: re, sub: b.String()}, nil
}

func (r *regexRewrite) apply(path string) string { return r.re.ReplaceAllString(path, r.sub) }

// redirectAction is a compiled RedirectAction.
type redirectAction struct {
	status    int
	scheme    string // "" keeps the request's
	host      string // "" keeps the request's
	port      string // ":N" or ""
	path      string
	hasPath   bool
	pathQuery bool // path_redirect carries its own query
	prefix    string
	hasPrefix bool
	regex     *regexRewrite
	stripQ    bool
}

var redirectCodes = map[routev3.RedirectAction_RedirectResponseCode]int{
	routev3.RedirectAction_MOVED_PERMANENTLY:  http.StatusMovedPermanently,
	routev3.RedirectAction_FOUND:              http.StatusFound,
	routev3.RedirectAction_SEE_OTHER:          http.StatusSeeOther,
	routev3.RedirectAction_TEMPORARY_REDIRECT: http.StatusTemporaryRedirect,
	routev3.RedirectAction_PERMANENT_REDIRECT: http.StatusPermanentRedirect,
}

func compileRedirect(a *routev3.RedirectAction) (*redirectAction, error) {
	if err := checkFields(a, "https_redirect", "scheme_redirect", "host_redirect", "port_redirect", "path_redirect",
		"prefix_rewrite", "regex_rewrite", "response_code", "strip_query"); err != nil {
		return nil, err
	}
	d := &redirectAction{host: a.GetHostRedirect(), stripQ: a.GetStripQuery()}
	var ok bool
	if d.status, ok = redirectCodes[a.GetResponseCode()]; !ok {
		return nil, fmt.Errorf("unknown response_code %v", a.GetResponseCode())
	}
	switch s := a.GetSchemeRewriteSpecifier().(type) {
	case *routev3.RedirectAction_HttpsRedirect:
		if s.HttpsRedirect {
			d.scheme = "https"
		}
	case *routev3.RedirectAction_SchemeRedirect:
		d.scheme = strings.ToLower(s.SchemeRedirect)
	}
	if p := a.GetPortRedirect(); p != 0 {
		d.port = ":" + strconv.FormatUint(uint64(p), 10)
	}
	switch p := a.GetPathRewriteSpecifier().(type) {
	case *routev3.RedirectAction_PathRedirect:
		// An empty path_redirect (Istio always sets the field) keeps the request's path.
		if p.PathRedirect != "" {
			d.path, d.hasPath, d.pathQuery = p.PathRedirect, true, strings.Contains(p.PathRedirect, "?")
		}
	case *routev3.RedirectAction_PrefixRewrite:
		d.prefix, d.hasPrefix = p.PrefixRewrite, true
	case *routev3.RedirectAction_RegexRewrite:
		re, err := compileRegexRewrite(p.RegexRewrite)
		if err != nil {
			return nil, fmt.Errorf("regex_rewrite: %w", err)
		}
		d.regex = re
	}
	return d, nil
}

// location builds the redirect URL as Envoy does: scheme://host[:port]path, keeping the request's parts
// that are not replaced, dropping the request's port when a new port or host is given or when the
// scheme changes away from the port's default.
func (rt *Route) location(r *http.Request) string {
	d := rt.Redirect
	reqScheme := r.Header.Get("X-Forwarded-Proto")
	if reqScheme == "" {
		reqScheme = "http"
	}
	scheme := reqScheme
	if d.scheme != "" {
		scheme = d.scheme
	}
	host := d.host
	if host == "" {
		host = requestHostForRedirect(r.Host, reqScheme, scheme, d.port)
	}
	path, query := requestPath(r), r.URL.RawQuery
	switch {
	case d.hasPath:
		path = d.path
		if d.pathQuery {
			query = ""
		}
	case d.hasPrefix:
		path = d.prefix + path[rt.matchedLen(path):]
	case d.regex != nil:
		path = d.regex.apply(path)
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if d.stripQ && !d.pathQuery {
		query = ""
	}
	if query != "" || (r.URL.ForceQuery && !d.stripQ && !d.pathQuery) {
		path += "?" + query
	}
	return scheme + "://" + host + d.port + path
}

// requestHostForRedirect is Envoy's processRequestHost.
func requestHostForRedirect(host, reqScheme, newScheme, newPort string) string {
	if host == "" {
		return ""
	}
	var end int
	if host[0] == '[' {
		end = strings.LastIndex(host, "]:")
		if end >= 0 {
			end++
		}
	} else {
		end = strings.LastIndexByte(host, ':')
	}
	if end < 0 {
		return host
	}
	port := host[end:]
	remove := newPort != ""
	if newScheme != reqScheme {
		remove = remove || (reqScheme == "https" && port == ":443") || (reqScheme == "http" && port == ":80")
	}
	if remove {
		return host[:end]
	}
	return host
}

// requestPath is the path the route matched against (escaped form, no query).
func requestPath(r *http.Request) string {
	if r.URL.RawPath != "" {
		return r.URL.RawPath
	}
	return r.URL.Path
}

// matchedLen is how much of path the route's path matcher consumed, for prefix_rewrite: the prefix for
// prefix and path_separated_prefix routes, the whole path otherwise.
func (rt *Route) matchedLen(path string) int {
	switch rt.pathKind {
	case "prefix", "separated":
		if len(rt.path) <= len(path) {
			return len(rt.path)
		}
	}
	return len(path)
}

// upstreamPath applies the route's prefix_rewrite or regex_rewrite; ok is false when the route has none.
func (rt *Route) upstreamPath(r *http.Request) (path, rawPath string, ok bool) {
	if !rt.hasPrefixRewrite && rt.regexRewrite == nil {
		return "", "", false
	}
	p := requestPath(r)
	if rt.hasPrefixRewrite {
		p = rt.prefixRewrite + p[rt.matchedLen(p):]
	} else {
		p = rt.regexRewrite.apply(p)
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	unescaped, err := url.PathUnescape(p)
	if err != nil {
		return p, "", true
	}
	if unescaped == p {
		return p, "", true
	}
	return unescaped, p, true
}

// answerRedirect sends the route's redirect.
func (rt *Route) answerRedirect(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Location", rt.location(r))
	h.Set("Content-Length", "0")
	rt.respHeaders.apply(h)
	w.WriteHeader(rt.Redirect.status)
}
