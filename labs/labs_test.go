package labs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/rogpeppe/go-internal/txtar"
)

// knownCommands are testscript's builtins the labs may use plus the labs' own commands.
var knownCommands = map[string]bool{
	"stdout": true, "stderr": true, "cmp": true, "exists": true, "env": true, "skip": true, "stop": true,
	"meshlab": true, "kubectl": true, "sleepcurl": true, "waitfor": true, "capture": true, "cleanup": true,
}

func TestScriptsAreTutorials(t *testing.T) {
	all := All()
	want := []string{"ambient-basics", "ambient-l7-path", "control-plane-inside", "sidecar-injection", "traffic-shifting", "waypoint-proxy-config", "why-did-it-go-there"}
	var got []string
	for _, l := range all {
		got = append(got, l.Name)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("labs = %v, want %v", got, want)
	}
	for _, l := range all {
		t.Run(l.Name, func(t *testing.T) {
			a := txtar.Parse(l.Script)
			lines := strings.Split(string(a.Comment), "\n")
			// The tutorial opens with a paragraph of text before the first command.
			text := 0
			for _, line := range lines {
				if commandName(line) != "" {
					break
				}
				if _, ok := commentText(line); ok {
					text++
				}
			}
			if !strings.HasPrefix(lines[0], "# ") || text < 4 {
				t.Errorf("script opens with %d comment lines (first %q); want a title line and a paragraph", text, lines[0])
			}
			if l.Title == "" || !strings.Contains(l.Title, ":") {
				t.Errorf("title %q: want `Topic: what the lab shows`", l.Title)
			}
			if len(l.Text()) < 400 {
				t.Errorf("tutorial text is %d bytes; want the steps explained", len(l.Text()))
			}

			files := map[string]bool{}
			for _, f := range a.Files {
				if files[f.Name] {
					t.Errorf("file %s twice in the archive", f.Name)
				}
				files[f.Name] = true
			}
			creates, cleanups := false, false
			for i, line := range lines {
				name := commandName(line)
				if name == "" {
					continue
				}
				if !knownCommands[name] {
					t.Errorf("line %d: unknown command %q", i+1, name)
				}
				if pat, ok := pattern(line); ok {
					if _, err := regexp.Compile(pat); err != nil {
						t.Errorf("line %d: %v", i+1, err)
					}
				}
				if name == "cleanup" {
					cleanups = true
				}
				if regexp.MustCompile(`^kubectl .*\b(apply|create|run|label)\b`).MatchString(line) {
					creates = true
				}
				for _, m := range regexp.MustCompile(`-f (\S+\.yaml)`).FindAllStringSubmatch(line, -1) {
					if !files[m[1]] {
						t.Errorf("line %d uses %s, which the archive does not hold", i+1, m[1])
					}
				}
				if strings.Contains(line, "sleep ") && !strings.Contains(line, "--") && name != "kubectl" && name != "stdout" {
					t.Errorf("line %d: fixed sleeps are not allowed; use waitfor", i+1)
				}
			}
			if creates && !cleanups {
				t.Errorf("the lab changes the cluster but registers no cleanup")
			}
		})
	}
}

func TestSelect(t *testing.T) {
	ls, err := Select("traffic-shifting", "ambient-basics")
	if err != nil || len(ls) != 2 || ls[0].Name != "traffic-shifting" {
		t.Fatalf("Select() = %v, %v", ls, err)
	}
	if _, err := Select("nope"); err == nil || !strings.Contains(err.Error(), "ambient-basics") {
		t.Errorf("Select(nope) error = %v, want one listing the labs", err)
	}
}

// fakeBin writes a shell script that records the cluster it was given (MESHLAB_CLUSTER) and its
// arguments in calls, and prints what its first argument (after kubectl's --context NAME) selects.
func fakeBin(t *testing.T, dir, name string) string {
	t.Helper()
	script := `#!/bin/sh
echo "${MESHLAB_CLUSTER:+cluster=$MESHLAB_CLUSTER }$@" >> "` + dir + `/calls"
cmd="$1"; [ "$1" = "--context" ] && cmd="$3"
case "$cmd" in
ztunnel-config) printf 'NAMESPACE POD NAME ADDRESS NODE WAYPOINT PROTOCOL\ndefault productpage-v1-abc 10.244.0.5 n1 None TCP\n' ;;
slow) n=$(cat "` + dir + `/slow" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "` + dir + `/slow"; [ $n -ge 2 ] && echo converged || echo pending ;;
fail) echo "boom" >&2; exit 1 ;;
wait) echo "the mesh did not converge: not settled after 1s: waypoint/default/w: no proxy connected" >&2; exit 2 ;;
*) echo "ok $*" ;;
esac
`
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func runLab(t *testing.T, script string) (Result, string, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{Meshlab: fakeBin(t, dir, "meshlab"), Kubectl: fakeBin(t, dir, "kubectl"), Name: "test"}
	var out bytes.Buffer
	cfg.Out = &out
	rs, err := Run(cfg, []Lab{{Name: "tiny", Title: "Tiny: a test", Script: []byte(script)}})
	if err != nil || len(rs) != 1 {
		t.Fatalf("Run() = %v, %v", rs, err)
	}
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	return rs[0], out.String(), string(calls)
}

func TestRunReportsTheFailedAssertion(t *testing.T) {
	r, out, calls := runLab(t, `# Tiny: a test.
# ztunnel should carry productpage over HBONE.
meshlab ztunnel-config workloads
stdout 'NAMESPACE'
cleanup meshlab undo-it
stdout 'productpage-v1-\S+ .* HBONE$'
# never reached
meshlab after-failure
`)
	if r.Passed || r.Skipped {
		t.Fatalf("result = %+v, want a failure", r)
	}
	for _, want := range []string{
		"no match for `productpage-v1-\\S+ .* HBONE$` found in stdout", // the expected regexp
		"default productpage-v1-abc 10.244.0.5 n1 None TCP",            // the actual output
		"labs/scripts/tiny.txtar:6",                                    // where, in the lab's own name
	} {
		if !strings.Contains(r.Failure, want) {
			t.Errorf("Failure lacks %q:\n%s", want, r.Failure)
		}
	}
	for _, want := range []string{"=== tiny: Tiny: a test", "  ztunnel should carry productpage over HBONE.",
		"    $ meshlab ztunnel-config workloads", "    ↺ meshlab undo-it", "--- FAIL tiny", "no match for"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "never reached") || strings.Contains(calls, "after-failure") {
		t.Errorf("the script went on after the failure:\n%s", out)
	}
	// The lab's cluster is passed on (in MESHLAB_CLUSTER, not as a flag), and the cleanup ran although
	// the script failed.
	if want := "cluster=test ztunnel-config workloads\ncluster=test undo-it\n"; calls != want {
		t.Errorf("calls = %q, want %q", calls, want)
	}
}

func TestRunPassesAndWaits(t *testing.T) {
	r, out, calls := runLab(t, `# Tiny: a test.
# Convergence is polled, not slept for.
waitfor '^converged$' meshlab slow
stdout converged
! meshlab fail
stderr boom
kubectl get pods
stdout '^ok --context kind-test get pods$'
sleepcurl -count 3 http://productpage:9080/
stdout -count=3 'exec deploy/sleep -- meshlab curl -sS --max-time 10 http://productpage:9080/'
`)
	if !r.Passed {
		t.Fatalf("result = %+v, want passed\n%s", r, out)
	}
	if n := strings.Count(calls, "slow"); n != 2 {
		t.Errorf("waitfor ran the command %d times, want 2 (until it matched)", n)
	}
	for _, want := range []string{"    $ stdout -count=3", "--- PASS tiny"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
}

// A lab whose `meshlab wait` finds the mesh never converged is not judged (exit 2 in meshlab lab run),
// its cleanups run, and nothing after the wait runs.
func TestNeverConvergesIsNotJudged(t *testing.T) {
	r, out, calls := runLab(t, `# Tiny: a test.
kubectl apply -f w.yaml
cleanup kubectl delete -f w.yaml
meshlab wait --timeout 1s
meshlab after-wait
-- w.yaml --
kind: Gateway
`)
	if r.Passed || r.Skipped || !strings.Contains(r.NotConverged, "waypoint/default/w: no proxy connected") {
		t.Fatalf("result = %+v, want not judged with the proxy still awaited", r)
	}
	if !strings.Contains(out, "--- ERROR tiny") || !strings.Contains(r.Failure, "the lab never converged") {
		t.Errorf("progress or failure does not say the lab never converged:\n%s\n%s", out, r.Failure)
	}
	if !strings.Contains(calls, "delete -f w.yaml") || strings.Contains(calls, "after-wait") {
		t.Errorf("calls = %q, want the cleanup and nothing after the wait", calls)
	}
}

func TestWaitforGivesUp(t *testing.T) {
	r, _, _ := runLab(t, `# Tiny: a test.
waitfor -timeout 1s '^never$' meshlab fail
`)
	if r.Passed || !strings.Contains(r.Failure, "no match for `^never$` in the output of meshlab within 1s") ||
		!strings.Contains(r.Failure, "boom") {
		t.Errorf("result = %+v, want the waitfor timeout with the last output", r)
	}
}

func TestCommandName(t *testing.T) {
	for line, want := range map[string]string{
		"meshlab check":             "meshlab",
		"! stdout x":                "stdout",
		"[linux] ! kubectl get x":   "kubectl",
		"# comment":                 "",
		"   ":                       "",
		"[!exec:kubectl] skip 'no'": "skip",
	} {
		if got := commandName(line); got != want {
			t.Errorf("commandName(%q) = %q, want %q", line, got, want)
		}
	}
}

// TestParamsWithGoTest runs a lab through testscript.Run, as labs_e2e_test.go does on a cluster.
func TestParamsWithGoTest(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Meshlab: fakeBin(t, dir, "meshlab"), Kubectl: fakeBin(t, dir, "kubectl"), Name: "test"}
	p, err := cfg.Params(Lab{Name: "tiny", Script: []byte("# Tiny: a test.\nmeshlab status\nstdout '^ok status$'\ncleanup kubectl delete ns x\n")}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("script", func(t *testing.T) { testscript.Run(t, p) })
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	if want := "cluster=test status\ncluster=test --context kind-test delete ns x\n"; string(calls) != want {
		t.Errorf("calls = %q, want %q", calls, want)
	}
}

// pattern returns the regexp argument of a stdout, stderr or waitfor line, unquoted as testscript does.
func pattern(line string) (string, bool) {
	var args []string
	var cur strings.Builder
	quoted, inArg := false, false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\'' && quoted && i+1 < len(line) && line[i+1] == '\'':
			cur.WriteByte(c)
			i++
		case c == '\'':
			quoted, inArg = !quoted, true
		case (c == ' ' || c == '\t') && !quoted:
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	for len(args) > 0 && (args[0] == "!" || strings.HasPrefix(args[0], "[")) {
		args = args[1:]
	}
	if len(args) < 2 {
		return "", false
	}
	switch args[0] {
	case "stdout", "stderr":
		rest := args[1:]
		if strings.HasPrefix(rest[0], "-count=") && len(rest) > 1 {
			rest = rest[1:]
		}
		return rest[0], true
	case "waitfor":
		rest := args[1:]
		if rest[0] == "-timeout" && len(rest) > 2 {
			rest = rest[2:]
		}
		return rest[0], true
	}
	return "", false
}

func TestPattern(t *testing.T) {
	for line, want := range map[string]string{
		`stdout 'a b'`:                         "a b",
		`! stdout -count=3 'x''y'`:             "x'y",
		`waitfor -timeout 1m '^ok$' meshlab x`: "^ok$",
		`stderr .`:                             ".",
	} {
		if got, ok := pattern(line); !ok || got != want {
			t.Errorf("pattern(%q) = %q, %v; want %q", line, got, ok, want)
		}
	}
}

// TestInterrupt: cancelling the Context stops the running command, still runs the lab's cleanups, and
// starts no further lab.
func TestInterrupt(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(300*time.Millisecond, cancel)
	cfg := Config{Meshlab: fakeBin(t, dir, "meshlab"), Kubectl: fakeBin(t, dir, "kubectl"), Name: "test", Context: ctx}
	start := time.Now()
	rs, err := Run(cfg, []Lab{
		{Name: "first", Script: []byte("# First: a test.\ncleanup meshlab undo\nwaitfor -timeout 1m '^never$' meshlab fail\n")},
		{Name: "second", Script: []byte("# Second: a test.\nmeshlab second\n")},
	})
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Run took %s after the interrupt", took)
	}
	if err == nil || !strings.Contains(err.Error(), "stopped before lab second") {
		t.Errorf("Run() error = %v, want it stopped before the second lab", err)
	}
	if len(rs) != 1 || rs[0].Passed {
		t.Fatalf("results = %+v, want the first lab failed", rs)
	}
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	if !strings.Contains(string(calls), "undo") || strings.Contains(string(calls), "second") {
		t.Errorf("calls = %q, want the cleanup run and the second lab not started", calls)
	}
}
