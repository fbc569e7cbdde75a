package checks

import (
	"strings"
	"time"

	"github.com/meshlab/meshlab/scenarios"
)

// SplitSampleConcurrency is how many split requests are in flight at once.
const SplitSampleConcurrency = 8

// scenarioTraffic implements Traffic with package scenarios' traffic assertions, the ones the built-in
// scenarios use: a check file can check whatever a scenario checks.
type scenarioTraffic struct{}

// DefaultTraffic is the Traffic the runner uses when Options.Traffic is nil.
var DefaultTraffic Traffic = scenarioTraffic{}

func (scenarioTraffic) Request(t *scenarios.T, what string, req TrafficRequest, want ResponseWant) bool {
	return t.ExpectResponse(what, ScenarioRequest(t, req), want)
}

func (scenarioTraffic) Allowed(t *scenarios.T, what string, req TrafficRequest) bool {
	return t.ExpectAllowed(what, ScenarioRequest(t, req))
}

func (scenarioTraffic) Denied(t *scenarios.T, what string, req TrafficRequest, layer string) bool {
	return t.ExpectDenied(what, ScenarioRequest(t, req), layer)
}

func (scenarioTraffic) Path(t *scenarios.T, what string, req TrafficRequest, want PathWant) bool {
	return t.ExpectPath(what, ScenarioRequest(t, req), want)
}

func (scenarioTraffic) Latency(t *scenarios.T, what string, req TrafficRequest, n int, budgets map[float64]time.Duration) bool {
	return t.ExpectLatency(what, ScenarioRequest(t, req), n, budgets)
}

// Split sends scenarios.SampleSize(weights) requests and tests the answers' field `by` (the echo app's
// "version") against the weights at scenarios.SplitAlpha.
func (scenarioTraffic) Split(t *scenarios.T, what string, req TrafficRequest, by string, weights map[string]float64) bool {
	n := scenarios.SampleSize(weights)
	rs := t.CurlN(ScenarioRequest(t, req), n, SplitSampleConcurrency)
	return t.ExpectSplit(what, scenarios.Tally(rs, byField(by)), weights)
}

// Counts sends n requests (default: enough for the smallest share wanted, as scenarios.ShareSampleSize
// says; 100 when only counts are wanted) and tests the tally by status or field against want.
func (scenarioTraffic) Counts(t *scenarios.T, what string, req TrafficRequest, n int, by string, want map[string]scenarios.Range) bool {
	if n <= 0 {
		n = CountsSampleSize(want)
	}
	classify := scenarios.ByStatus
	if by != "status" {
		classify = byField(by)
	}
	rs := t.CurlN(ScenarioRequest(t, req), n, SplitSampleConcurrency)
	return t.ExpectCounts(what, scenarios.Tally(rs, classify), want)
}

// CountsSampleSize is how many requests counts sends when -n is not given.
func CountsSampleSize(want map[string]scenarios.Range) int {
	n := 0
	for _, r := range want {
		if p, ok := r.Share(); ok {
			n = max(n, scenarios.ShareSampleSize(p))
		}
	}
	if n == 0 {
		return 100
	}
	return n
}

// ScenarioRequest turns a check file's request into scenarios' form, resolving -from to a running pod.
func ScenarioRequest(t *scenarios.T, req TrafficRequest) scenarios.Request {
	out := scenarios.Request{URL: req.URL}
	if req.Via != "" {
		out.Via = ingressAddress(t, req.Namespace, req.Via, req.URL)
	} else if req.From != "" {
		out.Namespace, out.Pod = req.Namespace, podOf(t, req.Namespace, req.From)
	} else {
		out.Namespace, out.Pod = t.Env.Namespace, t.SleepPod()
	}
	for _, h := range req.Headers {
		out.Args = append(out.Args, "-H", h)
	}
	return out
}

// byField classifies an answer by one field with scenarios.ByField: FIELD, else ServiceFIELD (meshlab echo
// writes ServiceVersion=v2, so the default field "version" reads it).
func byField(field string) func(scenarios.Response) string {
	plain, service := scenarios.ByField(field), scenarios.ByField("Service"+field)
	return func(r scenarios.Response) string {
		v := plain(r)
		if r.OK() && strings.HasPrefix(v, "answer without ") {
			if w := service(r); !strings.HasPrefix(w, "answer without ") {
				return w
			}
		}
		return v
	}
}
