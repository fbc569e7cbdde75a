package fidelity

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	istiolog "istio.io/istio/pkg/log"
)

var update = flag.Bool("update", false, "rewrite the generated list of differences in docs/fidelity.md")

func TestMain(m *testing.M) {
	EnableAmbient()
	for _, s := range istiolog.Scopes() { // istiod's logs would bury a failure's report
		s.SetOutputLevel(istiolog.NoneLevel)
	}
	os.Exit(m.Run())
}

const (
	docsBegin = "<!-- BEGIN known-differences (generated from fidelity/testdata/known-differences.yaml by `cd fidelity && go test -run TestDocs -update`) -->\n"
	docsEnd   = "<!-- END known-differences -->"
)

// TestDocs checks that docs/fidelity.md lists exactly the known differences.
func TestDocs(t *testing.T) {
	known, err := LoadKnown()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(TestdataDir(), "..", "..", "docs", "fidelity.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, docsBegin), strings.Index(doc, docsEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q ... %q", path, docsBegin, docsEnd)
	}
	want := doc[:i+len(docsBegin)] + DocsSection(known) + doc[j:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/fidelity.md's list of differences is stale: run `cd fidelity && go test -run TestDocs -update`")
}

// TestFidelity renders every fixture's proxies with Istio's generator and meshlab's and fails on any
// difference that fidelity/testdata/known-differences.yaml does not list, and on any listed difference that
// no longer occurs.
func TestFidelity(t *testing.T) {
	fixtures, err := LoadFixtures()
	if err != nil {
		t.Fatal(err)
	}
	known, err := LoadKnown()
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]int{}
	dump := os.Getenv("FIDELITY_DUMP") // a directory: write each proxy's facts and differences there
	allRan := true
	var proxies, facts int
	for _, fx := range fixtures {
		ran := t.Run(fx.Name, func(t *testing.T) {
			docs, err := fx.Docs()
			if err != nil {
				t.Fatal(err)
			}
			text, err := JoinYAML(docs)
			if err != nil {
				t.Fatal(err)
			}
			ml, err := NewMeshlab(text, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range ml.Warnings {
				t.Logf("meshlab: %s", w)
			}
			is := NewIstio(t, text)
			for _, id := range fx.Proxies {
				istioFacts, meshlabFacts := renderBoth(t, ml, is, id)
				proxies++
				facts += len(istioFacts) + len(meshlabFacts)
				diffs := Compare(fx.Name, id, istioFacts, meshlabFacts)
				var unlisted []string
				for _, d := range diffs {
					found := false
					for _, k := range known { // every entry that explains it counts as used
						if k.Matches(d.Fixture, d.Proxy, d.Side, d.Fact) {
							used[k.ID]++
							found = true
						}
					}
					if !found {
						unlisted = append(unlisted, d.String())
					}
				}
				if dump != "" {
					writeDump(t, dump, fx.Name, id, istioFacts, meshlabFacts, diffs)
				}
				if len(unlisted) > 0 {
					t.Errorf("%s: %d difference(s) not listed in fidelity/testdata/known-differences.yaml:\n  %s",
						id, len(unlisted), strings.Join(unlisted, "\n  "))
				}
			}
		})
		allRan = allRan && ran
	}
	t.Logf("compared %d fixtures, %d proxies, %d facts", len(fixtures), proxies, facts)
	if !allRan || testing.Short() || flag.Lookup("test.run").Value.String() != "" {
		return // a partial run cannot tell a stale entry
	}
	for _, k := range known {
		if used[k.ID] == 0 {
			t.Errorf("known difference %q no longer occurs: remove it from fidelity/testdata/known-differences.yaml", k.ID)
		}
	}
}

func renderBoth(t *testing.T, ml *Meshlab, is *Istio, id string) (istioFacts, meshlabFacts Facts) {
	t.Helper()
	if id == "ztunnel" {
		istioFacts, meshlabFacts = SummarizeIstioZtunnel(is.Addresses()), SummarizeMeshlabZtunnel(ml.Ztunnel())
		SummarizeIstioPeerAuthn(istioFacts, is.Policies())
		SummarizeMeshlabPeerAuthn(meshlabFacts, ml.Ztunnel().Policies)
		return istioFacts, meshlabFacts
	}
	p, err := ml.Proxy(id)
	if err != nil {
		t.Fatalf("meshlab %s: %v", id, err)
	}
	e, err := ml.Envoy(id)
	if err != nil {
		t.Fatalf("meshlab %s: %v", id, err)
	}
	meshlabFacts = SummarizeEnvoy(e)
	switch {
	case strings.HasPrefix(id, "waypoint/"):
		istioFacts = SummarizeEnvoy(is.Envoy(is.WaypointProxy(p.Namespace, p.Name, p.Pod, p.IPs)))
	case strings.HasPrefix(id, "gateway/"):
		istioFacts = SummarizeEnvoy(is.Envoy(is.GatewayProxy(p.Namespace, p.Name, p.Pod, p.IPs)))
	case strings.HasPrefix(id, "sidecar/"):
		wl := ml.Snap.Workload(p.Namespace, p.Name)
		istioFacts = SummarizeEnvoy(is.Envoy(is.SidecarProxy(p.Namespace, p.Name, p.ServiceAccount, p.IPs, wl.Labels)))
	default:
		t.Fatalf("unknown proxy id %q", id)
	}
	return istioFacts, meshlabFacts
}

func writeDump(t *testing.T, dir, fixture, id string, istioFacts, meshlabFacts Facts, diffs []Diff) {
	base := filepath.Join(dir, fixture, strings.ReplaceAll(id, "/", "_"))
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		t.Fatal(err)
	}
	var d []string
	for _, x := range diffs {
		d = append(d, string(x.Side)+"  "+x.Fact)
	}
	for name, lines := range map[string][]string{".istio": istioFacts.Sorted(), ".meshlab": meshlabFacts.Sorted(), ".diff": d} {
		if err := os.WriteFile(base+name, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
