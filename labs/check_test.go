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
