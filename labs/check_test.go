package labs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuiltinLabsPassCheck(t *testing.T) {
	for _, l := range All() {
		if err := Check(l); err != nil {
			t.Errorf("%s:\n%v", l.Name, err)
		}
	}
}

func TestCheckFindsMalformedLabs(t *testing.T) {
	const head = "# Broken: a lab with one mistake.\n#\n# It explains itself.\n"
	tests := []struct {
		name, script string
		want         []string // every problem, in order
	}{
		{"no prose", "kubectl get pods\nstdout x\n",
			[]string{"bad.txtar:1: the lab has no prose"}},
		{"unknown command", head + "kubectl get pods\nkubectel apply -f x.yaml\n",
			[]string{`bad.txtar:5: unknown command "kubectel"`}},
		{"unterminated quote", head + "stdout 'abc\n",
			[]string{"bad.txtar:4: unterminated quoted argument"}},
		{"waitfor without command", head + "waitfor '^ok$'\n",
			[]string{"bad.txtar:4: usage: waitfor [-timeout DURATION] REGEXP COMMAND ARGS..."}},
		{"waitfor bad timeout", head + "waitfor -timeout soon '^ok$' meshlab status\n",
			[]string{"bad.txtar:4: waitfor -timeout soon: want a duration"}},
		{"waitfor negated", head + "! waitfor ok meshlab status\n",
			[]string{"bad.txtar:4: waitfor cannot be negated"}},
		{"waitfor bad regexp", head + "waitfor '(' meshlab status\n",
			[]string{"bad.txtar:4: waitfor: bad regexp: error parsing regexp: missing closing )"}},
		{"stdout bad regexp", head + "meshlab status\nstdout 'a[b'\n",
			[]string{"bad.txtar:5: stdout: bad regexp"}},
		{"capture two vars", head + "meshlab status\ncapture A B\n",
			[]string{"bad.txtar:5: usage: capture VAR"}},
		{"capture bad name", head + "meshlab status\ncapture my-var\n",
			[]string{"bad.txtar:5: capture my-var: a variable name is letters, digits and _"}},
		{"sleepcurl count", head + "sleepcurl -count none http://x/\n",
			[]string{`bad.txtar:4: sleepcurl -count: want a positive number, got "none"`}},
		{"sleepcurl no url", head + "sleepcurl -count 3\n",
			[]string{"bad.txtar:4: usage: sleepcurl [-count N] [CURL-FLAGS] URL"}},
		{"cleanup empty", head + "cleanup\n",
			[]string{"bad.txtar:4: usage: cleanup COMMAND ARGS..."}},
		{"missing embedded file", head + "kubectl apply -f policy.yaml\ncleanup kubectl delete -f=policy.yaml\n-- polcy.yaml --\nkind: X\n",
			[]string{"bad.txtar:4: kubectl -f policy.yaml: the lab embeds no file policy.yaml",
				"bad.txtar:5: kubectl -f policy.yaml: the lab embeds no file policy.yaml"}},
		{"missing file in waitfor", head + "waitfor ok kubectl get -f gone.yaml\n",
			[]string{"bad.txtar:4: kubectl -f gone.yaml: the lab embeds no file gone.yaml"}},
		{"bad file marker", head + "kubectl apply -f a.yaml\n-- a.yaml --\nkind: A\n-- b.yaml\nkind: B\n",
			[]string{`bad.txtar:7: "-- b.yaml" looks like a file marker but is not one: write ` + "`-- NAME --`"}},
		{"duplicate file", head + "kubectl apply -f a.yaml\n-- a.yaml --\nkind: A\n-- a.yaml --\nkind: B\n",
			[]string{"bad.txtar:7: file a.yaml appears twice (first at line 5)"}},
		{"file outside", head + "meshlab status\n-- ../a.yaml --\nkind: A\n",
			[]string{"bad.txtar:5: file ../a.yaml: an embedded file's name must be relative"}},
		{"several problems", "frobnicate\ncapture\n",
			[]string{`bad.txtar:1: unknown command "frobnicate"`, "bad.txtar:1: the lab has no prose", "bad.txtar:2: usage: capture VAR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(Lab{Name: "bad", File: "bad.txtar", Script: []byte(tt.script)})
			ce, ok := err.(*CheckError)
			if !ok {
				t.Fatalf("Check() = %v, want a *CheckError", err)
			}
			if len(ce.Problems) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant %d:\n%s", ce, len(tt.want), strings.Join(tt.want, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(ce.Problems[i], w) {
					t.Errorf("problem %d = %q, want it to start with %q", i, ce.Problems[i], w)
				}
			}
		})
	}
}

func TestCheckAcceptsWhatTheRunnerAccepts(t *testing.T) {
	script := `# Fine: every lab command used correctly.
#
# Prose.
kubectl apply -f manifests/
cleanup kubectl delete -f manifests/ --ignore-not-found
waitfor -timeout 30s '^ready$' kubectl get -f manifests/a.yaml -o name
stdout 'a${WHO}b('
capture WHO
sleepcurl -count 2 --fail http://x/$WHO
! stdout 'x''y'
exec echo '# not a comment'
[linux] kubectl apply -f $FILE
kubectl apply -f https://example.com/a.yaml # a trailing comment
-- manifests/a.yaml --
kind: A
`
	if err := Check(Lab{Name: "fine", Script: []byte(script)}); err != nil {
		t.Errorf("Check() =\n%v", err)
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.txtar", "a.txtar", "notes.md"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("# "+n+": a lab.\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := Resolve(dir, "ambient-basics", filepath.Join(dir, "b.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range ls {
		got = append(got, l.Name+"="+l.File)
	}
	want := []string{"a=" + filepath.Join(dir, "a.txtar"), "b=" + filepath.Join(dir, "b.txtar"),
		"ambient-basics=labs/scripts/ambient-basics.txtar", "b=" + filepath.Join(dir, "b.txtar")}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Resolve() = %v, want %v", got, want)
	}
	if _, err := Resolve("no-such-lab"); err == nil || !strings.Contains(err.Error(), "ambient-basics") {
		t.Errorf("Resolve(no-such-lab) = %v, want the built-in labs listed", err)
	}
	if _, err := Resolve(filepath.Join(dir, "gone.txtar")); err == nil || !strings.Contains(err.Error(), "gone.txtar") {
		t.Errorf("Resolve(gone.txtar) = %v, want the missing file named", err)
	}
	if _, err := Resolve(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no .txtar lab files") {
		t.Errorf("Resolve(empty dir) = %v", err)
	}
}

func TestLinesThatChange(t *testing.T) {
	for text, want := range map[string]bool{
		"kubectl apply -f a.yaml":                             true,
		"kubectl -n istio-system logs -l app=ztunnel":         false,
		"kubectl --context kind-x label svc reviews a=b":      true,
		"kubectl rollout status deploy/x":                     false,
		"kubectl rollout restart deploy/x":                    true,
		"kubectl get deployment x -o jsonpath={.status}":      false,
		"kubectl frobnicate":                                  true, // unknown: never run twice
		"meshlab proxy-config routes deploy/x":                false,
		"meshlab waypoint list":                               false,
		"meshlab waypoint apply -n default":                   true,
		"meshlab up":                                          true,
		"waitfor '^ok' meshlab ztunnel-config services":       false,
		"waitfor -timeout 1m ok kubectl apply -f a.yaml":      true,
		"sleepcurl -count 3 http://reviews:9080/":             false,
		"exec sh -c 'echo hi > f'":                            true,
		"! stdout x":                                          false,
		"cleanup kubectl delete -f a.yaml --ignore-not-found": false,
	} {
		if got := parseLine(1, text).changes(); got != want {
			t.Errorf("changes(%q) = %v, want %v", text, got, want)
		}
	}
}

func TestSplitSteps(t *testing.T) {
	steps := splitSteps(`# Title: a lab.
#
# Intro paragraph.

# More intro, still before any command.
kubectl get pods
stdout x

# Second step.
kubectl apply -f a.yaml
cleanup kubectl delete -f a.yaml

# Closing words.
`)
	if len(steps) != 3 {
		t.Fatalf("%d steps, want 3: %+v", len(steps), steps)
	}
	if got := strings.Join(steps[0].prose, "|"); got != "Title: a lab.||Intro paragraph.|More intro, still before any command." {
		t.Errorf("step 1 prose = %q", got)
	}
	if len(steps[0].lines) != 2 || steps[0].lines[0].no != 6 || steps[1].lines[1].name() != "cleanup" || len(steps[2].lines) != 0 {
		t.Errorf("steps = %+v", steps)
	}
}

func TestShellForm(t *testing.T) {
	for text, want := range map[string]string{
		"exec sh -c 'echo hi'":                     "sh -c 'echo hi'",
		"sleepcurl -count 3 --fail http://x:9080/": "kubectl exec -n default deploy/sleep -- meshlab curl -sS --max-time 10 --fail http://x:9080/   # 3 times",
		"waitfor '^ok$' meshlab waypoint list":     "meshlab waypoint list   # repeat until the output matches '^ok$'",
		"! kubectl get ns gone":                    "kubectl get ns gone   # expected to fail",
	} {
		if got := shellForm(parseLine(1, text)); got != want {
			t.Errorf("shellForm(%q) =\n  %q\nwant\n  %q", text, got, want)
		}
	}
}
