package checks

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/meshlab/meshlab/scenarios"
)

// SplitSampleConcurrency is how many split requests are in flight at once.
const SplitSampleConcurrency = 8

// scenarioTraffic implements Traffic with package scenarios' traffic helpers. Split uses what scenarios
// has today (CurlN, Tally, ExpectSplit); the other commands wait for scenarios' Expect* functions (the
// traffic work of issue #13) and until then skip, saying so: a skip is never a pass.
type scenarioTraffic struct{}

// DefaultTraffic is the Traffic the runner uses when Options.Traffic is nil.
var DefaultTraffic Traffic = scenarioTraffic{}

func notConnected(t *scenarios.T, cmd string) bool {
	t.Skipf("%s: this build of meshlab does not connect the %s assertion to scenarios' traffic functions yet", cmd, cmd)
	return false
}

func (scenarioTraffic) Request(t *scenarios.T, _ string, _ TrafficRequest, _ ResponseWant) bool {
	return notConnected(t, "request")
}
func (scenarioTraffic) Allowed(t *scenarios.T, _ string, _ TrafficRequest) bool {
	return notConnected(t, "allowed")
}
func (scenarioTraffic) Denied(t *scenarios.T, _ string, _ TrafficRequest, _ string) bool {
	return notConnected(t, "denied")
}
func (scenarioTraffic) Path(t *scenarios.T, _ string, _ TrafficRequest, _ PathWant) bool {
	return notConnected(t, "path")
}
func (scenarioTraffic) Latency(t *scenarios.T, _ string, _ TrafficRequest, _ int, _ map[float64]time.Duration) bool {
	return notConnected(t, "latency")
}

// Split sends scenarios.SampleSize(weights) requests and tests the answers' field `by` (the echo app's
// "version") against the weights at scenarios.SplitAlpha.
func (scenarioTraffic) Split(t *scenarios.T, what string, req TrafficRequest, by string, weights map[string]float64) bool {
	n := scenarios.SampleSize(weights)
	rs := t.CurlN(ScenarioRequest(t, req), n, SplitSampleConcurrency)
	return t.ExpectSplit(what, scenarios.Tally(rs, byField(by)), weights)
}

// ScenarioRequest turns a check file's request into scenarios' form, resolving -from to a running pod.
func ScenarioRequest(t *scenarios.T, req TrafficRequest) scenarios.Request {
	out := scenarios.Request{URL: req.URL}
	if req.From != "" {
		out.Namespace, out.Pod = req.Namespace, podOf(t, req.Namespace, req.From)
	} else {
		out.Namespace, out.Pod = t.Env.Namespace, t.SleepPod()
	}
	for _, h := range req.Headers {
		out.Args = append(out.Args, "-H", h)
	}
	return out
}

// byField classifies an answer by one field: a top-level JSON field ("version": "v2" -> "v2"), or an echo
// line FIELD=VALUE (ServiceFIELD=VALUE too: meshlab echo writes ServiceVersion=v2); failures by status.
func byField(field string) func(scenarios.Response) string {
	return func(r scenarios.Response) string {
		if !r.OK() {
			return r.String()
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(r.Body), &m); err == nil {
			if v, ok := m[field]; ok {
				return fmt.Sprint(v)
			}
		}
		for _, line := range strings.Split(r.Body, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
			if ok && (strings.EqualFold(k, field) || strings.EqualFold(k, "Service"+field)) {
				return v
			}
		}
		return "no field " + field
	}
}
