package configgen_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

// The tests here show that the fields docs/api-coverage.md lists as implemented, and no golden or
// scenario covers, reach the generated config (issue #12).

func bookinfoWith(t *testing.T, extra string) string {
	t.Helper()
	base, err := os.ReadFile(modeltest.Path(modeltest.Bookinfo))
	if err != nil {
		t.Fatal(err)
	}
	return string(base) + "\n---\n" + extra
}

func containsAll(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %s:\n%s", what, w, got)
		}
	}
}

// TestCoverageVirtualServiceFields: http.name, http.match (uri exact/regex, method exact, headers, withoutHeaders,
// port), directResponse, retries and fault delay (percentage and the legacy percent) become Envoy routes at the waypoint.
func TestCoverageVirtualServiceFields(t *testing.T) {
	snap := modeltest.FromYAML(t, bookinfoWith(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: exact
    match: [{uri: {exact: /reviews/1}, method: {exact: GET}, withoutHeaders: {x-debug: {}}, port: 9080}]
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: 5xx}
    fault: {delay: {fixedDelay: 1s, percentage: {value: 10}}}
    route: [{destination: {host: reviews}}]
  - name: regex
    match: [{uri: {regex: "/r[0-9]+"}, headers: {x-user: {prefix: ad}}}]
    directResponse: {status: 418}
  - fault: {delay: {fixedDelay: 2s, percent: 20}}
    route: [{destination: {host: reviews}}]`))
	s := waypointRoutesJSON(t, snap)
	containsAll(t, "routes", s,
		`"name":"exact"`, `"path":"/reviews/1"`, `"name":":method","stringMatch":{"exact":"GET"}`,
		`"name":"x-debug","presentMatch":true,"invertMatch":true`,
		`"retryOn":"5xx","numRetries":3,"perTryTimeout":"2s"`,
		`"fixedDelay":"1s","percentage":{"numerator":100000`, `"fixedDelay":"2s","percentage":{"numerator":200000`,
		`"safeRegex":{"regex":"/r[0-9]+"}`, `"name":"x-user","stringMatch":{"prefix":"ad"}`,
		`"directResponse":{"status":418}`)
}

// TestCoverageHTTPRouteFields: name, matches (path Exact and RegularExpression, headers, method) and
// timeouts.request become Envoy routes at the waypoint.
func TestCoverageHTTPRouteFields(t *testing.T) {
	routes, err := os.ReadFile(modeltest.Path(modeltest.ReviewsHTTPRoute))
	if err != nil {
		t.Fatal(err)
	}
	snap := modeltest.FromYAML(t, bookinfoWith(t, strings.Replace(string(routes), `  rules:
  - backendRefs:`, `  rules:
  - name: r0
    matches:
    - path: {type: Exact, value: /reviews/1}
      method: GET
      headers: [{name: X-User, value: admin}]
    - path: {type: RegularExpression, value: "/r[0-9]+"}
    timeouts: {request: 3s}
    backendRefs:`, 1)))
	s := waypointRoutesJSON(t, snap)
	containsAll(t, "routes", s,
		`"path":"/reviews/1"`, `"name":":method","stringMatch":{"exact":"GET"}`,
		`"name":"x-user","stringMatch":{"exact":"admin"}`, `"safeRegex":{"regex":"/r[0-9]+"}`,
		`"name":"r0"`, `"timeout":"3s"`)
}

// TestCoverageWaypointAuthorizationFields: the source and operation fields a waypoint enforces become
// Envoy RBAC principals and permissions; a policy with the singular targetRef is enforced too.
func TestCoverageWaypointAuthorizationFields(t *testing.T) {
	snap := modeltest.FromYAML(t, bookinfoWith(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: fields, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  action: DENY
  rules:
  - from:
    - source: {notPrincipals: [cluster.local/ns/default/sa/a], namespaces: [ns1], notNamespaces: [ns2]}
    - source: {serviceAccounts: [ns3/sa3], notServiceAccounts: [ns4/sa4]}
    - source: {ipBlocks: [10.1.0.0/16], notIpBlocks: [10.2.0.1], remoteIpBlocks: [10.3.0.0/16], notRemoteIpBlocks: [10.4.0.0/16]}
    to:
    - operation: {notMethods: [PUT], notPaths: [/ok], hosts: [reviews.example], notHosts: [other.example], ports: ["9080"], notPorts: ["9090"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: single-target-ref, namespace: default}
spec:
  targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: reviews-waypoint}
  rules: [{to: [{operation: {methods: [GET]}}]}]`))
	if len(snap.Problems) != 0 {
		t.Fatalf("Problems = %v", snap.Problems)
	}
	cfg, err := configgen.Envoy(snap, reviewsWaypoint)
	if err != nil {
		t.Fatal(err)
	}
	m := hcmOf(t, cfg, configgen.ListenerMainInternal, "inbound-vip|9080|http|reviews.default.svc.cluster.local")
	var got strings.Builder
	for _, f := range m.HttpFilters {
		if f.Name == "envoy.filters.http.rbac" {
			b, _ := protojson.Marshal(f.GetTypedConfig())
			got.Write(b)
		}
	}
	s := strings.ReplaceAll(got.String(), " ", "")
	containsAll(t, "RBAC filter", s,
		`"notId":{"authenticated":{"principalName":{"exact":"spiffe://cluster.local/ns/default/sa/a"}}}`,
		`.*/ns/ns1/.*`, `.*/ns/ns2/.*`,
		`"exact":"spiffe://cluster.local/ns/ns3/sa/sa3"`, `"exact":"spiffe://cluster.local/ns/ns4/sa/sa4"`,
		`"directRemoteIp":{"addressPrefix":"10.1.0.0","prefixLen":16}`, `"directRemoteIp":{"addressPrefix":"10.2.0.1","prefixLen":32}`,
		`"remoteIp":{"addressPrefix":"10.3.0.0","prefixLen":16}`, `"remoteIp":{"addressPrefix":"10.4.0.0","prefixLen":16}`,
		`"exact":"PUT"`, `"exact":"/ok"`, `"name":":authority","stringMatch":{"exact":"reviews.example"}`,
		`"exact":"other.example"`, `"destinationPort":9080`, `"destinationPort":9090`,
		`ns[default]-policy[single-target-ref]-rule[0]`)
}

// TestCoverageZtunnelAuthorizationFields: the source and operation fields ztunnel enforces reach its
// policies; a selector policy's scope follows its selector.
func TestCoverageZtunnelAuthorizationFields(t *testing.T) {
	snap := modeltest.FromYAML(t, bookinfoWith(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: fields, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: [cluster.local/ns/default/sa/a], notPrincipals: ["*/sa/b"], namespaces: [ns1], notNamespaces: [ns2]}
    - source: {serviceAccounts: [ns3/sa3]}
    - source: {ipBlocks: [10.1.0.0/16], notIpBlocks: [10.2.0.1]}
    to:
    - operation: {ports: ["9080"], notPorts: ["9090"]}`))
	if len(snap.Problems) != 0 {
		t.Fatalf("Problems = %v", snap.Problems)
	}
	_, _, pols := configgen.ZtunnelConfig(snap, "meshlab-worker")
	b, err := json.Marshal(pols)
	if err != nil {
		t.Fatal(err)
	}
	containsAll(t, "ztunnel policies", string(b),
		`"scope":"WORKLOAD_SELECTOR","action":"ALLOW"`,
		`"principals":[{"exact":"cluster.local/ns/default/sa/a"}]`, `"principals":[{"exact":"cluster.local/ns/ns3/sa/sa3"}]`,
		`"notPrincipals":[{"suffix":"/sa/b"}]`, `"namespaces":[{"exact":"ns1"}]`, `"notNamespaces":[{"exact":"ns2"}]`,
		`"sourceIps":["10.1.0.0/16"]`, `"notSourceIps":["10.2.0.1"]`,
		`"destinationPorts":[9080]`, `"notDestinationPorts":[9090]`)
}

// TestRouteMatchQueryParams: HTTPRoute queryParams (exact, regular expression) become Envoy
// query_parameters matchers at the waypoint; a rule with two matches becomes two routes.
func TestRouteMatchQueryParams(t *testing.T) {
	routes, err := os.ReadFile(modeltest.Path(modeltest.ReviewsHTTPRoute))
	if err != nil {
		t.Fatal(err)
	}
	snap := modeltest.FromYAML(t, bookinfoWith(t, strings.Replace(string(routes), `  rules:
  - backendRefs:`, `  rules:
  - name: q
    matches:
    - queryParams: [{name: animal, value: whale}]
    - queryParams: [{type: RegularExpression, name: color, value: "bl.*"}]
    backendRefs:`, 1)))
	s := waypointRoutesJSON(t, snap)
	containsAll(t, "routes", s,
		`"queryParameters":[{"name":"animal","stringMatch":{"exact":"whale"}}]`,
		`"queryParameters":[{"name":"color","stringMatch":{"safeRegex":{"regex":"bl.*"}}}]`)
	if n := strings.Count(s, `"name":"q"`); n != 2 {
		t.Errorf("%d routes named q, want 2 (one per match):\n%s", n, s)
	}
}

// waypointRoutesJSON is the reviews waypoint's route configurations as compact protojson (spaces removed),
// after checking that the snapshot has no problems.
func waypointRoutesJSON(t *testing.T, snap *model.Snapshot) string {
	t.Helper()
	if len(snap.Problems) != 0 {
		t.Fatalf("Problems = %v", snap.Problems)
	}
	cfg, err := configgen.Envoy(snap, reviewsWaypoint)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, rc := range cfg.Routes {
		b, err := protojson.Marshal(rc)
		if err != nil {
			t.Fatal(err)
		}
		got.Write(b)
	}
	return strings.ReplaceAll(got.String(), " ", "")
}

// TestCoverageLoadBalancerSimple: each simple load balancer becomes the cluster's lb_policy as in Istio:
// UNSPECIFIED and the deprecated LEAST_CONN are LEAST_REQUEST, PASSTHROUGH is an original-destination
// cluster without EDS; a port-level setting for another port does not apply.
func TestCoverageLoadBalancerSimple(t *testing.T) {
	for _, tc := range []struct{ simple, want string }{
		{"UNSPECIFIED", `"lbPolicy":"LEAST_REQUEST"`},
		{"LEAST_CONN", `"lbPolicy":"LEAST_REQUEST"`},
		{"LEAST_REQUEST", `"lbPolicy":"LEAST_REQUEST"`},
		{"RANDOM", `"lbPolicy":"RANDOM"`},
		{"ROUND_ROBIN", `"name":"inbound-vip|9080|http|reviews.default.svc.cluster.local","type":"EDS"`},
		{"PASSTHROUGH", `"name":"inbound-vip|9080|http|reviews.default.svc.cluster.local","type":"ORIGINAL_DST","connectTimeout":"10s","lbPolicy":"CLUSTER_PROVIDED"`},
	} {
		t.Run(tc.simple, func(t *testing.T) {
			snap := modeltest.FromYAML(t, bookinfoWith(t, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: `+tc.simple+`}
    portLevelSettings: [{port: {number: 9999}, loadBalancer: {simple: RANDOM}}]`))
			cfg, err := configgen.Envoy(snap, reviewsWaypoint)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cfg.Clusters {
				if c.GetName() != "inbound-vip|9080|http|reviews.default.svc.cluster.local" {
					continue
				}
				b, _ := protojson.Marshal(c)
				got := strings.ReplaceAll(string(b), " ", "")
				containsAll(t, "cluster", got, tc.want)
				if tc.simple == "ROUND_ROBIN" && strings.Contains(got, "lbPolicy") {
					t.Errorf("ROUND_ROBIN (Envoy's default, omitted) cluster has an lbPolicy: %s", got)
				}
				return
			}
			t.Fatal("no reviews cluster")
		})
	}
}
