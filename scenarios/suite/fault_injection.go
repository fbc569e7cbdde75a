package suite

import (
	"time"

	"github.com/meshlab/meshlab/scenarios"
)

// fault-injection: a VirtualService on reviews, served by its waypoint, aborts every request with 503
// and delays /reviews/1 by a fixed second (Istio's fault-injection task, scoped by path).
func faultInjection() *scenarios.Scenario {
	return &scenarios.Scenario{
		Name:        "fault-injection",
		Description: "the reviews waypoint aborts requests with 503 and delays /reviews/1 by 1s",
		Requires: func(t *scenarios.T) {
			requireWaypoints(t)
			t.RequireResource("networking.istio.io/v1", "virtualservices")
		},
		Setup: func(t *scenarios.T) {
			setupReviewsWaypoint(t)
			t.Apply(reviewsFaultsYAML)
		},
		Wait: waitReviewsWaypoint,
		Check: func(t *scenarios.T) {
			t.Phase("abort", func() {
				rs := t.CurlN(scenarios.Request{URL: "http://reviews:9080/reviews/0"}, 10, 5)
				t.ExpectCounts("GET /reviews/0 is aborted by the fault filter (100%)", scenarios.Tally(rs, scenarios.ByStatus),
					map[string]scenarios.Range{"HTTP 503": scenarios.Share(1)})
				t.ExpectResponse("the abort is the fault filter's answer",
					scenarios.Request{URL: "http://reviews:9080/reviews/0"}, scenarios.ResponseWant{Status: 503, BodyRE: "^fault filter abort$"})
			})
			t.Phase("delay", func() {
				for range 3 {
					m := t.CurlMeasured(scenarios.Request{URL: "http://reviews:9080/reviews/1"})
					t.Expect(m.OK(), "GET /reviews/1 is delayed, not aborted", "HTTP 200", m.Response)
					t.Expect(m.Total >= faultDelay, "GET /reviews/1 takes at least the injected delay (curl's time in the pod)",
						">= "+faultDelay.String(), m.Total.Round(time.Millisecond))
				}
				t.ExpectLatency("GET /reviews/1 is delayed by the injected second, not more", scenarios.Request{URL: "http://reviews:9080/reviews/1"},
					3, map[float64]time.Duration{1: faultDelay + 2*time.Second})
			})
		},
	}
}

const faultDelay = time.Second

var reviewsFaultsYAML = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-faults
  namespace: default
spec:
  hosts:
  - reviews
  http:
  - match:
    - uri: {prefix: /reviews/1}
    fault:
      delay:
        percentage: {value: 100}
        fixedDelay: 1s
    route:
    - destination: {host: reviews}
  - fault:
      abort:
        percentage: {value: 100}
        httpStatus: 503
    route:
    - destination: {host: reviews}
`
