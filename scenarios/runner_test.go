package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// scenario builds an in-test scenario whose teardown is counted.
func scenario(name string, teardowns *atomic.Int32, s Scenario) *Scenario {
	s.Name = name
	s.Description = "test scenario " + name
	s.Teardown = func(t *T) { teardowns.Add(1) }
	return &s
}

func TestRunnerOutcomes(t *testing.T) {
	var teardowns atomic.Int32
	setupRan := map[string]bool{}
	tests := []struct {
		s          *Scenario
		want       Status
		wantFail   string // substring of the first failure
		wantReason string
	}{
		{scenario("pass", &teardowns, Scenario{Check: func(t *T) { t.Logf("all good") }}), StatusPassed, "", ""},
		{scenario("fail-expect", &teardowns, Scenario{Check: func(t *T) {
			t.Expect(1 == 2, "one is two", 2, 1)
			t.ExpectEqual("same", []string{"a"}, []string{"a"})
		}}), StatusFailed, "one is two", ""},
		{scenario("setup-error", &teardowns, Scenario{
			Setup: func(t *T) { setupRan["setup-error"] = true; t.Fatalf("applying: boom") },
			Check: func(t *T) { setupRan["check-after-setup-error"] = true },
		}), StatusFailed, "applying: boom", ""},
		{scenario("panic", &teardowns, Scenario{Check: func(t *T) {
			var m map[string]int
			m["x"] = 1 // assignment to entry in nil map
		}}), StatusFailed, "panic: assignment to entry in nil map", ""},
		{scenario("skip", &teardowns, Scenario{
			Requires: func(t *T) { t.Skipf("requires the meshlab control plane") },
			Check:    func(t *T) { t.Fatalf("check must not run after a skip") },
		}), StatusSkipped, "", "requires the meshlab control plane"},
		{scenario("no-check", &teardowns, Scenario{}), StatusFailed, "has no Check", ""},
	}
	dir := t.TempDir()
	r := &Runner{BundleDir: dir}
	for _, tt := range tests {
		t.Run(tt.s.Name, func(t *testing.T) {
			before := teardowns.Load()
			res := r.RunOne(context.Background(), tt.s)
			if res.Status != tt.want {
				t.Fatalf("Status = %s, want %s (failures %v)", res.Status, tt.want, res.Failures)
			}
			if got := teardowns.Load() - before; got != 1 {
				t.Errorf("teardown ran %d times, want 1", got)
			}
			if tt.wantFail != "" {
				if len(res.Failures) == 0 || !strings.Contains(res.Failures[0].What, tt.wantFail) {
					t.Errorf("failures = %v, want one containing %q", res.Failures, tt.wantFail)
				}
				if res.Bundle == "" {
					t.Fatalf("no bundle for a failure")
				}
				b, err := os.ReadFile(filepath.Join(res.Bundle, "failure.txt"))
				if err != nil || !strings.Contains(string(b), tt.wantFail) {
					t.Errorf("bundle failure.txt = %q, %v; want it to hold %q", b, err, tt.wantFail)
				}
				if !strings.HasPrefix(res.Bundle, filepath.Join(dir, tt.s.Name+"-")) {
					t.Errorf("bundle %s is not under %s/%s-<timestamp>", res.Bundle, dir, tt.s.Name)
				}
			} else if res.Bundle != "" || len(res.Failures) > 0 {
				t.Errorf("bundle %q, failures %v for an outcome without failures", res.Bundle, res.Failures)
			}
			if res.SkipReason != tt.wantReason {
				t.Errorf("SkipReason = %q, want %q", res.SkipReason, tt.wantReason)
			}
		})
	}
	if setupRan["check-after-setup-error"] {
		t.Errorf("Check ran after Setup failed")
	}
}

func TestExpectedVsSeenFormat(t *testing.T) {
	f := Failure{Phase: "virtualservice", Step: "check", What: "reviews split", Expected: "reviews-v1 180, reviews-v2 20", Seen: "reviews-v1 200"}
	want := "[virtualservice] reviews split\n    expected: reviews-v1 180, reviews-v2 20\n    seen:     reviews-v1 200"
	if got := f.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
}

func TestPhasesContinueAfterFailure(t *testing.T) {
	var teardowns atomic.Int32
	var ran []string
	s := scenario("phases", &teardowns, Scenario{Check: func(t *T) {
		t.Phase("one", func() { ran = append(ran, "one"); t.Fatalf("first phase broke") })
		t.Phase("two", func() { ran = append(ran, "two"); t.Skipf("requires HTTPRoute") })
		t.Phase("three", func() { ran = append(ran, "three") })
	}})
	res := (&Runner{BundleDir: t.TempDir()}).RunOne(context.Background(), s)
	if strings.Join(ran, ",") != "one,two,three" {
		t.Errorf("phases ran %v, want one,two,three", ran)
	}
	if res.Status != StatusFailed || len(res.Failures) != 1 || res.Failures[0].Phase != "one" {
		t.Errorf("result %s %v, want one failure in phase one", res.Status, res.Failures)
	}
	want := []Status{StatusFailed, StatusSkipped, StatusPassed}
	for i, p := range res.Phases {
		if p.Status != want[i] {
			t.Errorf("phase %s = %s, want %s", p.Name, p.Status, want[i])
		}
	}
	if res.Phases[1].SkipReason != "requires HTTPRoute" || res.SkipReason != "" {
		t.Errorf("phase skip reason %q, scenario skip reason %q", res.Phases[1].SkipReason, res.SkipReason)
	}
}

// A lab that never converges is an environment error: the scenario stops at once, phases included, its
// teardown still runs, and the report says "not judged" in text, JSON and JUnit's <error>.
func TestAbortIsAnEnvironmentError(t *testing.T) {
	var teardowns atomic.Int32
	var ran []string
	s := scenario("never-converges", &teardowns, Scenario{Check: func(t *T) {
		t.Phase("one", func() { ran = append(ran, "one"); t.Abortf("the lab never converged: proxy x NACKED") })
		t.Phase("two", func() { ran = append(ran, "two") })
	}})
	res := (&Runner{BundleDir: t.TempDir()}).RunOne(context.Background(), s)
	if strings.Join(ran, ",") != "one" {
		t.Errorf("phases ran %v, want only one", ran)
	}
	if res.Status != StatusError || len(res.Failures) != 1 || !res.Failures[0].Env {
		t.Fatalf("result %s %+v, want one environment error", res.Status, res.Failures)
	}
	if teardowns.Load() != 1 {
		t.Errorf("teardown ran %d times, want 1", teardowns.Load())
	}
	rep := &Report{Results: []Result{res, {Name: "ok", Status: StatusPassed}}}
	if got := rep.ExitCode(false); got != ExitEnvironment {
		t.Errorf("ExitCode = %d, want %d", got, ExitEnvironment)
	}
	var text, js, junit bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"never-converges  ERROR", "--- ERROR: never-converges", "proxy x NACKED", "1 passed, 0 failed, 1 not judged (environment error), 0 skipped"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js.String(), `"errors": 1`) || !strings.Contains(js.String(), `"status": "error"`) || !strings.Contains(js.String(), `"environment": true`) {
		t.Errorf("JSON lacks the error:\n%s", js.String())
	}
	if err := rep.WriteJUnit(&junit); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(junit.String(), `errors="1"`) || !strings.Contains(junit.String(), `<error message="[one] the lab never converged: proxy x NACKED" type="EnvironmentError">`) {
		t.Errorf("JUnit lacks the <error>:\n%s", junit.String())
	}
}

func TestStepDeadline(t *testing.T) {
	var teardowns atomic.Int32
	release := make(chan struct{})
	defer close(release)
	s := scenario("hangs", &teardowns, Scenario{
		Timeout: 200 * time.Millisecond,
		Check:   func(t *T) { <-release }, // ignores its context
	})
	start := time.Now()
	res := (&Runner{BundleDir: t.TempDir()}).RunOne(context.Background(), s)
	if res.Status != StatusFailed || !strings.Contains(res.Failures[0].What, "did not finish before the deadline") {
		t.Errorf("result %s %v, want a deadline failure", res.Status, res.Failures)
	}
	if teardowns.Load() != 1 {
		t.Errorf("teardown did not run after a timeout")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a hung step held the run for %s", d)
	}
}

func TestTeardownPanicIsAFailure(t *testing.T) {
	s := &Scenario{Name: "bad-teardown", Check: func(t *T) {}, Teardown: func(t *T) { panic("teardown exploded") }}
	res := (&Runner{BundleDir: t.TempDir()}).RunOne(context.Background(), s)
	if res.Status != StatusFailed || !strings.Contains(res.Failures[0].What, "teardown exploded") || res.Failures[0].Step != "teardown" {
		t.Errorf("result %s %v, want a teardown failure", res.Status, res.Failures)
	}
	if res.Bundle == "" {
		t.Errorf("no bundle for a teardown failure")
	}
}

func runSuite(t *testing.T) *Report {
	t.Helper()
	var teardowns atomic.Int32
	reg := NewRegistry(
		scenario("ok", &teardowns, Scenario{Check: func(t *T) {}}),
		scenario("broken & <escaped>", &teardowns, Scenario{Check: func(t *T) {
			t.Expect(false, `status of "GET /reviews/0"`, "HTTP 503 <abort>", "HTTP 200")
		}}),
		scenario("later", &teardowns, Scenario{Requires: func(t *T) { t.Skipf("requires ztunnel") }, Check: func(t *T) {}}),
	)
	rep := (&Runner{BundleDir: t.TempDir()}).Run(context.Background(), reg.All())
	if teardowns.Load() != 3 {
		t.Errorf("teardowns = %d, want 3", teardowns.Load())
	}
	return rep
}

func TestJUnit(t *testing.T) {
	rep := runSuite(t)
	var buf bytes.Buffer
	if err := rep.WriteJUnit(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName xml.Name `xml:"testsuites"`
		Suites  []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Skipped  int    `xml:"skipped,attr"`
			Time     string `xml:"time,attr"`
			Cases    []struct {
				Name    string `xml:"name,attr"`
				Time    string `xml:"time,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Body    string `xml:",chardata"`
				} `xml:"failure"`
				Skipped *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("JUnit XML does not parse: %v\n%s", err, buf.String())
	}
	if len(doc.Suites) != 1 {
		t.Fatalf("%d suites, want 1", len(doc.Suites))
	}
	s := doc.Suites[0]
	if s.Name != JUnitSuiteName || s.Tests != 3 || s.Failures != 1 || s.Skipped != 1 || s.Time == "" {
		t.Errorf("suite = %+v", s)
	}
	if len(s.Cases) != 3 {
		t.Fatalf("%d cases, want 3", len(s.Cases))
	}
	if c := s.Cases[0]; c.Name != "ok" || c.Failure != nil || c.Skipped != nil || c.Time == "" {
		t.Errorf("case ok = %+v", c)
	}
	c := s.Cases[1]
	if c.Name != "broken & <escaped>" || c.Failure == nil {
		t.Fatalf("case broken = %+v", c)
	}
	for _, want := range []string{`status of "GET /reviews/0"`, "expected: HTTP 503 <abort>", "seen:     HTTP 200"} {
		if !strings.Contains(c.Failure.Body, want) {
			t.Errorf("failure body lacks %q:\n%s", want, c.Failure.Body)
		}
	}
	if c.Failure.Message != `status of "GET /reviews/0"` {
		t.Errorf("failure message = %q", c.Failure.Message)
	}
	if c := s.Cases[2]; c.Skipped == nil || c.Skipped.Message != "requires ztunnel" {
		t.Errorf("case later = %+v", c)
	}
}

func TestJSONAndText(t *testing.T) {
	rep := runSuite(t)
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Passed, Failed, Skipped int
		Results                 []struct {
			Name       string
			Status     Status
			SkipReason string `json:"skip_reason"`
			Failures   []Failure
			Bundle     string
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("JSON: %v\n%s", err, buf.String())
	}
	if got.Passed != 1 || got.Failed != 1 || got.Skipped != 1 || len(got.Results) != 3 {
		t.Errorf("counts %d/%d/%d, %d results", got.Passed, got.Failed, got.Skipped, len(got.Results))
	}
	if r := got.Results[1]; r.Status != StatusFailed || r.Failures[0].Expected != "HTTP 503 <abort>" || r.Bundle == "" {
		t.Errorf("failed result = %+v", r)
	}
	if r := got.Results[2]; r.SkipReason != "requires ztunnel" {
		t.Errorf("skipped result = %+v", r)
	}

	buf.Reset()
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SCENARIO", "ok ", "PASSED", "SKIPPED", "requires ztunnel", "--- FAIL: broken & <escaped>", "expected: HTTP 503 <abort>", "1 passed, 1 failed, 1 skipped"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestExitCode(t *testing.T) {
	mk := func(statuses ...Status) *Report {
		r := &Report{}
		for _, s := range statuses {
			r.Results = append(r.Results, Result{Status: s})
		}
		return r
	}
	tests := []struct {
		rep        *Report
		failOnSkip bool
		want       int
	}{
		{mk(StatusPassed, StatusPassed), false, ExitPassed},
		{mk(StatusPassed, StatusSkipped), false, ExitPassed},
		{mk(StatusPassed, StatusSkipped), true, ExitFailed},
		{mk(StatusPassed, StatusFailed), false, ExitFailed},
		{mk(StatusFailed, StatusError), false, ExitEnvironment},
		{mk(StatusError), false, ExitEnvironment},
		{mk(), false, ExitPassed},
	}
	for i, tt := range tests {
		if got := tt.rep.ExitCode(tt.failOnSkip); got != tt.want {
			t.Errorf("%d: ExitCode(%v) = %d, want %d", i, tt.failOnSkip, got, tt.want)
		}
	}
}

func TestRegistrySelect(t *testing.T) {
	reg := NewRegistry(&Scenario{Name: "a"}, &Scenario{Name: "b"})
	got, err := reg.Select("b", "a", "b")
	if err != nil || len(got) != 2 || got[0].Name != "b" || got[1].Name != "a" {
		t.Errorf("Select(b, a, b) = %v, %v", got, err)
	}
	if _, err := reg.Select("a", "zzz"); err == nil || !strings.Contains(err.Error(), "zzz") || !strings.Contains(err.Error(), "known: a, b") {
		t.Errorf("Select(zzz) error = %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("registering a duplicate did not panic")
		}
	}()
	reg.Register(&Scenario{Name: "a"})
}
