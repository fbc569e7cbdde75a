package layout

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// graph reads the module's non-test import graph with `go list -deps`.
func graph(t *testing.T) (deps, imports map[string][]string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", Module+"/...")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	own := func(paths []string) []string {
		var rel []string
		for _, p := range paths {
			if r, ok := strings.CutPrefix(p, Module+"/"); ok {
				rel = append(rel, r)
			}
		}
		return rel
	}
	deps, imports = map[string][]string{}, map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath    string
			Imports, Deps []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rel, ok := strings.CutPrefix(p.ImportPath, Module+"/")
		if !ok {
			continue
		}
		deps[rel], imports[rel] = own(p.Deps), own(p.Imports)
	}
	return deps, imports
}

// TestLayout fails on any import that breaks a rule, naming the edge and the rule's reason.
func TestLayout(t *testing.T) {
	deps, imports := graph(t)
	if len(deps) < 50 || deps["cmd/meshlab"] == nil {
		t.Fatalf("go list found %d packages (cmd/meshlab: %v); is the test run inside the module?", len(deps), deps["cmd/meshlab"] != nil)
	}
	for _, v := range Check(imports, deps) {
		t.Error(v)
	}
}

// TestCheck shows that each kind of rule catches what it is meant to, on a made-up graph.
func TestCheck(t *testing.T) {
	imports := map[string][]string{
		"dataplane/ztunnel/app":  {"api/workloadapi", "controlplane/xds", "dataplane/hbone"}, // breaks: plane to plane
		"dataplane/hbone":        {"internal/bad"},                                           // breaks, through a package outside the plane
		"internal/bad":           {"controlplane/model"},                                     // breaks: foundation to component
		"controlplane/server":    {"api/xdstype", "controlplane/xds"},
		"controlplane/xds":       {"dataplane/l7"}, // breaks: plane to plane
		"scenarios":              {"cli/ui"},       // breaks: library to cli
		"cli/up":                 {"cli/ui", "lifecycle"},
		"log":                    {"api/mesh"}, // breaks: log imports nothing
		"api/mesh":               nil,
		"controlplane/configgen": {"manifests"},  // breaks: component to deployment
		"cmd/meshlab":            {"cli", "log"}, // breaks: main imports log directly
	}
	deps := map[string][]string{
		"internal/bad":     {"controlplane/model"},
		"controlplane/xds": {"dataplane/l7"},
	}
	want := []string{
		"cmd/meshlab imports log",
		"controlplane/configgen imports manifests",
		"controlplane/xds imports dataplane/l7",
		"dataplane/hbone imports internal/bad, which depends on controlplane/model",
		"dataplane/ztunnel/app imports controlplane/xds",
		"internal/bad imports controlplane/model",
		"log imports api/mesh",
		"scenarios imports cli/ui",
	}
	var got []string
	for _, v := range Check(imports, deps) {
		s := v.String()
		got = append(got, s[:strings.Index(s, ":")])
		if v.Why == "" {
			t.Errorf("%s: no reason given", v)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
