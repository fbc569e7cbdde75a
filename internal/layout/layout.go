package layout

import (
	"fmt"
	"sort"
	"strings"
)

// Module is meshlab's module path; rules and graphs use paths relative to it.
const Module = "github.com/meshlab/meshlab"

// Rule forbids packages under From to depend (directly or not) on packages under To, except those under
// Except.
type Rule struct {
	From, To []string // folder prefixes, relative to the module ("dataplane", "cli"); "*" is every package
	Except   []string // packages under From the rule does not apply to
	Why      string
}

// Rules are meshlab's layout: the two planes share an API (api/, identity/) and never each other; the
// terminal UI and command tree are used by nothing but the binary; the libraries a test or tool builds on
// never import a command; cmd/meshlab is only the command tree.
var Rules = []Rule{
	{From: []string{"dataplane"}, To: []string{"controlplane"}, Why: "the planes share api/ and identity/, not each other (as Istio's pkg/workloadapi and ztunnel's proto/)"},
	{From: []string{"controlplane"}, To: []string{"dataplane"}, Why: "the planes share api/ and identity/, not each other"},
	{From: []string{"*"}, To: []string{"cli"}, Except: []string{"cli", "cmd"}, Why: "libraries do not depend on the command tree or the terminal UI (log.Logger is the seam)"},
	{From: []string{"api", "identity", "log", "version", "internal"}, To: []string{"controlplane", "dataplane", "cluster", "scenarios", "labs", "lifecycle", "manifests", "meshlabenv"},
		Except: []string{"internal/layout"}, Why: "the shared foundations import no component"},
	{From: []string{"log"}, To: []string{"*"}, Why: "log is the seam every package may import: it imports nothing of meshlab (kind's log package)"},
	{From: []string{"bookinfo", "echo"}, To: []string{"controlplane", "dataplane", "cluster", "scenarios", "manifests"}, Why: "the sample applications know nothing of the mesh they run in"},
	{From: []string{"controlplane", "dataplane"}, To: []string{"manifests", "lifecycle", "cluster", "scenarios", "labs", "meshlabenv", "bench", "diagnose"},
		Why: "components do not know how the lab deploys or tests them; manifests read the components' constants, not the reverse"},
}

// DirectRule forbids From's direct imports of module packages other than those under Allow.
type DirectRule struct {
	From  string
	Allow []string
	Why   string
}

// DirectRules constrain direct imports.
var DirectRules = []DirectRule{
	{From: "cmd/meshlab", Allow: []string{"cli"}, Why: "main only runs the command tree"},
}

// Violation is one import that breaks a rule: From imports Via, which is or depends on To.
type Violation struct {
	From, Via, To, Why string
}

func (v Violation) String() string {
	if v.Via == v.To {
		return fmt.Sprintf("%s imports %s: %s", v.From, v.To, v.Why)
	}
	return fmt.Sprintf("%s imports %s, which depends on %s: %s", v.From, v.Via, v.To, v.Why)
}

// under reports whether pkg is the folder prefix or below it.
func under(pkg string, prefixes []string) bool {
	for _, p := range prefixes {
		if p == "*" || pkg == p || strings.HasPrefix(pkg, p+"/") {
			return true
		}
	}
	return false
}

// Check returns every violation in a graph of module-relative package paths: imports maps each package to
// its direct imports, deps to everything it depends on (transitively); both hold module packages only.
// A violation is reported at the import that brings it in: the forbidden package itself, or the first
// package outside the rule's From that depends on it (an edge inside From is reported where it leaves).
func Check(imports, deps map[string][]string) []Violation {
	var out []Violation
	for pkg, direct := range imports {
		for _, r := range Rules {
			if !under(pkg, r.From) || under(pkg, r.Except) {
				continue
			}
			for _, d := range direct {
				if under(d, r.To) {
					out = append(out, Violation{From: pkg, Via: d, To: d, Why: r.Why})
					continue
				}
				if under(d, r.From) && !under(d, r.Except) {
					continue // d is checked itself
				}
				for _, dd := range deps[d] {
					if under(dd, r.To) {
						out = append(out, Violation{From: pkg, Via: d, To: dd, Why: r.Why})
					}
				}
			}
		}
	}
	for _, r := range DirectRules {
		for _, d := range imports[r.From] {
			if !under(d, r.Allow) {
				out = append(out, Violation{From: r.From, Via: d, To: d, Why: r.Why})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].String() < out[j].String()
	})
	return dedupe(out)
}

func dedupe(vs []Violation) []Violation {
	var out []Violation
	for i, v := range vs {
		if i == 0 || v != vs[i-1] {
			out = append(out, v)
		}
	}
	return out
}
