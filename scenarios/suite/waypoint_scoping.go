package suite

import (
	"github.com/meshlab/meshlab/scenarios"
)

// waypoint-scoping: a waypoint serves only what is bound to it. The reviews waypoint holds config for
// reviews and nothing else (it is destination-oriented, unlike a sidecar), requests to reviews pass an
// L7 proxy on the way (Envoy's x-envoy-upstream-service-time response header), and requests to details,
// which has no waypoint, stay L4 (no such header).
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
				l7 := func(r scenarios.Response) string {
					switch {
					case !r.OK():
						return r.String()
					case r.Header.Get("X-Envoy-Upstream-Service-Time") != "":
						return "L7 (through a waypoint)"
					}
					return "L4 only"
				}
				rs := t.CurlN(scenarios.Request{URL: "http://reviews:9080/reviews/0"}, 5, 5)
				expectAll(t, "sleep -> reviews passes the waypoint", rs, l7, "L7 (through a waypoint)")
				rs = t.CurlN(scenarios.Request{URL: "http://details:9080/details/0"}, 5, 5)
				expectAll(t, "sleep -> details (no waypoint) stays L4", rs, l7, "L4 only")
			})
		},
	}
}
