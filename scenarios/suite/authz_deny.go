package suite

import (
	"time"

	"github.com/meshlab/meshlab/scenarios"
)

// authz-deny: AuthorizationPolicy enforced where Istio enforces it. L4: a policy with a workload
// selector denies sleep's identity at productpage; ztunnel drops the connection, so curl gets no HTTP
// answer at all, while details stays reachable. L7: a policy attached to the reviews Service with
// targetRefs denies GET /reviews/1 at the waypoint, which answers 403, while /reviews/0 passes.
func authzDeny() *scenarios.Scenario {
	return &scenarios.Scenario{
		Name:        "authz-deny",
		Description: "AuthorizationPolicy DENY: L4 at ztunnel (selector), L7 at the reviews waypoint (targetRefs)",
		Requires: func(t *scenarios.T) {
			requireWaypoints(t)
			t.RequireResource("security.istio.io/v1", "authorizationpolicies")
		},
		Setup: setupReviewsWaypoint,
		Wait:  waitReviewsWaypoint,
		Check: func(t *scenarios.T) {
			t.Phase("l4-ztunnel", func() {
				t.Apply(denySleepToProductpageYAML)
				defer func() {
					t.Delete(denySleepToProductpageYAML)
					t.WaitConverged(scenarios.Ztunnels())
					t.ExpectResponse("sleep -> productpage works again once the policy is gone",
						scenarios.Request{URL: "http://productpage:9080/health"}, scenarios.ResponseWant{Status: 200})
				}()
				t.WaitConverged(scenarios.Ztunnels())
				t.ExpectDenied("sleep -> productpage is refused at L4 (no HTTP answer)",
					scenarios.Request{URL: "http://productpage:9080/health", MaxTime: 3 * time.Second, Repeat: 3}, "L4")
				t.ExpectResponse("sleep -> details is not affected by productpage's policy",
					scenarios.Request{URL: "http://details:9080/details/0", Repeat: 3}, scenarios.ResponseWant{Status: 200})
			})
			t.Phase("l7-waypoint", func() {
				waypoint := scenarios.Waypoint(bookinfoNS, reviewsWaypoint)
				t.Apply(denyReviewsPathYAML)
				defer func() {
					t.Delete(denyReviewsPathYAML)
					t.WaitConverged(waypoint)
				}()
				t.WaitConverged(waypoint)
				t.ExpectDenied("GET /reviews/1 is denied by the waypoint",
					scenarios.Request{URL: "http://reviews:9080/reviews/1", Repeat: 3}, "L7")
				t.ExpectResponse("GET /reviews/0 is allowed",
					scenarios.Request{URL: "http://reviews:9080/reviews/0", Repeat: 3}, scenarios.ResponseWant{Status: 200})
			})
		},
	}
}

var denySleepToProductpageYAML = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-sleep
  namespace: default
spec:
  selector:
    matchLabels: {app: productpage}
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
`

var denyReviewsPathYAML = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-reviews-1
  namespace: default
spec:
  targetRefs:
  - {kind: Service, group: "", name: reviews}
  action: DENY
  rules:
  - to:
    - operation:
        methods: ["GET"]
        paths: ["/reviews/1"]
`
