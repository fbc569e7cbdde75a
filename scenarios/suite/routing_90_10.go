package suite

import (
	"github.com/meshlab/meshlab/scenarios"
)

// routing-90-10: reviews is split 90% v1 / 10% v2 by the reviews waypoint, first with a VirtualService
// and DestinationRule subsets, then with an HTTPRoute to per-version Services. Each phase checks the
// waypoint's config (weighted clusters, subsets, endpoints, nothing for other services) and the traffic
// (a chi-square goodness-of-fit test at alpha 0.001 over SampleSize requests).
func routing9010() *scenarios.Scenario {
	return &scenarios.Scenario{
		Name:        "routing-90-10",
		Description: "reviews split 90% v1 / 10% v2 through the reviews waypoint (VirtualService, then HTTPRoute)",
		Requires: func(t *scenarios.T) {
			requireWaypoints(t)
			t.RequireWorkload(bookinfoNS, "reviews-v1")
			t.RequireWorkload(bookinfoNS, "reviews-v2")
		},
		Setup: func(t *scenarios.T) {
			setupReviewsWaypoint(t)
			t.Apply(reviewsVersionServicesYAML)
		},
		Wait: waitReviewsWaypoint,
		Check: func(t *scenarios.T) {
			t.Phase("virtualservice", func() {
				t.RequireResource("networking.istio.io/v1", "virtualservices")
				t.RequireResource("networking.istio.io/v1", "destinationrules")
				checkSplit(t, reviewsVirtualServiceYAML, map[string]string{
					inboundVIP("reviews", "v1"): "reviews-v1",
					inboundVIP("reviews", "v2"): "reviews-v2",
				})
			})
			t.Phase("httproute", func() {
				t.RequireResource("gateway.networking.k8s.io/v1", "httproutes")
				checkSplit(t, reviewsHTTPRouteYAML, map[string]string{
					inboundVIP("reviews-v1", ""): "reviews-v1",
					inboundVIP("reviews-v2", ""): "reviews-v2",
				})
			})
		},
	}
}

// splitWeights is the 90/10 split by reviews version.
var splitWeights = map[string]float64{"reviews-v1": 90, "reviews-v2": 10}

// checkSplit applies the routing config, checks the waypoint's config and the traffic, and removes the
// config again (also when a check stops the phase) so the next phase starts from the bare waypoint.
// clusters maps each weighted cluster to the version it must lead to.
func checkSplit(t *scenarios.T, routing string, clusters map[string]string) {
	waypoint := scenarios.Waypoint(bookinfoNS, reviewsWaypoint)
	t.Apply(routing)
	defer func() {
		t.Delete(routing)
		t.WaitConverged(waypoint)
	}()
	t.WaitConverged(waypoint)

	// Config: the route splits 90/10 over the expected clusters, whose endpoints are the version's pods.
	d := t.ProxyDump(waypoint)
	route := inboundVIP("reviews", "")
	weights, err := scenarios.RouteWeights(d, route)
	t.Must(err, "reading the waypoint's reviews route")
	want := map[string]uint32{}
	for cluster, version := range clusters {
		want[cluster] = uint32(splitWeights[version])
	}
	t.ExpectEqual("the waypoint's route "+route+" has weighted clusters 90/10", want, weights)
	names := scenarios.ClusterNames(d)
	for cluster, version := range clusters {
		t.Expect(contains(names, cluster), "the waypoint has cluster "+cluster, cluster, names)
		t.ExpectEqual("endpoints of "+cluster+" are the "+version+" pods",
			t.PodAddrs(bookinfoNS, "app=reviews,version="+version[len("reviews-"):], 9080), scenarios.EndpointAddrs(d, cluster))
	}
	t.ExpectEqual("endpoints of "+route+" are every reviews pod",
		t.PodAddrs(bookinfoNS, "app=reviews", 9080), scenarios.EndpointAddrs(d, route))
	t.ExpectEqual("the reviews waypoint holds nothing for productpage, details or ratings",
		[]string(nil), scenarios.Mentions(d, "productpage", "details", "ratings"))

	// Traffic: sleep -> reviews, classified by the podname reviews puts in its JSON.
	n := scenarios.SampleSize(splitWeights)
	rs := t.CurlN(scenarios.Request{URL: "http://reviews:9080/reviews/0"}, n, 8)
	counts := scenarios.Tally(rs, scenarios.ByPodName("reviews-v1", "reviews-v2", "reviews-v3"))
	t.ExpectSplit("reviews versions seen from sleep fit 90/10", counts, splitWeights)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// reviewsVersionServicesYAML gives each reviews version a Service, for HTTPRoute backendRefs.
var reviewsVersionServicesYAML = `
apiVersion: v1
kind: Service
metadata:
  name: reviews-v1
  namespace: default
  labels: {app: reviews, service: reviews-v1}
spec:
  selector: {app: reviews, version: v1}
  ports:
  - {name: http, port: 9080, targetPort: 9080}
---
apiVersion: v1
kind: Service
metadata:
  name: reviews-v2
  namespace: default
  labels: {app: reviews, service: reviews-v2}
spec:
  selector: {app: reviews, version: v2}
  ports:
  - {name: http, port: 9080, targetPort: 9080}
`

// reviewsVirtualServiceYAML is Istio's traffic-shifting task at 90/10.
var reviewsVirtualServiceYAML = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews, subset: v2}
      weight: 10
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
`

// reviewsHTTPRouteYAML is the same split with Gateway API (GAMMA: the parent is the reviews Service).
var reviewsHTTPRouteYAML = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews, port: 9080}
  rules:
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: 90}
    - {name: reviews-v2, port: 9080, weight: 10}
`
