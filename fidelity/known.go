package fidelity

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

// Side says which generator emits a fact the other does not.
type Side string

// Sides of a difference.
const (
	OnlyIstio   Side = "istio"   // Istio emits it, meshlab does not
	OnlyMeshlab Side = "meshlab" // meshlab emits it, Istio does not
)

// Known is one listed difference: every fact it matches is expected on one side only.
type Known struct {
	ID string `json:"id"`
	// Proxy is a glob over the proxy id (waypoint/NS/NAME, sidecar/NS/POD, ztunnel); empty means any.
	Proxy string `json:"proxy,omitempty"`
	// Fixture is a glob over fixture names; empty means any.
	Fixture string `json:"fixture,omitempty"`
	// Side is istio or meshlab; empty means either.
	Side Side `json:"side,omitempty"`
	// Facts are globs over the normalized facts ("*" matches any run of characters); one is enough.
	Facts  []string `json:"facts"`
	Reason string   `json:"reason"`
	// Kind classifies the entry for docs/fidelity.md: not-implemented, form (same meaning, other shape),
	// 2023-form (meshlab keeps the per-service-account waypoint), bug (a meshlab bug not yet fixed).
	Kind string `json:"kind"`

	res []*regexp.Regexp
}

// KnownPath is the machine-readable list of differences (docs/fidelity.md is generated from it).
func KnownPath() string { return filepath.Join(TestdataDir(), "known-differences.yaml") }

// LoadKnown reads the known differences.
func LoadKnown() ([]*Known, error) {
	data, err := os.ReadFile(KnownPath())
	if err != nil {
		return nil, err
	}
	var doc struct {
		Differences []*Known `json:"differences"`
	}
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", KnownPath(), err)
	}
	seen := map[string]bool{}
	for _, k := range doc.Differences {
		if k.ID == "" || k.Reason == "" || len(k.Facts) == 0 {
			return nil, fmt.Errorf("%s: entry %q needs id, facts and reason", KnownPath(), k.ID)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("%s: duplicate id %q", KnownPath(), k.ID)
		}
		seen[k.ID] = true
		if k.Side != "" && k.Side != OnlyIstio && k.Side != OnlyMeshlab {
			return nil, fmt.Errorf("%s: %s: side %q is neither istio nor meshlab", KnownPath(), k.ID, k.Side)
		}
		for _, g := range k.Facts {
			k.res = append(k.res, glob(g))
		}
	}
	return doc.Differences, nil
}

func glob(g string) *regexp.Regexp {
	parts := strings.Split(g, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
}

// Matches reports whether the entry explains fact, seen only on side, for proxy in fixture.
func (k *Known) Matches(fixture, proxy string, side Side, fact string) bool {
	if k.Side != "" && k.Side != side {
		return false
	}
	if k.Proxy != "" && !glob(k.Proxy).MatchString(proxy) {
		return false
	}
	if k.Fixture != "" && !glob(k.Fixture).MatchString(fixture) {
		return false
	}
	for _, re := range k.res {
		if re.MatchString(fact) {
			return true
		}
	}
	return false
}

// Diff is a fact one generator emits and the other does not.
type Diff struct {
	Fixture, Proxy string
	Side           Side
	Fact           string
}

func (d Diff) String() string {
	return fmt.Sprintf("%s %s only-%s: %s", d.Fixture, d.Proxy, d.Side, d.Fact)
}

// Compare returns the facts on one side only.
func Compare(fixture, proxy string, istio, meshlab Facts) []Diff {
	var out []Diff
	for _, f := range istio.Sorted() {
		if !meshlab[f] {
			out = append(out, Diff{fixture, proxy, OnlyIstio, f})
		}
	}
	for _, f := range meshlab.Sorted() {
		if !istio[f] {
			out = append(out, Diff{fixture, proxy, OnlyMeshlab, f})
		}
	}
	return out
}

// DocsSection renders the list of differences for docs/fidelity.md.
func DocsSection(known []*Known) string {
	var b strings.Builder
	b.WriteString("| id | kind | proxies | side | facts | reason |\n|---|---|---|---|---|---|\n")
	for _, k := range known {
		proxy, side := k.Proxy, string(k.Side)
		if proxy == "" {
			proxy = "all"
		}
		if k.Fixture != "" {
			proxy += " (fixture " + k.Fixture + ")"
		}
		if side == "" {
			side = "either"
		} else {
			side = "only " + side
		}
		facts := make([]string, len(k.Facts))
		for i, f := range k.Facts {
			facts[i] = "`" + strings.ReplaceAll(f, "|", `\|`) + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", k.ID, k.Kind, strings.ReplaceAll(proxy, "|", `\|`), side,
			strings.Join(facts, "<br>"), strings.ReplaceAll(strings.TrimSpace(k.Reason), "\n", " "))
	}
	return b.String()
}
