package scenarios

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run.
type Report struct {
	Cluster  string
	Start    time.Time
	Duration time.Duration
	Results  []Result
}

// Counts returns how many scenarios passed, failed and were skipped; Errors counts the rest.
func (r *Report) Counts() (passed, failed, skipped int) {
	for _, res := range r.Results {
		switch res.Status {
		case StatusPassed:
			passed++
		case StatusFailed:
			failed++
		case StatusSkipped:
			skipped++
		}
	}
	return
}

// Errors is how many scenarios ended in an environment error (StatusError): not judged at all.
func (r *Report) Errors() int {
	n := 0
	for _, res := range r.Results {
		if res.Status == StatusError {
			n++
		}
	}
	return n
}

// Exit codes of `meshlab scenario run`.
const (
	ExitPassed      = 0 // every scenario passed (or skipped, unless skips count as failures)
	ExitFailed      = 1 // a scenario failed
	ExitEnvironment = 2 // usage or environment error: nothing was judged
)

// ExitCode is 2 when a scenario could not be judged (the lab never converged), 1 when one failed (or, with
// failOnSkip, was skipped), else 0.
func (r *Report) ExitCode(failOnSkip bool) int {
	if r.Errors() > 0 {
		return ExitEnvironment
	}
	_, failed, skipped := r.Counts()
	if failed > 0 || (failOnSkip && skipped > 0) {
		return ExitFailed
	}
	return ExitPassed
}

// WriteText prints one line per scenario, then every failure with expected and seen, then a summary.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tRESULT\tTIME\tDETAIL")
	for _, res := range r.Results {
		detail := ""
		switch res.Status {
		case StatusSkipped:
			detail = res.SkipReason
		case StatusFailed, StatusError:
			detail = fmt.Sprintf("%d failure(s)", len(res.Failures))
			if res.Status == StatusError {
				detail = "not judged: the lab never got there"
			}
			if res.Bundle != "" {
				detail += "; bundle " + res.Bundle
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", res.Name, strings.ToUpper(string(res.Status)), seconds(res.Duration), detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, res := range r.Results {
		if res.Status != StatusFailed && res.Status != StatusError {
			continue
		}
		fmt.Fprintf(w, "\n--- %s: %s\n", map[Status]string{StatusFailed: "FAIL", StatusError: "ERROR"}[res.Status], res.Name)
		for _, f := range res.Failures {
			fmt.Fprintf(w, "  %s: %s\n", f.Step, strings.ReplaceAll(f.String(), "\n", "\n  "))
		}
		if res.Bundle != "" {
			fmt.Fprintf(w, "  bundle: %s\n", res.Bundle)
		}
	}
	p, f, s := r.Counts()
	errs := ""
	if e := r.Errors(); e > 0 {
		errs = fmt.Sprintf(", %d not judged (environment error)", e)
	}
	_, err := fmt.Fprintf(w, "\n%d passed, %d failed%s, %d skipped in %s\n", p, f, errs, s, seconds(r.Duration))
	return err
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// jsonReport is the -o json shape: durations in seconds, timestamps RFC 3339.
type jsonReport struct {
	Cluster         string       `json:"cluster,omitempty"`
	Start           time.Time    `json:"start"`
	DurationSeconds float64      `json:"duration_seconds"`
	Passed          int          `json:"passed"`
	Failed          int          `json:"failed"`
	Skipped         int          `json:"skipped"`
	Errors          int          `json:"errors"`
	Results         []jsonResult `json:"results"`
}

type jsonResult struct {
	Name            string      `json:"name"`
	Description     string      `json:"description,omitempty"`
	Status          Status      `json:"status"`
	SkipReason      string      `json:"skip_reason,omitempty"`
	DurationSeconds float64     `json:"duration_seconds"`
	Steps           []jsonStep  `json:"steps,omitempty"`
	Phases          []jsonPhase `json:"phases,omitempty"`
	Failures        []Failure   `json:"failures,omitempty"`
	Bundle          string      `json:"bundle,omitempty"`
}

type jsonStep struct {
	Name            string  `json:"name"`
	DurationSeconds float64 `json:"duration_seconds"`
}

type jsonPhase struct {
	Name            string  `json:"name"`
	Status          Status  `json:"status"`
	SkipReason      string  `json:"skip_reason,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// WriteJSON prints the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	p, f, s := r.Counts()
	out := jsonReport{Cluster: r.Cluster, Start: r.Start.UTC(), DurationSeconds: r.Duration.Seconds(), Passed: p, Failed: f, Skipped: s, Errors: r.Errors(), Results: []jsonResult{}}
	for _, res := range r.Results {
		out.Results = append(out.Results, toJSON(res))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func toJSON(res Result) jsonResult {
	jr := jsonResult{Name: res.Name, Description: res.Description, Status: res.Status, SkipReason: res.SkipReason,
		DurationSeconds: res.Duration.Seconds(), Failures: res.Failures, Bundle: res.Bundle}
	for _, s := range res.Steps {
		jr.Steps = append(jr.Steps, jsonStep{s.Name, s.Duration.Seconds()})
	}
	for _, p := range res.Phases {
		jr.Phases = append(jr.Phases, jsonPhase{p.Name, p.Status, p.SkipReason, p.Duration.Seconds()})
	}
	return jr
}

// JUnit XML, the subset CI systems read (Jenkins, GitLab, GitHub test reporters).
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Error     *junitFailure `xml:"error,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

// JUnitSuiteName names the suite in JUnit XML.
const JUnitSuiteName = "meshlab-scenarios"

// WriteJUnitFile writes the JUnit XML to path, creating its directory.
func (r *Report) WriteJUnitFile(path string) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing JUnit XML: %w", err)
	}
	if err := r.WriteJUnit(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// WriteJUnit prints the report as JUnit XML: one testsuite, one testcase per scenario; a failed scenario's
// <failure> holds every expected-vs-seen pair, a skipped one's <skipped> its reason.
func (r *Report) WriteJUnit(w io.Writer) error {
	p, f, s := r.Counts()
	e := r.Errors()
	suite := junitSuite{Name: JUnitSuiteName, Tests: p + f + s + e, Failures: f, Errors: e, Skipped: s,
		Time: secs(r.Duration), Timestamp: r.Start.UTC().Format("2006-01-02T15:04:05")}
	if r.Cluster != "" {
		suite.Properties = []junitProperty{{Name: "cluster", Value: r.Cluster}}
	}
	for _, res := range r.Results {
		c := junitCase{Name: res.Name, Classname: "meshlab.scenarios", Time: secs(res.Duration)}
		switch res.Status {
		case StatusFailed, StatusError:
			var body strings.Builder
			for _, fl := range res.Failures {
				fmt.Fprintf(&body, "%s: %s\n", fl.Step, fl.String())
			}
			if res.Bundle != "" {
				fmt.Fprintf(&body, "bundle: %s\n", res.Bundle)
			}
			msg := "failed"
			if len(res.Failures) > 0 {
				msg = firstLine(res.Failures[0].String())
			}
			if res.Status == StatusError {
				// JUnit's <error> is "could not run", which CI reporters show apart from failed assertions.
				c.Error = &junitFailure{Message: msg, Type: "EnvironmentError", Body: body.String()}
			} else {
				c.Failure = &junitFailure{Message: msg, Type: "ScenarioFailure", Body: body.String()}
			}
		case StatusSkipped:
			c.Skipped = &junitSkipped{Message: res.SkipReason}
		}
		c.SystemOut = strings.Join(res.Log, "\n")
		suite.Cases = append(suite.Cases, c)
	}
	doc := junitSuites{Name: JUnitSuiteName, Tests: suite.Tests, Failures: f, Errors: e, Skipped: s, Time: suite.Time, Suites: []junitSuite{suite}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("encoding JUnit XML: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
