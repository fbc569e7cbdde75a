package checks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/scenarios"
)

func writeCheck(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".txtar")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Bad input is found before anything runs, each problem named FILE:LINE.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"unknown-command", "# x\nrout waypoint/w echo\n", []string{":2: unknown command \"rout\""}},
		{"unknown-flag", "# x\nroute waypoint/w echo -weight a=1\n", []string{":2: route: unknown flag -weight"}},
		{"bad-weights", "# x\nroute waypoint/w echo -weights a=x\n", []string{":2: route -weights: want NAME=WEIGHT"}},
		{"bad-duration", "# x\n\nconverged -within soon\n", []string{":3: converged -within: want a duration"}},
		{"missing-flag", "# x\nconverged\n", []string{":2: converged: flag -within is required"}},
		{"too-few", "# x\nroute waypoint/w\n", []string{":2: route: want at least 2 argument(s), got 1"}},
		{"bad-proxy", "# x\ncluster pod/w c\n", []string{":2: proxy \"pod/w\": want waypoint/NAME"}},
		{"ztunnel", "# x\nroute ztunnel echo\n", []string{":2: proxy \"ztunnel\": ztunnel holds no routes"}},
		{"missing-file", "# x\napply app.yaml\n", []string{":2: apply: no file app.yaml"}},
		{"bad-yaml", "# x\napply a.yaml\n-- a.yaml --\nkind: Service\n", []string{":3: embedded file a.yaml", "lacks apiVersion"}},
		{"negated", "# x\n! route waypoint/w echo\n", []string{":2: route cannot be negated"}},
		{"quote", "# x\nroute 'waypoint/w echo\n", []string{":2: unterminated quoted argument"}},
		{"directive", "# meshlab: dataplane istio\nstdout x\n", []string{":1: dataplane \"istio\": want ambient, sidecar or none"}},
		{"empty", "# only prose\n", []string{"no commands"}},
		{"two-errors", "# x\nfoo\nbar\n", []string{":2: unknown command \"foo\"", ":3: unknown command \"bar\""}},
		{"Bad_Name", "# x\nstdout x\n", []string{"must be lowercase letters"}},
		{"bad-count", "# x\ncounts -want 503=half http://echo/\n", []string{":2: counts -want: HTTP 503: range \"half\" is not N%"}},
		{"count-no-class", "# x\ncounts -want =5 http://echo/\n", []string{":2: counts -want: want CLASS=RANGE"}},
		{"count-no-want", "# x\ncounts http://echo/\n", []string{":2: counts: flag -want is required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeCheck(t, tc.name, tc.text)
			_, err := Load([]string{path})
			if err == nil {
				t.Fatalf("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), path) {
				t.Errorf("error %q does not start with the file path", err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	path := writeCheck(t, "ok", `# Title line.
# meshlab: dataplane sidecar
apply a.yaml
! holds waypoint/w 'some word' # a comment
kubectl get pods -n other
stdout running
kubectl get pods -n $NS
-- a.yaml --
apiVersion: v1
kind: Service
metadata: {name: s, namespace: shared}
`)
	files, err := Load([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	f := files[0]
	if f.Title != "Title line." || f.Dataplane != DataplaneSidecar || len(f.Lines) != 5 {
		t.Fatalf("got %+v", f)
	}
	if l := f.Lines[1]; !l.Neg || l.N != 4 || strings.Join(l.Args, "|") != "holds|waypoint/w|some word" {
		t.Errorf("line: %+v", l)
	}
	if strings.Join(f.Shared, ",") != "other,shared" {
		t.Errorf("shared namespaces %v, want [other shared]", f.Shared)
	}
}

func TestExampleFilesParse(t *testing.T) {
	paths, err := Expand([]string{example})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Fatalf("example check files %v, want authz, canary and resilience", paths)
	}
	if _, err := Load(paths); err != nil {
		t.Fatal(err)
	}
	_, err = Load([]string{filepath.Join(example, "testdata", "syntax-error.txtar")})
	if err == nil || !strings.Contains(err.Error(), "syntax-error.txtar:3: unknown command \"rout\"") {
		t.Fatalf("syntax-error.txtar: %v", err)
	}
}

func TestParseCountWant(t *testing.T) {
	for in, want := range map[string]string{
		"503=50%":             "HTTP 503 50%",
		"200=>=1":             "HTTP 200 >=1",
		"v1=<=3":              "v1 <=3",
		"HTTP 503=0":          "HTTP 503 0",
		"curl exit 56=10..20": "curl exit 56 10..20",
	} {
		class, r, err := parseCountWant(in)
		if err != nil || class+" "+r.String() != want {
			t.Errorf("parseCountWant(%q) = %q %v, %v; want %q", in, class, r, err, want)
		}
	}
	if n := CountsSampleSize(map[string]scenarios.Range{"HTTP 503": scenarios.Share(0.5), "HTTP 200": scenarios.Share(0.5)}); n != 40 {
		t.Errorf("CountsSampleSize(50%%/50%%) = %d, want 40 (20 expected in the rarer class)", n)
	}
	if n := CountsSampleSize(map[string]scenarios.Range{"HTTP 503": scenarios.Exactly(0)}); n != 100 {
		t.Errorf("CountsSampleSize(exactly 0) = %d, want 100", n)
	}
}
