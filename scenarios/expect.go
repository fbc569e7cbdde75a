package scenarios

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// This file and the other expect*.go files hold the traffic and time assertions that both the built-in
// scenarios and `meshlab test` check files use: a request gets a status, body or headers; a path is
// allowed or denied; the connection was mutual TLS between given identities, over HBONE, through a
// waypoint or not; latency percentiles stay under budgets; a fault or retry shows in the numbers. Each
// sends its own traffic and waits only for what it reads (access-log lines being written); the caller
// has already waited for the config to converge.

// ResponseWant is what ExpectResponse checks in an answer.
type ResponseWant struct {
	// Status is the HTTP status; 0 accepts any HTTP answer (but not a failed connection).
	Status int
	// BodyRE is a regular expression the body must match (anywhere); "" accepts any body.
	BodyRE string
	// Headers maps a response header name to a regular expression one of its values must match; an
	// empty expression means the header must be absent.
	Headers map[string]string
}

// Validate compiles the expressions, so that a check file with a bad one is refused before it runs.
func (w ResponseWant) Validate() error {
	if w.Status != 0 && (w.Status < 100 || w.Status > 599) {
		return fmt.Errorf("status %d is not an HTTP status", w.Status)
	}
	if _, err := regexp.Compile(w.BodyRE); err != nil {
		return fmt.Errorf("body pattern: %v", err)
	}
	for name, re := range w.Headers {
		if _, err := regexp.Compile(re); err != nil {
			return fmt.Errorf("header %s pattern: %v", name, err)
		}
	}
	return nil
}

// String says what is wanted: "HTTP 200, body ~ /v1/, header x-envoy-upstream-service-time ~ /.+/".
func (w ResponseWant) String() string {
	parts := []string{"an HTTP answer"}
	if w.Status != 0 {
		parts[0] = "HTTP " + strconv.Itoa(w.Status)
	}
	if w.BodyRE != "" {
		parts = append(parts, fmt.Sprintf("body ~ /%s/", w.BodyRE))
	}
	for _, name := range sortedKeys(w.Headers) {
		if re := w.Headers[name]; re == "" {
			parts = append(parts, "no header "+strings.ToLower(name))
		} else {
			parts = append(parts, fmt.Sprintf("header %s ~ /%s/", strings.ToLower(name), re))
		}
	}
	return strings.Join(parts, ", ")
}

// CheckResponse compares one answer with want. It returns what was seen, in the terms of want (the
// status, the start of the body when a body pattern is set, the headers named), and whether it matches.
func CheckResponse(r Response, want ResponseWant) (seen string, ok bool) {
	if err := want.Validate(); err != nil {
		return "invalid expectation: " + err.Error(), false
	}
	if r.Status == 0 {
		return r.String(), false
	}
	ok = want.Status == 0 || r.Status == want.Status
	parts := []string{r.String()}
	if want.BodyRE != "" {
		if !regexp.MustCompile(want.BodyRE).MatchString(r.Body) {
			ok = false
		}
		parts = append(parts, "body "+quoteShort(r.Body, 120))
	}
	for _, name := range sortedKeys(want.Headers) {
		values := r.Header.Values(name)
		re := want.Headers[name]
		switch {
		case len(values) == 0:
			parts = append(parts, "no header "+strings.ToLower(name))
			ok = ok && re == ""
		default:
			parts = append(parts, fmt.Sprintf("header %s: %s", strings.ToLower(name), strings.Join(values, ", ")))
			ok = ok && re != "" && anyMatch(regexp.MustCompile(re), values)
		}
	}
	return strings.Join(parts, ", "), ok
}

func anyMatch(re *regexp.Regexp, values []string) bool {
	for _, v := range values {
		if re.MatchString(v) {
			return true
		}
	}
	return false
}

// quoteShort quotes s, cut to n bytes with the length noted.
func quoteShort(s string, n int) string {
	if len(s) <= n {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:n], len(s))
}

// ExpectResponse sends the request (req.Repeat times, default once) and records a failure for every
// answer that does not match want. It returns whether all matched.
func (t *T) ExpectResponse(what string, req Request, want ResponseWant) bool {
	return t.expectEach(what, req, want.String(), func(r Response) (string, bool) { return CheckResponse(r, want) })
}

// Authorization verdicts, as Classify... functions name them.
const (
	VerdictAllowed  = "allowed"
	VerdictDeniedL7 = "denied at L7"
	VerdictDeniedL4 = "denied at L4"
)

// rbacDeniedBody is the body of the 403 the L7 engine's RBAC filter answers, as Envoy's.
const rbacDeniedBody = "RBAC: access denied"

// Verdict classifies an answer by authorization: VerdictDeniedL7 for a 403 whose body is Envoy's
// "RBAC: access denied" (a waypoint or sidecar refused the request), VerdictDeniedL4 when no HTTP answer
// came because the connection was reset or closed (curl exit 56 or 52: the client's connect succeeds
// at its node's ztunnel, which resets it when the destination's ztunnel refuses the HBONE CONNECT), and
// VerdictAllowed for any other HTTP answer. Anything else (a timeout, the name did not resolve, a TLS
// error, the connection refused because nothing listens) proves no denial and is returned as curl's
// failure.
func Verdict(r Response) string {
	switch {
	case r.Status == 403 && strings.TrimSpace(r.Body) == rbacDeniedBody:
		return VerdictDeniedL7
	case r.Status != 0:
		return VerdictAllowed
	case r.ExitCode == 52 || r.ExitCode == 56:
		return VerdictDeniedL4
	}
	return r.String()
}

// ExpectAllowed sends the request (req.Repeat times, default once) and records a failure unless every
// answer is an HTTP answer that is not an authorization denial (any status but RBAC's 403).
func (t *T) ExpectAllowed(what string, req Request) bool {
	return t.expectEach(what, req, "allowed (an HTTP answer other than 403 "+strconv.Quote(rbacDeniedBody)+")", func(r Response) (string, bool) {
		v := Verdict(r)
		return verdictSeen(v, r), v == VerdictAllowed
	})
}

// ExpectDenied sends the request (req.Repeat times, default once) and records a failure unless every
// answer is a denial at layer: "L7" (403 "RBAC: access denied" from a waypoint or sidecar), "L4" (the
// connection reset, closed or timed out with no HTTP answer: ztunnel's policy) or "" for either. See
// Verdict for the exact rules.
func (t *T) ExpectDenied(what string, req Request, layer string) bool {
	var want []string
	switch strings.ToUpper(layer) {
	case "L7":
		want = []string{VerdictDeniedL7}
	case "L4":
		want = []string{VerdictDeniedL4}
	case "":
		want = []string{VerdictDeniedL7, VerdictDeniedL4}
	default:
		t.Fatalf("%s: layer %q is not L4, L7 or empty", what, layer)
	}
	expected := map[string]string{
		VerdictDeniedL7: "denied at L7 (HTTP 403 " + strconv.Quote(rbacDeniedBody) + ")",
		VerdictDeniedL4: "denied at L4 (connection reset or closed with no HTTP answer)",
	}
	var exp []string
	for _, v := range want {
		exp = append(exp, expected[v])
	}
	return t.expectEach(what, req, strings.Join(exp, " or "), func(r Response) (string, bool) {
		v := Verdict(r)
		for _, w := range want {
			if v == w {
				return verdictSeen(v, r), true
			}
		}
		return verdictSeen(v, r), false
	})
}

func verdictSeen(v string, r Response) string {
	seen := r.String()
	if r.Status != 0 && r.Body != "" {
		seen += " " + quoteShort(strings.TrimSpace(r.Body), 80)
	}
	if v == VerdictAllowed || v == VerdictDeniedL7 || v == VerdictDeniedL4 {
		return v + " (" + seen + ")"
	}
	return seen
}

// expectEach sends req.Repeat requests (default 1) and checks each answer; failures are grouped by what
// was seen so that 10 identical failures make one line: "3 of 10: HTTP 503".
func (t *T) expectEach(what string, req Request, expected string, check func(Response) (string, bool)) bool {
	n := max(req.Repeat, 1)
	var rs []Response
	if n == 1 {
		rs = []Response{t.Curl(req)}
	} else {
		rs = t.CurlN(req, n, min(n, 8))
	}
	bad := Counts{}
	var lastSeen string
	for _, r := range rs {
		seen, ok := check(r)
		if !ok {
			bad[seen]++
		}
		lastSeen = seen
	}
	if len(bad) == 0 {
		t.Logf("%s: %s", what, lastSeen)
		return true
	}
	seen := lastSeen
	if n > 1 || len(bad) > 1 {
		var lines []string
		for _, k := range sortedKeys(bad) {
			lines = append(lines, fmt.Sprintf("%d of %d: %s", bad[k], n, k))
		}
		seen = strings.Join(lines, "\n")
	}
	return t.expectTraffic(false, what, expected, seen)
}

// ByField classifies an answer by a field of its body: a top-level JSON field (bookinfo's "podname"),
// or a FIELD=value line as Istio's echo app writes (ServiceVersion=v2); the field name is matched
// exactly first, then ignoring case. An answer that is not 2xx is classified by its failure ("HTTP
// 503"), one without the field as "answer without FIELD".
func ByField(field string) func(Response) string {
	return func(r Response) string {
		if !r.OK() {
			return r.String()
		}
		if v, ok := bodyField(r.Body, field); ok {
			return v
		}
		return "answer without " + field
	}
}

func bodyField(body, field string) (string, bool) {
	var obj map[string]any
	if json.Unmarshal([]byte(body), &obj) == nil {
		if v, ok := obj[field]; ok {
			return fmt.Sprint(v), true
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if strings.EqualFold(k, field) {
				return fmt.Sprint(obj[k]), true
			}
		}
		return "", false
	}
	var folded string
	var found bool
	for _, line := range strings.Split(body, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		switch {
		case !ok:
		case k == field:
			return v, true
		case !found && strings.EqualFold(k, field):
			folded, found = v, true
		}
	}
	return folded, found
}
