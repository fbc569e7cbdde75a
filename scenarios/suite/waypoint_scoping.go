package suite

import (
	"time"

	"github.com/meshlab/meshlab/scenarios"
)

// waypoint-scoping: a waypoint serves only what is bound to it. The reviews waypoint holds config for
// reviews and nothing else (it is destination-oriented, unlike a sidecar), requests to reviews pass an
// L7 proxy on the way (Envoy's x-envoy-upstream-service-time response header), and requests to details,
// which has no waypoint, stay L4 (no such header); the access logs show the path (through the waypoint,
// mutual TLS with sleep's and reviews' identities, or straight to details) and the waypoint adds no stall.
func waypointScoping() *scenarios.Scenario {
	return &scenarios.Scenario{
		Name:        "waypoint-scoping",
		Description: "the reviews waypoint holds and serves reviews only; details stays L4",
		Requires: func(t *scenarios.T) {
			requireWaypoints(t)
			t.RequireWorkload(bookinfoNS, "details-v1")
		},
		Setup: setupReviewsWaypoint,
		Wait:  waitReviewsWaypoint,
		Check: func(t *scenarios.T) {
			t.Phase("config", func() {
				d := t.ProxyDump(scenarios.Waypoint(bookinfoNS, reviewsWaypoint))
				t.Expect(len(scenarios.Mentions(d, fqdn("reviews"))) > 0, "the reviews waypoint has config for reviews",
					"listeners, routes and clusters for "+fqdn("reviews"), scenarios.ClusterNames(d))
				t.ExpectEqual("the reviews waypoint holds nothing for productpage, details or ratings",
					[]string(nil), scenarios.Mentions(d, "productpage", "details", "ratings"))
			})
			t.Phase("traffic", func() {
				// Envoy's x-envoy-upstream-service-time response header says an L7 proxy was on the way.
				const l7Header = "x-envoy-upstream-service-time"
				t.ExpectResponse("sleep -> reviews passes the waypoint", scenarios.Request{URL: "http://reviews:9080/reviews/0", Repeat: 5},
					scenarios.ResponseWant{Status: 200, Headers: map[string]string{l7Header: `^\d+$`}})
				t.ExpectResponse("sleep -> details (no waypoint) stays L4", scenarios.Request{URL: "http://details:9080/details/0", Repeat: 5},
					scenarios.ResponseWant{Status: 200, Headers: map[string]string{l7Header: ""}})
			})
			t.Phase("path", func() {
				hbone := true
				t.ExpectPath("sleep -> reviews crosses the reviews waypoint, mTLS end to end", scenarios.Request{URL: "http://reviews:9080/reviews/0"},
					scenarios.PathWant{SrcIdentity: spiffe(bookinfoNS, "sleep"), DstIdentity: spiffe(bookinfoNS, "bookinfo-reviews"), HBONE: &hbone,
						Waypoint: bookinfoNS + "/" + reviewsWaypoint})
				t.ExpectPath("sleep -> details crosses no waypoint", scenarios.Request{URL: "http://details:9080/details/0"},
					scenarios.PathWant{SrcIdentity: spiffe(bookinfoNS, "sleep"), DstIdentity: spiffe(bookinfoNS, "bookinfo-details"), HBONE: &hbone, Waypoint: "none"})
			})
			t.Phase("latency", func() {
				// The median only, with a budget far above the ~20 ms a request takes: on a shared CI
				// machine single requests stall for seconds when the node is starved, but a waypoint that
				// stalls every request (a retry back-off, a connection that waits for a timeout) still fails.
				t.ExpectLatency("sleep -> reviews through the waypoint stays under budget", scenarios.Request{URL: "http://reviews:9080/reviews/0"},
					10, map[float64]time.Duration{0.5: time.Second})
			})
		},
	}
}
