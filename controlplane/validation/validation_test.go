package validation

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	security "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
)

// want is an expected violation or warning: the exact field path and a substring of its message.
type want struct{ field, substr string }

type testCase struct {
	name  string
	doc   string // a YAML document
	raw   bool   // check through ValidateYAML instead of decoding with sigs.k8s.io/yaml and calling Validate
	errs  []want // none: the object is valid
	warns []want // the exact warnings expected
}

// doc builds a YAML document of kind in namespace default, named test, with spec (written unindented).
func doc(kind, spec string) string {
	group := groupNetworking
	if kinds[kind].group == groupSecurity {
		group = groupSecurity
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: %s/v1\nkind: %s\nmetadata:\n  name: test\n  namespace: default\nspec:\n", group, kind)
	for _, line := range strings.Split(strings.Trim(spec, "\n"), "\n") {
		b.WriteString("  " + line + "\n")
	}
	return b.String()
}

// decode reads a document into its typed object with sigs.k8s.io/yaml, as the loaders do.
func decode(t *testing.T, y string) runtime.Object {
	t.Helper()
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(y), &tm); err != nil {
		t.Fatalf("reading type: %v", err)
	}
	gv, _ := schema.ParseGroupVersion(tm.APIVersion)
	obj := newObject(gv.Group, tm.Kind)
	if obj == nil {
		t.Fatalf("no type for %s %s", tm.APIVersion, tm.Kind)
	}
	if err := yaml.Unmarshal([]byte(y), obj); err != nil {
		t.Fatalf("decoding: %v\n%s", err, y)
	}
	return obj
}

func run(t *testing.T, cases []testCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var (
				warns Warnings
				err   error
			)
			if tc.raw {
				_, warns, err = ValidateYAML([]byte(tc.doc))
			} else {
				warns, err = Validate(decode(t, tc.doc))
			}
			var got []want
			if err != nil {
				var invalid *Error
				if !errors.As(err, &invalid) {
					t.Fatalf("error is not a *validation.Error: %v", err)
				}
				for _, e := range invalid.Errs {
					got = append(got, want{e.Field, e.Error()})
				}
			}
			check(t, "error", tc.errs, got)
			var gotWarns []want
			for _, w := range warns {
				gotWarns = append(gotWarns, want{w.Field, w.String()})
			}
			check(t, "warning", tc.warns, gotWarns)
		})
	}
}

// check matches got against expected one to one: same field path, message containing the substring.
func check(t *testing.T, what string, expected, got []want) {
	t.Helper()
	used := make([]bool, len(got))
	for _, w := range expected {
		found := false
		for i, g := range got {
			if !used[i] && g.field == w.field && strings.Contains(g.substr, w.substr) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing %s at %s containing %q", what, w.field, w.substr)
		}
	}
	for i, g := range got {
		if !used[i] {
			t.Errorf("unexpected %s: %s", what, g.substr)
		}
	}
}

func TestVirtualService(t *testing.T) {
	run(t, []testCase{
		{name: "valid bookinfo reviews v1", doc: doc("VirtualService", `
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}`)},
		{name: "valid traffic shift with matches, retries, timeout, fault, mirror, cors and headers", doc: doc("VirtualService", `
hosts: [reviews.default.svc.cluster.local]
http:
- name: jason
  match:
  - headers:
      end-user: {exact: jason}
    uri: {regex: "^/reviews/[0-9]+$"}
  - queryParams:
      debug: {}
  route:
  - destination: {host: reviews, subset: v2}
    headers:
      request:
        set: {x-canary: "true", x-host: "%HOSTNAME%", x-pct: "100%%"}
- route:
  - destination: {host: reviews, subset: v1, port: {number: 9080}}
    weight: 75
  - destination: {host: reviews, subset: v3}
    weight: 25
  timeout: 3s
  retries: {attempts: 2, perTryTimeout: 500ms, retryOn: "5xx,connect-failure,503"}
  fault:
    delay: {fixedDelay: 7s, percentage: {value: 0.1}}
  mirror: {host: reviews, subset: v3}
  mirrorPercentage: {value: 10}
  corsPolicy:
    allowOrigins: [{exact: "https://example.com"}]
    allowMethods: [GET, POST]
    allowHeaders: [x-custom]
    maxAge: 24h`)},
		{name: "valid weights not summing to 100, as weights are relative in current Istio", doc: doc("VirtualService", `
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
    weight: 30
  - destination: {host: reviews, subset: v2}
    weight: 30`)},
		{name: "valid gateway-bound with redirect, direct response and catch-all", doc: doc("VirtualService", `
hosts: ["*.example.com", 10.0.0.1]
gateways: [istio-system/ingress]
http:
- match: [{uri: {prefix: /old}}]
  redirect: {prefixRewrite: /new, redirectCode: 308}
- match: [{uri: {exact: /health}}]
  directResponse: {status: 200, body: {string: ok}}
- route:
  - destination: {host: productpage}`)},
		{name: "valid tcp and tls routes", doc: doc("VirtualService", `
hosts: [db.example.com]
tcp:
- match: [{port: 5432, destinationSubnets: [10.0.0.0/8]}]
  route: [{destination: {host: db.example.com, port: {number: 5432}}}]
tls:
- match: [{sniHosts: [db.example.com], port: 443}]
  route: [{destination: {host: db.example.com}}]`)},
		{name: "valid delegate (no hosts)", doc: doc("VirtualService", `
http:
- route: [{destination: {host: reviews}}]`)},

		{name: "negative weight", doc: doc("VirtualService", `
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
    weight: 110
  - destination: {host: reviews, subset: v2}
    weight: -10`),
			errs: []want{{"spec.http[0].route[1].weight", "Invalid value: -10: must not be negative"}}},
		{name: "weights all zero", doc: doc("VirtualService", `
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
    weight: 0
  - destination: {host: reviews, subset: v2}`),
			errs: []want{{"spec.http[0].route", "cannot all be 0"}}},
		{name: "redirect together with route", doc: doc("VirtualService", `
hosts: [reviews]
http:
- redirect: {uri: /v2}
  route: [{destination: {host: reviews}}]
  rewrite: {uri: /x}`),
			errs: []want{
				{"spec.http[0].route", "Forbidden: cannot be set together with redirect"},
				{"spec.http[0].rewrite", "Forbidden: cannot be set together with redirect"},
			}},
		{name: "directResponse together with route and no route at all", doc: doc("VirtualService", `
hosts: [reviews]
http:
- directResponse: {status: 503}
  route: [{destination: {host: reviews}}]
- match: [{uri: {prefix: /x}}]`),
			errs: []want{
				{"spec.http[0].route", "cannot be set together with directResponse"},
				{"spec.http[1].route", "Required value: an HTTP route needs route destinations, a redirect or a directResponse"},
			},
			warns: []want{{"spec.http[1]", "rule not used: spec.http[0] before it has no matches"}}},
		{name: "invalid regex and empty prefix", doc: doc("VirtualService", `
hosts: [reviews]
http:
- match:
  - uri: {regex: "/reviews/(["}
    headers:
      x-version: {prefix: ""}
      "bad header": {exact: x}
  route: [{destination: {host: reviews}}]`),
			errs: []want{
				{"spec.http[0].match[0].uri.regex", "not a valid RE2 regular expression"},
				{"spec.http[0].match[0].headers[x-version].prefix", "prefix match must not be empty"},
				{"spec.http[0].match[0].headers[bad header]", "not a valid HTTP header name"},
			}},
		{name: "hosts: * on the mesh, invalid name, overlapping", doc: doc("VirtualService", `
hosts: ["*", foo_bar.example.com, "*.example.com", a.example.com]
http: [{route: [{destination: {host: reviews}}]}]`),
			errs: []want{
				{"spec.hosts[0]", "wildcard host * is not allowed for virtual services bound to the mesh"},
				{"spec.hosts[1]", `label "foo_bar" is not a valid DNS label`},
			}},
		{name: "overlapping hosts", doc: doc("VirtualService", `
hosts: ["*.example.com", a.example.com]
http: [{route: [{destination: {host: reviews}}]}]`),
			errs: []want{{"spec.hosts[1]", `overlaps hosts[0] "*.example.com"`}}},
		{name: "no routes at all", doc: doc("VirtualService", `hosts: [reviews]`),
			errs: []want{{"spec.http", "at least one http, tcp or tls route is required"}}},
		{name: "durations, retries, fault, mirror, cors", doc: doc("VirtualService", `
hosts: [reviews]
http:
- route: [{destination: {host: reviews, port: {number: 70000}}}]
  timeout: 0.5ms
  retries: {attempts: 0, retryOn: "5xx,bogus"}
  fault:
    abort: {httpStatus: 700, percentage: {value: 120}}
  mirrorPercentage: {value: 150}
  corsPolicy:
    allowOrigins: [{exact: ""}]
    allowMethods: [FETCH]
    maxAge: 1.5s`),
			errs: []want{
				{"spec.http[0].route[0].destination.port.number", "70000: must be between 1 and 65535"},
				{"spec.http[0].timeout", "must be at least 1ms"},
				{"spec.http[0].retries.attempts", "retries are disabled"},
				{"spec.http[0].retries.retryOn", `"bogus": not a valid retryOn policy`},
				{"spec.http[0].fault.abort.httpStatus", "700: must be an HTTP status between 200 and 599"},
				{"spec.http[0].fault.abort.percentage.value", "must be 0 or between 0.0001 and 100"},
				{"spec.http[0].mirrorPercentage.value", "must be between 0 and 100"},
				{"spec.http[0].corsPolicy.allowOrigins[0]", "needs a non-empty exact, prefix or regex"},
				{"spec.http[0].corsPolicy.allowMethods[0]", `Unsupported value: "FETCH"`},
				{"spec.http[0].corsPolicy.maxAge", "only second precision is supported"},
			}},
		{name: "fault without abort or delay, bad grpc status", doc: doc("VirtualService", `
hosts: [reviews]
http:
- route: [{destination: {host: reviews}}]
  fault: {}
- route: [{destination: {host: ratings}}]
  fault: {abort: {grpcStatus: NOPE}}`),
			errs: []want{
				{"spec.http[0].fault", "needs an abort, a delay or both"},
				{"spec.http[1].fault.abort.grpcStatus", `Unsupported value: "NOPE"`},
			},
			warns: []want{{"spec.http[1]", "only the last rule can have no matches"}}},
		{name: "header operations and authority set twice", doc: doc("VirtualService", `
hosts: [reviews]
http:
- route: [{destination: {host: reviews}}]
  rewrite: {authority: a.example.com}
  headers:
    request:
      set: {":authority": b.example.com, ":path": /x}
    response:
      set: {host: x, x-bad: "50%"}`),
			errs: []want{
				{"spec.http[0].headers.request.set[:path]", `cannot have a ":" prefix`},
				{"spec.http[0].headers.response.set[host]", "Host header cannot be set"},
				{"spec.http[0].headers.response.set[x-bad]", "unescaped %"},
				{"spec.http[0].headers.request.set[:authority]", `already rewritten to "a.example.com"`},
			}},
		{name: "redirect and rewrite rules", doc: doc("VirtualService", `
hosts: [reviews]
http:
- match: [{uri: {exact: /a}}]
  redirect: {uri: /b, prefixRewrite: /c, redirectCode: 200, scheme: ftp}
- rewrite: {uri: /x, uriRegexRewrite: {match: "(", rewrite: /y}}
  route: [{destination: {host: reviews}}]`),
			errs: []want{
				{"spec.http[0].redirect.prefixRewrite", "cannot be set together with uri"},
				{"spec.http[0].match[0].uri", "requires every uri match to be a prefix match"},
				{"spec.http[0].redirect.redirectCode", "must be a 3xx status"},
				{"spec.http[0].redirect.scheme", `Unsupported value: "ftp"`},
				{"spec.http[1].rewrite.uriRegexRewrite", "cannot be set together with uri"},
				{"spec.http[1].rewrite.uriRegexRewrite.match", "not a valid RE2"},
			}},
		{name: "tcp route without destinations, tls SNI outside the hosts", doc: doc("VirtualService", `
hosts: [db.example.com]
tcp:
- match: [{port: 5432, destinationSubnets: [10.0.0.0/40]}]
tls:
- match: [{sniHosts: [other.example.com]}]
  route: [{destination: {host: db.example.com}}]`),
			errs: []want{
				{"spec.tcp[0].match[0].destinationSubnets[0]", "not a valid CIDR block"},
				{"spec.tcp[0].route", "a TCP route needs route destinations"},
				{"spec.tls[0].match[0].sniHosts[0]", "not a subset of any of the VirtualService's hosts"},
			}},
		{name: "JWT claim routing needs a gateway", doc: doc("VirtualService", `
hosts: [reviews]
http:
- match: [{headers: {"@request.auth.claims.group": {exact: admin}}}]
  route: [{destination: {host: reviews}}]`),
			errs: []want{{"spec.http[0].match[0].headers[@request.auth.claims.group]", "only supported on gateways"}}},
		{name: "gateway references", doc: doc("VirtualService", `
hosts: [bookinfo.example.com]
gateways: [istio-system/, bookinfo-gateway.istio-system]
http: [{route: [{destination: {host: productpage}}]}]`),
			errs:  []want{{"spec.gateways[0]", "namespace and gateway name cannot be empty"}},
			warns: []want{{"spec.gateways[1]", `prefer <namespace>/<name>: "istio-system/bookinfo-gateway"`}}},
		{name: "delegate with gateways and a delegate route", doc: doc("VirtualService", `
gateways: [mesh]
http: [{delegate: {name: other}}]`),
			errs: []want{
				{"spec.gateways", "a delegate VirtualService (one without hosts) cannot name gateways"},
				{"spec.http[0].delegate", "cannot delegate again"},
				{"spec.http[0].route", "needs route destinations"},
			}},
		{name: "metadata and type", doc: `
apiVersion: networking.istio.io/v2
kind: VirtualService
metadata: {name: Bad_Name, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]`,
			errs: []want{
				{"apiVersion", `Unsupported value: "networking.istio.io/v2"`},
				{"metadata.name", `Invalid value: "Bad_Name"`},
			}},
		{name: "warnings: unreachable rules and deprecated mirrorPercent", doc: doc("VirtualService", `
hosts: [reviews]
http:
- match: [{uri: {prefix: /a}}]
  route: [{destination: {host: reviews}}]
  mirror: {host: ratings}
  mirrorPercent: 50
- match: [{uri: {prefix: /a}, name: again}]
  route: [{destination: {host: reviews}}]
- route: [{destination: {host: reviews}}]
- route: [{destination: {host: ratings}}]`),
			warns: []want{
				{"spec.http[0].mirrorPercent", "deprecated"},
				{"spec.http[1].match[0]", "repeats a match of spec.http[0]"},
				{"spec.http[1]", "all its matches are used by earlier rules"},
				{"spec.http[3]", "only the last rule can have no matches"},
			}},
		{name: "raw: two members of the uri oneof and a misspelt field", raw: true, doc: doc("VirtualService", `
hosts: [reviews]
htpp: []
http:
- match: [{uri: {exact: /a, prefix: /b}}]
  route: [{destination: {host: reviews}, wieght: 10}]`),
			errs: []want{
				{"spec.htpp", "Forbidden: unknown field"},
				{"spec.http[0].match[0].uri.prefix", "cannot be set together with exact: only one of exact, prefix, regex may be set"},
				{"spec.http[0].route[0].wieght", "unknown field"},
			}},
		{name: "raw: wrong JSON types", raw: true, doc: doc("VirtualService", `
hosts: reviews
http:
- route: [{destination: {host: reviews}, weight: heavy}]
  timeout: 5`),
			errs: []want{
				{"spec.hosts", "must be a list"},
				{"spec.http[0].route[0].weight", `"heavy": must be a number`},
				{"spec.http[0].timeout", "must be a string"},
			}},
	})
}

func TestDestinationRule(t *testing.T) {
	run(t, []testCase{
		{name: "valid bookinfo subsets with traffic policy", doc: doc("DestinationRule", `
host: reviews
trafficPolicy:
  loadBalancer: {simple: LEAST_REQUEST}
  connectionPool:
    tcp: {maxConnections: 100, connectTimeout: 30ms, idleTimeout: 0s}
    http: {http1MaxPendingRequests: 10, maxRequestsPerConnection: 1}
  outlierDetection: {consecutive5xxErrors: 7, interval: 5m, baseEjectionTime: 15m, maxEjectionPercent: 50}
  tls: {mode: ISTIO_MUTUAL}
  portLevelSettings:
  - port: {number: 9080}
    loadBalancer: {simple: ROUND_ROBIN}
subsets:
- name: v1
  labels: {version: v1}
- name: v2
  labels: {version: v2}
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: user, ttl: 0s}
        ringHash: {minimumRingSize: 1024}`)},
		{name: "valid maglev, locality failover with outlier detection, mutual TLS", doc: doc("DestinationRule", `
host: "*.example.com"
trafficPolicy:
  loadBalancer:
    consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}
    localityLbSetting:
      failover: [{from: us-east, to: us-west}]
  outlierDetection: {consecutive5xxErrors: 1}
  tls: {mode: MUTUAL, clientCertificate: /etc/certs/cert.pem, privateKey: /etc/certs/key.pem}`)},

		{name: "raw: both simple and consistentHash", raw: true, doc: doc("DestinationRule", `
host: reviews
trafficPolicy:
  loadBalancer:
    simple: ROUND_ROBIN
    consistentHash: {httpHeaderName: x-user}`),
			errs: []want{{"spec.trafficPolicy.loadBalancer.simple",
				"cannot be set together with consistentHash: only one of simple, consistentHash may be set"}}},
		{name: "raw: unknown load balancer name", raw: true, doc: doc("DestinationRule", `
host: reviews
trafficPolicy: {loadBalancer: {simple: ROUND_ROBINN}}`),
			errs: []want{{"spec.trafficPolicy.loadBalancer.simple", `Unsupported value: "ROUND_ROBINN"`}}},
		{name: "subsets: duplicate and invalid names, bad labels", doc: doc("DestinationRule", `
host: reviews
subsets:
- name: v1
- name: v1
- name: V_1
  labels: {"version": "a b"}`),
			errs: []want{
				{"spec.subsets[1].name", `Duplicate value: "v1"`},
				{"spec.subsets[2].name", "subset name must be a DNS label"},
				{"spec.subsets[2].labels", `Invalid value: "a b"`},
			}},
		{name: "host required, empty traffic policy", doc: doc("DestinationRule", `
trafficPolicy: {}`),
			errs: []want{
				{"spec.host", "Required value"},
				{"spec.trafficPolicy", "must set at least one field"},
			}},
		{name: "consistent hash rules", doc: doc("DestinationRule", `
host: reviews
trafficPolicy:
  loadBalancer:
    consistentHash:
      httpCookie: {ttl: 10s, attributes: [{name: SameSite}, {name: SameSite}]}
      maglev: {tableSize: 1000}`),
			errs: []want{
				{"spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name", "the cookie name is required"},
				{"spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[1].name", "Duplicate value"},
				{"spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize", "must be a prime number"},
			}},
		{name: "connection pool and outlier detection ranges", doc: doc("DestinationRule", `
host: reviews
trafficPolicy:
  connectionPool:
    http: {http1MaxPendingRequests: -1, h2UpgradePolicy: UPGRADE, useClientProtocol: true, http2KeepAlive: {interval: 10s}}
    tcp: {connectTimeout: 0s}
  outlierDetection: {maxEjectionPercent: 120, consecutiveLocalOriginFailures: 3, outlierDetectionHttpErrorCodes: [99]}`),
			errs: []want{
				{"spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests", "must not be negative"},
				{"spec.trafficPolicy.connectionPool.http.useClientProtocol", "cannot be true when h2UpgradePolicy is UPGRADE"},
				{"spec.trafficPolicy.connectionPool.http.http2KeepAlive.timeout", "Required value"},
				{"spec.trafficPolicy.connectionPool.tcp.connectTimeout", "must be at least 1ms"},
				{"spec.trafficPolicy.outlierDetection.maxEjectionPercent", "120: must be between 0 and 100"},
				{"spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures", "splitExternalLocalOriginErrors"},
				{"spec.trafficPolicy.outlierDetection.outlierDetectionHttpErrorCodes[0]", "between 100 and 599"},
			}},
		{name: "TLS: MUTUAL needs certificates, credentialName excludes files", doc: doc("DestinationRule", `
host: reviews
trafficPolicy:
  tls: {mode: MUTUAL}
subsets:
- name: v1
  trafficPolicy:
    tls: {mode: SIMPLE, credentialName: my-cert, caCertificates: /ca.pem}`),
			errs: []want{
				{"spec.trafficPolicy.tls.clientCertificate", "MUTUAL mode needs a client certificate"},
				{"spec.trafficPolicy.tls.privateKey", "MUTUAL mode needs a private key"},
				{"spec.subsets[0].trafficPolicy.tls.caCertificates", "cannot be set together with credentialName"},
			}},
		{name: "port level settings need a port and a policy", doc: doc("DestinationRule", `
host: reviews
trafficPolicy:
  portLevelSettings:
  - loadBalancer: {simple: RANDOM}
  - port: {number: 9080}`),
			errs: []want{
				{"spec.trafficPolicy.portLevelSettings[0].port", "needs the port it applies to"},
				{"spec.trafficPolicy.portLevelSettings[1]", "must set loadBalancer, connectionPool, outlierDetection or tls"},
			}},
		{name: "locality weights must sum to 100; exportTo with a workload selector", doc: doc("DestinationRule", `
host: reviews
exportTo: ["*"]
workloadSelector: {matchLabels: {app: productpage}}
trafficPolicy:
  loadBalancer:
    localityLbSetting:
      distribute:
      - from: us-east/*
        to: {"us-east/*": 80, "us-west/*": 10}`),
			errs: []want{
				{"spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to", "90: locality weights must sum to 100"},
				{"spec.exportTo", "cannot be exported beyond its own namespace"},
			}},
		{name: "warnings: consistent hash without key, failover without outlier detection, deprecated ring size", doc: doc("DestinationRule", `
host: reviews
trafficPolicy:
  loadBalancer:
    consistentHash: {minimumRingSize: 512}
    localityLbSetting:
      failover: [{from: us-east, to: us-west}]`),
			warns: []want{
				{"spec.trafficPolicy.loadBalancer.consistentHash", "no hash key"},
				{"spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize", "deprecated"},
				{"spec.trafficPolicy.loadBalancer.localityLbSetting", "failover needs outlier detection"},
			}},
	})
}

func TestServiceEntry(t *testing.T) {
	run(t, []testCase{
		{name: "valid external HTTPS with DNS", doc: doc("ServiceEntry", `
hosts: [api.example.com]
location: MESH_EXTERNAL
resolution: DNS
ports:
- {number: 443, name: https, protocol: TLS}
- {number: 80, name: http, protocol: HTTP}`)},
		{name: "valid STATIC with endpoints", doc: doc("ServiceEntry", `
hosts: [legacy.internal]
addresses: [240.0.0.10]
location: MESH_INTERNAL
resolution: STATIC
ports: [{number: 8080, name: http, protocol: HTTP}]
endpoints:
- {address: 10.1.2.3, ports: {http: 18080}, labels: {version: v1}}
- {address: "unix:///var/run/legacy.sock"}`)},
		{name: "valid NONE with a CIDR", doc: doc("ServiceEntry", `
hosts: [internal-net.example.com]
addresses: [10.20.0.0/16]
resolution: NONE
ports: [{number: 5432, name: tcp-postgres, protocol: TCP}]`)},

		{name: "bad addresses", doc: doc("ServiceEntry", `
hosts: [db.example.com]
addresses: [10.0.0.300, 10.0.0.0/33]
resolution: STATIC
ports: [{number: 5432, name: tcp, protocol: TCP}]`),
			errs: []want{
				{"spec.addresses[0]", `"10.0.0.300": not a valid IP address`},
				{"spec.addresses[1]", `"10.0.0.0/33": not a valid CIDR block`},
			}},
		{name: "CIDR with DNS resolution", doc: doc("ServiceEntry", `
hosts: [db.example.com]
addresses: [10.0.0.0/24]
resolution: DNS
ports: [{number: 5432, name: tcp, protocol: TCP}]`),
			errs: []want{{"spec.resolution", "CIDR addresses are allowed only with resolution NONE or STATIC"}}},
		{name: "ports: duplicate number, bad name, unknown protocol, out of range", doc: doc("ServiceEntry", `
hosts: [api.example.com]
resolution: DNS
ports:
- {number: 443, name: https, protocol: TLS}
- {number: 443, name: HTTP_web, protocol: HTTP3}
- {number: 0, name: zero, protocol: HTTP}`),
			errs: []want{
				{"spec.ports[1].number", "Duplicate value: 443"},
				{"spec.ports[1].name", "port name must be a DNS label"},
				{"spec.ports[1].protocol", `Unsupported value: "HTTP3"`},
				{"spec.ports[2].number", "must be between 1 and 65535"},
			}},
		{name: "hosts: missing", doc: doc("ServiceEntry", `
resolution: NONE`),
			errs: []want{{"spec.hosts", "at least one host"}}},
		{name: "hosts: wildcard *, DNS without endpoints needs FQDNs", doc: doc("ServiceEntry", `
hosts: ["*", "*.example.com"]
resolution: DNS
ports: [{number: 443, name: https, protocol: TLS}]`),
			errs: []want{
				{"spec.hosts[0]", "cannot be the wildcard *"},
				{"spec.hosts[1]", "resolution DNS needs fully qualified hosts"},
			}},
		{name: "resolution NONE with endpoints; STATIC endpoint with a host name", doc: doc("ServiceEntry", `
hosts: [a.example.com]
resolution: NONE
endpoints: [{address: 10.0.0.1}]`),
			errs: []want{{"spec.endpoints", "endpoints cannot be set with resolution NONE"}}},
		{name: "STATIC endpoints: host name, unknown port name", doc: doc("ServiceEntry", `
hosts: [a.example.com]
addresses: [240.0.0.1]
resolution: STATIC
ports: [{number: 80, name: http, protocol: HTTP}]
endpoints:
- {address: backend.example.com}
- {address: 10.0.0.2, ports: {grpc: 9090}}`),
			errs: []want{
				{"spec.endpoints[0].address", "must be an IP address with resolution STATIC"},
				{"spec.endpoints[1].ports[grpc]", "not a port name defined in spec.ports"},
			}},
		{name: "several hosts with a TCP port, DNS_ROUND_ROBIN with two endpoints", doc: doc("ServiceEntry", `
hosts: [a.example.com, b.example.com]
resolution: DNS_ROUND_ROBIN
ports: [{number: 5432, name: tcp, protocol: TCP}]
endpoints: [{address: a.example.com}, {address: b.example.com}]`),
			errs: []want{
				{"spec.endpoints", "Too many: 2: must have at most 1 item"},
				{"spec.ports[0].protocol", "several hosts need HTTP or TLS ports"},
			}},
		{name: "workloadSelector with endpoints", doc: doc("ServiceEntry", `
hosts: [a.example.com]
resolution: STATIC
ports: [{number: 80, name: http, protocol: HTTP}]
workloadSelector: {labels: {app: vm}}
endpoints: [{address: 10.0.0.1}]`),
			errs: []want{{"spec.endpoints", "cannot be set together with workloadSelector"}}},
		{name: "warning: TCP port without addresses when autoallocation is off", doc: `
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: test
  labels: {networking.istio.io/enable-autoallocate-ip: "false"}
spec:
  hosts: [db.example.com]
  resolution: DNS
  ports: [{number: 5432, name: tcp}]`,
			warns: []want{{"spec.ports[0]", "addresses are required for ports serving TCP"}}},
	})
}

func TestGateway(t *testing.T) {
	run(t, []testCase{
		{name: "valid HTTP and HTTPS servers", doc: doc("Gateway", `
selector: {istio: ingressgateway}
servers:
- port: {number: 80, name: http, protocol: HTTP}
  hosts: ["*/bookinfo.example.com"]
  tls: {httpsRedirect: true}
- port: {number: 443, name: https, protocol: HTTPS}
  hosts: [bookinfo.example.com]
  tls: {mode: SIMPLE, credentialName: bookinfo-cert}
- port: {number: 15443, name: tls-passthrough, protocol: TLS}
  hosts: ["*"]
  tls: {mode: AUTO_PASSTHROUGH}`)},

		{name: "no servers", doc: doc("Gateway", `selector: {istio: ingressgateway}`),
			errs: []want{{"spec.servers", "at least one server"}}},
		{name: "HTTPS without TLS, short host, duplicate port name, unknown protocol", doc: doc("Gateway", `
servers:
- port: {number: 443, name: https, protocol: HTTPS}
  hosts: [bookinfo]
- port: {number: 8443, name: https, protocol: FOO}
  hosts: ["bad/*.example.com"]`),
			errs: []want{
				{"spec.servers[0].tls", "HTTPS and TLS servers need TLS settings"},
				{"spec.servers[0].hosts[0]", "short names (non FQDN) are not allowed"},
				{"spec.servers[1].port.protocol", `Unsupported value: "FOO"`},
				{"spec.servers[1].port.name", "port names must be unique across servers"},
			}},
		{name: "SIMPLE TLS without certificates; TLS on a TCP server", doc: doc("Gateway", `
servers:
- port: {number: 443, name: https, protocol: HTTPS}
  hosts: [a.example.com]
  tls: {mode: SIMPLE}
- port: {number: 3306, name: mysql, protocol: TCP}
  hosts: [a.example.com]
  tls: {mode: SIMPLE, credentialName: x}`),
			errs: []want{
				{"spec.servers[0].tls.serverCertificate", "SIMPLE TLS needs a server certificate"},
				{"spec.servers[0].tls.privateKey", "SIMPLE TLS needs a private key"},
				{"spec.servers[1].tls", "only HTTPS and TLS servers can have TLS settings"},
			}},
		{name: "name must be a DNS label", doc: `
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: my.gateway, namespace: istio-system}
spec:
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]`,
			errs: []want{{"metadata.name", "an Istio Gateway name must be a DNS-1123 label"}}},
	})
}

func TestAuthorizationPolicy(t *testing.T) {
	run(t, []testCase{
		{name: "valid ALLOW", doc: doc("AuthorizationPolicy", `
selector: {matchLabels: {app: reviews}}
action: ALLOW
rules:
- from:
  - source: {principals: [cluster.local/ns/default/sa/bookinfo-productpage]}
  to:
  - operation: {methods: [GET], paths: ["/reviews/*", "/api/{*}/ratings/{**}"]}
  when:
  - {key: "request.headers[x-token]", values: [secret]}
  - {key: source.ip, notValues: [10.0.0.0/8]}`)},
		{name: "valid allow-nothing (empty spec)", doc: doc("AuthorizationPolicy", `{}`)},
		{name: "valid DENY on ports, targetRefs to a waypoint Gateway", doc: doc("AuthorizationPolicy", `
targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
action: DENY
rules:
- to: [{operation: {ports: ["9080"], methods: [DELETE]}}]`)},
		{name: "valid CUSTOM", doc: doc("AuthorizationPolicy", `
action: CUSTOM
provider: {name: ext-authz}
rules: [{to: [{operation: {paths: [/admin]}}]}]`)},

		{name: "raw: unknown action", raw: true, doc: doc("AuthorizationPolicy", `
action: PERMIT
rules: [{}]`),
			errs: []want{{"spec.action", `Unsupported value: "PERMIT": supported values: "ALLOW", "DENY", "AUDIT", "CUSTOM"`}}},
		{name: "unknown action number in a typed object", doc: doc("AuthorizationPolicy", `
action: 9
rules: [{}]`),
			errs: []want{{"spec.action", `Unsupported value: "9"`}}},
		{name: "CUSTOM without provider; provider with ALLOW", doc: doc("AuthorizationPolicy", `
action: CUSTOM
rules:
- from: [{source: {principals: [a]}}]
  when: [{key: "request.auth.claims[group]", values: [x]}]`),
			errs: []want{
				{"spec.provider.name", "a CUSTOM policy needs the name of its extension provider"},
				{"spec.rules[0].from[0].source.principals", "not supported with action CUSTOM"},
				{"spec.rules[0].when[0].key", "not supported with action CUSTOM"},
			}},
		{name: "provider with ALLOW, DENY without rules", doc: doc("AuthorizationPolicy", `
action: DENY
provider: {name: ext-authz}`),
			errs: []want{
				{"spec.provider", "only allowed with action CUSTOM (action is DENY)"},
				{"spec.rules", "a DENY policy without rules never triggers"},
			}},
		{name: "rule shapes: empty source and operation, service accounts with principals, null from", doc: doc("AuthorizationPolicy", `
rules:
- from:
  - source: {}
  - source: {serviceAccounts: [default/sleep], principals: [x]}
  - {}
  to:
  - operation: {}
  - operation: {ports: [http, "70000"], hosts: [""]}`),
			errs: []want{
				{"spec.rules[0].from[0].source", "a source must set at least one field"},
				{"spec.rules[0].from[1].source.serviceAccounts", "cannot be set together with principals or namespaces"},
				{"spec.rules[0].from[2].source", "each from needs a source"},
				{"spec.rules[0].to[0].operation", "an operation must set at least one field"},
				{"spec.rules[0].to[1].operation.ports[0]", `"http": must be a port number`},
				{"spec.rules[0].to[1].operation.ports[1]", `"70000": must be a port number`},
				{"spec.rules[0].to[1].operation.hosts[0]", "must not be empty"},
			}},
		{name: "source values: IPs, service accounts, trust domains, path templates", doc: doc("AuthorizationPolicy", `
rules:
- from:
  - source: {ipBlocks: [10.0.0.0/33, 1.2.3], trustDomains: ["a*b"]}
  - source: {serviceAccounts: ["*", a/b/c]}
  to:
  - operation: {paths: ["/a/{**}/{*}", "/b/{x}"]}`),
			errs: []want{
				{"spec.rules[0].from[0].source.ipBlocks[0]", "not a valid CIDR range"},
				{"spec.rules[0].from[0].source.ipBlocks[1]", "not a valid IP address"},
				{"spec.rules[0].from[0].source.trustDomains[0]", "only allowed at the start or the end"},
				{"spec.rules[0].from[1].source.serviceAccounts[0]", "wildcards are not allowed"},
				{"spec.rules[0].from[1].source.serviceAccounts[1]", "must be <serviceaccount> or <namespace>/<serviceaccount>"},
				{"spec.rules[0].to[0].operation.paths[0]", "{**} must be the last segment"},
				{"spec.rules[0].to[0].operation.paths[1]", "only allowed in the templates"},
			}},
		{name: "when conditions: unknown key, no values, replaced keys, bad values", doc: doc("AuthorizationPolicy", `
rules:
- when:
  - {key: request.foo, values: [x]}
  - {key: source.namespace}
  - {key: "destination.labels[app]", values: [x]}
  - {key: request.headers, values: [x]}
  - {key: destination.port, values: ["80", eighty]}
  - {key: "", values: [x]}`),
			errs: []want{
				{"spec.rules[0].when[0].key", "unknown attribute"},
				{"spec.rules[0].when[1].values", "at least one of values or notValues is required for key source.namespace"},
				{"spec.rules[0].when[2].key", "replaced by the policy's selector"},
				{"spec.rules[0].when[3].key", "must have the form request.headers[<name>]"},
				{"spec.rules[0].when[4].values[1]", `"eighty": must be a port number`},
				{"spec.rules[0].when[5].key", "Required value"},
			}},
		{name: "selector together with targetRef; bad targetRef", doc: doc("AuthorizationPolicy", `
selector: {matchLabels: {app: "*"}}
targetRef: {kind: Deployment, group: apps, name: reviews, namespace: other}`),
			errs: []want{
				{"spec.targetRef", "cannot be set together with selector"},
				{"spec.selector.matchLabels[app]", "wildcards are not supported"},
				{"spec.targetRef.namespace", "cross-namespace references are not supported"},
				{"spec.targetRef", `Unsupported value: "apps/Deployment"`},
			}},
		{name: "dry-run annotation must be a boolean", doc: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: test
  annotations: {istio.io/dry-run: "yes"}
spec:
  action: ALLOW`,
			errs: []want{{"metadata.annotations[istio.io/dry-run]", "must be a boolean"}}},
		{name: "warning: DENY with only HTTP attributes", doc: doc("AuthorizationPolicy", `
action: DENY
rules: [{to: [{operation: {methods: [POST]}}]}]`),
			warns: []want{{"spec.rules[0]", "denies all traffic to TCP ports in its scope"}}},
	})
}

func TestPeerAuthentication(t *testing.T) {
	run(t, []testCase{
		{name: "valid namespace-wide STRICT", doc: doc("PeerAuthentication", `mtls: {mode: STRICT}`)},
		{name: "valid port-level exception", doc: doc("PeerAuthentication", `
selector: {matchLabels: {app: reviews}}
mtls: {mode: STRICT}
portLevelMtls:
  8080: {mode: DISABLE}`)},

		{name: "portLevelMtls without a selector", doc: doc("PeerAuthentication", `
mtls: {mode: STRICT}
portLevelMtls:
  8080: {mode: DISABLE}`),
			errs: []want{{"spec.portLevelMtls", "needs a selector with matchLabels"}}},
		{name: "portLevelMtls with an empty selector, port 0", doc: doc("PeerAuthentication", `
selector: {}
portLevelMtls:
  0: {mode: PERMISSIVE}`),
			errs: []want{
				{"spec.portLevelMtls", "needs a selector with matchLabels"},
				{"spec.portLevelMtls[0]", "port must be between 1 and 65535"},
			},
			warns: []want{{"spec.selector", "workload selector specified without labels"}}},
		{name: "raw: unknown mode", raw: true, doc: doc("PeerAuthentication", `mtls: {mode: STRICTER}`),
			errs: []want{{"spec.mtls.mode", `Unsupported value: "STRICTER": supported values: "UNSET", "DISABLE", "PERMISSIVE", "STRICT"`}}},
		{name: "raw: port keys must be numbers", raw: true, doc: doc("PeerAuthentication", `
selector: {matchLabels: {app: a}}
portLevelMtls:
  http: {mode: DISABLE}`),
			errs: []want{{"spec.portLevelMtls[http]", "the keys of this map must be numbers"}}},
	})
}

func TestRequestAuthentication(t *testing.T) {
	run(t, []testCase{
		{name: "valid issuer and jwksUri", doc: doc("RequestAuthentication", `
selector: {matchLabels: {app: productpage}}
jwtRules:
- issuer: "testing@secure.istio.io"
  jwksUri: "https://raw.githubusercontent.com/istio/istio/release-1.31/security/tools/jwt/samples/jwks.json"
  fromHeaders: [{name: x-jwt, prefix: "Bearer "}]
  outputPayloadToHeader: x-jwt-payload
  outputClaimToHeaders: [{header: x-jwt-group, claim: group}]
  timeout: 5s`)},
		{name: "valid inline jwks, jwksUri alone", doc: doc("RequestAuthentication", `
jwtRules:
- issuer: example
  jwks: '{"keys":[{"kty":"RSA","e":"AQAB","n":"xyz","kid":"1"}]}'
- jwksUri: "http://keys.example.com:8080/jwks.json"`)},

		{name: "empty issuer and no jwksUri", doc: doc("RequestAuthentication", `
jwtRules:
- issuer: ""`),
			errs: []want{{"spec.jwtRules[0].issuer", "Required value: issuer or jwksUri is required"}}},
		{name: "invalid jwksUri", doc: doc("RequestAuthentication", `
jwtRules:
- {issuer: a, jwksUri: "ftp://keys.example.com/jwks.json"}
- {issuer: b, jwksUri: "keys.example.com/jwks.json"}
- {issuer: c, jwksUri: "https://keys.example.com:https/jwks.json"}`),
			errs: []want{
				{"spec.jwtRules[0].jwksUri", `scheme "ftp" is not supported`},
				{"spec.jwtRules[1].jwksUri", `must be an http:// or https:// URL (scheme "" is not supported)`},
				{"spec.jwtRules[2].jwksUri", "not a valid URL"},
			}},
		{name: "header names, jwks with jwksUri, bad jwks, timeout", doc: doc("RequestAuthentication", `
jwtRules:
- issuer: a
  jwksUri: https://keys.example.com/jwks.json
  jwks: '{"keys":[]}'
  fromHeaders: [{prefix: "Bearer "}]
  fromParams: [""]
  outputClaimToHeaders: [{header: "x jwt", claim: sub}, {header: x-a}]
  timeout: 0s
- issuer: b
  jwks: 'not json'`),
			errs: []want{
				{"spec.jwtRules[0].jwks", "cannot be set together with jwksUri"},
				{"spec.jwtRules[0].fromHeaders[0].name", "Required value"},
				{"spec.jwtRules[0].fromParams[0]", "must not be empty"},
				{"spec.jwtRules[0].outputClaimToHeaders[0].header", "may only contain letters, digits, - and _"},
				{"spec.jwtRules[0].outputClaimToHeaders[1].claim", "claim and header are both required"},
				{"spec.jwtRules[0].timeout", "must be at least 1ms"},
				{"spec.jwtRules[1].jwks", "not a valid JWKS"},
			}},
		{name: "selector with targetRefs", doc: doc("RequestAuthentication", `
selector: {matchLabels: {app: a}}
targetRefs: [{kind: Service, name: a}]
jwtRules: [{issuer: a}]`),
			errs: []want{{"spec.targetRefs", "cannot be set together with selector"}}},
		{name: "warning: private key in jwks", doc: doc("RequestAuthentication", `
jwtRules:
- issuer: a
  jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"secret"}]}'`),
			warns: []want{{"spec.jwtRules[0].jwks", "key 0 contains private key material"}}},
	})
}

func TestErrorMessage(t *testing.T) {
	obj := decode(t, doc("VirtualService", `
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
    weight: 110
  - destination: {host: reviews, subset: v2}
    weight: -10`))
	_, err := Validate(obj)
	const msg = "VirtualService default/test is invalid: spec.http[0].route[1].weight: Invalid value: -10: must not be negative"
	if err == nil || err.Error() != msg {
		t.Fatalf("got %v\nwant %s", err, msg)
	}
}

func TestUnsupported(t *testing.T) {
	if _, err := Validate(&appsv1.Deployment{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Deployment: got %v, want ErrUnsupported", err)
	}
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
	if _, _, err := ValidateYAML([]byte(cm)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ConfigMap: got %v, want ErrUnsupported", err)
	}
}

func TestValidateYAMLReturnsTheObject(t *testing.T) {
	obj, warns, err := ValidateYAML([]byte(doc("AuthorizationPolicy", `
action: DENY
rules: [{from: [{source: {namespaces: [foo]}}]}]`)))
	if err != nil || len(warns) != 0 {
		t.Fatalf("got %v, %v", warns, err)
	}
	ap, ok := obj.(*securityv1.AuthorizationPolicy)
	if !ok || ap.Spec.Action != security.AuthorizationPolicy_DENY || ap.Name != "test" || ap.Kind != "AuthorizationPolicy" {
		t.Fatalf("decoded %#v", obj)
	}
	// A typed object built in Go, with no TypeMeta at all, validates too.
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default"}}
	vs.Spec.Hosts = []string{"reviews"}
	if _, err := Validate(vs); err == nil || !strings.Contains(err.Error(), "spec.http: Required value") {
		t.Fatalf("got %v", err)
	}
}
