package validation

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
)

const (
	vsHead = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: ns}\n"
	drHead = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: ns}\n"
	apHead = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: ns}\n"
	raHead = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: a, namespace: ns}\n"
	hrHead = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: ns}\n"
	gwHead = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: w, namespace: ns}\n"
	gcHead = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: c}\n"
)

func findings(t *testing.T, doc string) []Finding {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	fs, err := CheckCoverageJSON(js)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// coverageCases set each field meshlab does not implement; want lists each finding as
// "<support> <field>: meshlab does not implement <Kind> <name>" (the note that follows is not compared).
var coverageCases = []struct {
	name string
	doc  string
	want []string
}{
	{"VirtualService http fields", vsHead + `spec:
  hosts: [reviews, "*.example.com"]
  gateways: [mesh, ingress]
  exportTo: ["."]
  http:
  - name: all
    match:
    - uri: {prefix: /}
      method: {prefix: G}
      scheme: {exact: https}
      authority: {exact: a}
      queryParams: {v: {exact: "2"}}
      ignoreUriCase: true
      sourceLabels: {app: x}
      sourceNamespace: other
      gateways: [mesh]
      statPrefix: s
    - method: {regex: "G.*"}
    route: [{destination: {host: reviews}, headers: {request: {set: {x: y}}}}]
    rewrite: {uri: /v2}
    headers: {response: {remove: [x]}}
    retries: {attempts: 2, retryRemoteLocalities: true, retryIgnorePreviousHosts: true, backoff: 1s}
    fault:
      delay: {exponentialDelay: 1s, percentage: {value: 10}}
      abort: {grpcStatus: UNAVAILABLE}
    mirror: {host: reviews}
    mirrors: [{destination: {host: reviews}}]
    mirrorPercentage: {value: 5}
    mirrorPercent: 5
    corsPolicy: {allowOrigins: [{exact: a}]}
  - redirect: {uri: /x}
  - directResponse: {status: 200, body: {string: hi}}
  - delegate: {name: d}
  - fault: {abort: {http2Error: CANCEL}}
    route: [{destination: {host: reviews}}]
  tcp: [{route: [{destination: {host: reviews}}]}]
  tls: [{match: [{sniHosts: [reviews]}], route: [{destination: {host: reviews}}]}]
`, []string{
		"rejected spec.http[0].rewrite: meshlab does not implement VirtualService http.rewrite",
		"rejected spec.http[1].redirect: meshlab does not implement VirtualService http.redirect",
		"rejected spec.http[0].headers: meshlab does not implement VirtualService http.headers",
		"rejected spec.http[0].route[0].headers: meshlab does not implement VirtualService http.route.headers",
		"warned spec.gateways[1]: meshlab does not implement VirtualService gateways other than mesh",
		"warned spec.exportTo: meshlab does not implement VirtualService exportTo",
		"warned spec.hosts[1]: meshlab does not implement VirtualService hosts with a wildcard",
		"rejected spec.http[0].match[0].method.prefix: meshlab does not implement VirtualService http.match.method prefix",
		"rejected spec.http[0].match[1].method.regex: meshlab does not implement VirtualService http.match.method regex",
		"rejected spec.http[0].match[0].scheme: meshlab does not implement VirtualService http.match.scheme",
		"rejected spec.http[0].match[0].authority: meshlab does not implement VirtualService http.match.authority",
		"rejected spec.http[0].match[0].ignoreUriCase: meshlab does not implement VirtualService http.match.ignoreUriCase",
		"rejected spec.http[0].match[0].sourceLabels: meshlab does not implement VirtualService http.match.sourceLabels",
		"rejected spec.http[0].match[0].sourceNamespace: meshlab does not implement VirtualService http.match.sourceNamespace",
		"rejected spec.http[0].match[0].gateways: meshlab does not implement VirtualService http.match.gateways",
		"warned spec.http[0].match[0].statPrefix: meshlab does not implement VirtualService http.match.statPrefix",
		"rejected spec.http[2].directResponse.body: meshlab does not implement VirtualService http.directResponse.body",
		"rejected spec.http[3].delegate: meshlab does not implement VirtualService http.delegate",
		"warned spec.http[0].retries.retryRemoteLocalities: meshlab does not implement VirtualService http.retries.retryRemoteLocalities",
		"warned spec.http[0].retries.retryIgnorePreviousHosts: meshlab does not implement VirtualService http.retries.retryIgnorePreviousHosts",
		"warned spec.http[0].retries.backoff: meshlab does not implement VirtualService http.retries.backoff",
		"rejected spec.http[0].fault.delay.exponentialDelay: meshlab does not implement VirtualService http.fault.delay.exponentialDelay",
		"rejected spec.http[0].fault.abort.grpcStatus: meshlab does not implement VirtualService http.fault.abort.grpcStatus",
		"rejected spec.http[4].fault.abort.http2Error: meshlab does not implement VirtualService http.fault.abort.http2Error",
		"warned spec.http[0].mirror: meshlab does not implement VirtualService http.mirror",
		"warned spec.http[0].mirrors: meshlab does not implement VirtualService http.mirrors",
		"warned spec.http[0].mirrorPercentage: meshlab does not implement VirtualService http.mirrorPercentage",
		"warned spec.http[0].mirrorPercent: meshlab does not implement VirtualService http.mirrorPercent",
		"rejected spec.tcp: meshlab does not implement VirtualService tcp",
		"rejected spec.tls: meshlab does not implement VirtualService tls",
	}},
	{"VirtualService implemented fields", vsHead + `spec:
  hosts: [reviews]
  gateways: [mesh]
  http:
  - name: r
    match: [{uri: {prefix: /}, method: {exact: GET}, headers: {x: {exact: y}}, withoutHeaders: {z: {}}, port: 9080}]
    route: [{destination: {host: reviews, subset: v1, port: {number: 9080}}, weight: 100}]
    timeout: 1s
    retries: {attempts: 2, perTryTimeout: 1s, retryOn: 5xx}
    fault: {delay: {fixedDelay: 1s, percentage: {value: 5}}, abort: {httpStatus: 503, percentage: {value: 5}}}
  - directResponse: {status: 404}
`, nil},
	{"DestinationRule", drHead + `spec:
  host: "*.svc.cluster.local"
  exportTo: ["."]
  workloadSelector: {matchLabels: {app: x}}
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool: {tcp: {maxConnections: 1}}
    outlierDetection: {consecutive5xxErrors: 1}
    portLevelSettings: [{port: {number: 80}, loadBalancer: {simple: RANDOM}}]
  subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: RANDOM}}}]
`, []string{
		"warned spec.host: meshlab does not implement DestinationRule host with a wildcard",
		"warned spec.exportTo: meshlab does not implement DestinationRule exportTo",
		"warned spec.workloadSelector: meshlab does not implement DestinationRule workloadSelector",
	}},
	{"AuthorizationPolicy enforced by ztunnel", apHead + `spec:
  selector: {matchLabels: {app: x}}
  action: CUSTOM
  provider: {name: ext}
  rules:
  - from: [{source: {principals: [a], notServiceAccounts: [ns/sa], remoteIpBlocks: [1.2.3.4], notRemoteIpBlocks: [1.2.3.5], requestPrincipals: ["*"], notRequestPrincipals: [x]}}]
    to: [{operation: {methods: [GET], ports: ["80"]}}, {operation: {notMethods: [PUT], paths: [/a], notPaths: [/b], hosts: [h], notHosts: [i]}}]
    when: [{key: source.ip, values: [1.2.3.4]}, {key: "request.auth.claims[groups]", values: [dev]}]
`, []string{
		"rejected spec.action: meshlab does not implement AuthorizationPolicy action CUSTOM and AUDIT",
		"rejected spec.provider: meshlab does not implement AuthorizationPolicy provider",
		"rejected spec.rules[0].from[0].source.notServiceAccounts: meshlab does not implement AuthorizationPolicy source.notServiceAccounts in a selector (ztunnel) policy",
		"rejected spec.rules[0].from[0].source.remoteIpBlocks: meshlab does not implement AuthorizationPolicy source.remoteIpBlocks in a selector (ztunnel) policy",
		"rejected spec.rules[0].from[0].source.notRemoteIpBlocks: meshlab does not implement AuthorizationPolicy source.notRemoteIpBlocks in a selector (ztunnel) policy",
		"warned spec.rules[0].from[0].source.requestPrincipals: meshlab does not implement AuthorizationPolicy source.requestPrincipals in a selector (ztunnel) policy",
		"warned spec.rules[0].from[0].source.notRequestPrincipals: meshlab does not implement AuthorizationPolicy source.notRequestPrincipals in a selector (ztunnel) policy",
		"rejected spec.rules[0].when[0]: meshlab does not implement AuthorizationPolicy rules.when on keys other than request.auth.*",
		"warned spec.rules[0].when[1]: meshlab does not implement AuthorizationPolicy rules.when on request.auth.* in a selector (ztunnel) policy",
		"warned spec.rules[0].to[0].operation.methods: meshlab does not implement AuthorizationPolicy operation.methods in a selector (ztunnel) policy",
		"warned spec.rules[0].to[1].operation.notMethods: meshlab does not implement AuthorizationPolicy operation.notMethods in a selector (ztunnel) policy",
		"warned spec.rules[0].to[1].operation.paths: meshlab does not implement AuthorizationPolicy operation.paths in a selector (ztunnel) policy",
		"warned spec.rules[0].to[1].operation.notPaths: meshlab does not implement AuthorizationPolicy operation.notPaths in a selector (ztunnel) policy",
		"warned spec.rules[0].to[1].operation.hosts: meshlab does not implement AuthorizationPolicy operation.hosts in a selector (ztunnel) policy",
		"warned spec.rules[0].to[1].operation.notHosts: meshlab does not implement AuthorizationPolicy operation.notHosts in a selector (ztunnel) policy",
	}},
	{"AuthorizationPolicy enforced by a waypoint", apHead + `spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: w}, {kind: ServiceEntry, group: networking.istio.io, name: se}]
  action: AUDIT
  rules:
  - from: [{source: {notServiceAccounts: [ns/sa], remoteIpBlocks: [1.2.3.4], notRemoteIpBlocks: [1.2.3.5]}}]
`, []string{
		"rejected spec.targetRefs[1].kind: meshlab does not implement AuthorizationPolicy targetRefs kinds other than Gateway and Service",
		"rejected spec.action: meshlab does not implement AuthorizationPolicy action CUSTOM and AUDIT",
	}},
	{"AuthorizationPolicy targetRef", apHead + `spec:
  targetRef: {kind: GatewayClass, group: gateway.networking.k8s.io, name: c}
`, []string{
		"rejected spec.targetRef.kind: meshlab does not implement AuthorizationPolicy targetRef kinds other than Gateway and Service",
	}},
	{"AuthorizationPolicy implemented fields", apHead + `spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: w}, {group: "", kind: Service, name: s}]
  action: DENY
  rules:
  - from: [{source: {principals: [a], notPrincipals: [b], namespaces: [c], notNamespaces: [d], serviceAccounts: [e/f], ipBlocks: [1.2.3.4], notIpBlocks: [1.2.3.5]}}]
    to: [{operation: {ports: ["1"], notPorts: ["2"], methods: [GET], notMethods: [PUT], paths: [/a], notPaths: [/b], hosts: [h], notHosts: [i]}}]
`, nil},
	{"HTTPRoute", hrHead + `spec:
  parentRefs: [{name: ingress}, {group: "", kind: Service, name: reviews, sectionName: http}, {group: "", kind: Service, name: ratings, port: 9080}]
  hostnames: [reviews.example]
  rules:
  - name: r
    matches: [{path: {type: PathPrefix, value: /}, headers: [{name: x, value: y}], method: GET, queryParams: [{name: q, value: v}]}]
    filters:
    - {type: RequestRedirect, requestRedirect: {statusCode: 301}}
    - {type: URLRewrite, urlRewrite: {hostname: x}}
    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x, value: y}]}}
    - {type: ResponseHeaderModifier, responseHeaderModifier: {remove: [x]}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: reviews, port: 9080}}}
    - {type: CORS, cors: {allowOrigins: ["*"]}}
    - {type: ExternalAuth, externalAuth: {protocol: HTTP, backendRef: {name: auth}}}
    - {type: ExtensionRef, extensionRef: {group: g, kind: K, name: n}}
    backendRefs:
    - {name: reviews-v1, port: 9080, weight: 1, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x, value: y}]}}, {type: ResponseHeaderModifier, responseHeaderModifier: {remove: [x]}}, {type: RequestRedirect, requestRedirect: {statusCode: 301}}, {type: URLRewrite, urlRewrite: {hostname: x}}, {type: RequestMirror, requestMirror: {backendRef: {name: reviews, port: 9080}}}, {type: CORS, cors: {allowOrigins: ["*"]}}, {type: ExtensionRef, extensionRef: {group: g, kind: K, name: n}}]}
    - {group: networking.istio.io, kind: ServiceEntry, name: se}
    timeouts: {request: 1s, backendRequest: 1s}
    retry: {attempts: 2, codes: [503], backoff: 100ms}
    sessionPersistence: {sessionName: s}
`, []string{
		"rejected spec.rules[0].filters[0].requestRedirect: meshlab does not implement HTTPRoute rules.filters RequestRedirect",
		"rejected spec.rules[0].filters[1].urlRewrite: meshlab does not implement HTTPRoute rules.filters URLRewrite",
		"rejected spec.rules[0].filters[2].requestHeaderModifier: meshlab does not implement HTTPRoute rules.filters RequestHeaderModifier",
		"rejected spec.rules[0].filters[3].responseHeaderModifier: meshlab does not implement HTTPRoute rules.filters ResponseHeaderModifier",
		"rejected spec.parentRefs[1]: meshlab does not implement HTTPRoute parentRefs.sectionName on a Service",
		"warned spec.rules[0].filters[4].requestMirror: meshlab does not implement HTTPRoute rules.filters RequestMirror",
		"rejected spec.rules[0].filters[5].cors: meshlab does not implement HTTPRoute rules.filters CORS",
		"rejected spec.rules[0].filters[6].externalAuth: meshlab does not implement HTTPRoute rules.filters ExternalAuth",
		"rejected spec.rules[0].filters[7].extensionRef: meshlab does not implement HTTPRoute rules.filters ExtensionRef",
		"rejected spec.rules[0].backendRefs[1]: meshlab does not implement HTTPRoute backendRefs other than Service",
		"rejected spec.rules[0].backendRefs[0].filters[2].requestRedirect: meshlab does not implement HTTPRoute rules.backendRefs.filters RequestRedirect",
		"rejected spec.rules[0].backendRefs[0].filters[3].urlRewrite: meshlab does not implement HTTPRoute rules.backendRefs.filters URLRewrite",
		"warned spec.rules[0].backendRefs[0].filters[4].requestMirror: meshlab does not implement HTTPRoute rules.backendRefs.filters RequestMirror",
		"rejected spec.rules[0].backendRefs[0].filters[5].cors: meshlab does not implement HTTPRoute rules.backendRefs.filters CORS",
		"rejected spec.rules[0].backendRefs[0].filters[6].extensionRef: meshlab does not implement HTTPRoute rules.backendRefs.filters ExtensionRef",
		"warned spec.rules[0].timeouts.backendRequest: meshlab does not implement HTTPRoute rules.timeouts.backendRequest",
		"warned spec.rules[0].retry.backoff: meshlab does not implement HTTPRoute rules.retry.backoff",
		"warned spec.rules[0].sessionPersistence: meshlab does not implement HTTPRoute rules.sessionPersistence",
	}},
	{"waypoint Gateway", gwHead + `spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
  addresses: [{value: 10.0.0.1}]
  infrastructure: {labels: {a: b}}
  tls: {backend: {}}
  allowedListeners: {namespaces: {from: Same}}
  defaultScope: All
`, []string{
		"warned spec.addresses: meshlab does not implement Gateway addresses",
		"warned spec.infrastructure: meshlab does not implement Gateway infrastructure",
		"warned spec.tls: meshlab does not implement Gateway tls",
		"warned spec.allowedListeners: meshlab does not implement Gateway allowedListeners",
		"warned spec.defaultScope: meshlab does not implement Gateway defaultScope",
	}},
	{"mesh HTTPRoute with hostnames", hrHead + `spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  hostnames: [reviews.example]
`, []string{
		"warned spec.hostnames: meshlab does not implement HTTPRoute hostnames",
	}},
	{"ingress Gateway", gwHead + `spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {a: b}}}, kinds: [{kind: HTTPRoute}]}}
  - {name: https, port: 443, protocol: HTTPS}
  - {name: tcp, port: 5432, protocol: TCP}
  addresses: [{value: 10.0.0.1}]
`, []string{
		"warned spec.listeners[0].allowedRoutes.namespaces.selector: meshlab does not implement Gateway listeners.allowedRoutes.namespaces selector",
		"warned spec.listeners[0].allowedRoutes.kinds: meshlab does not implement Gateway listeners.allowedRoutes.kinds",
		"rejected spec.listeners[1].protocol: meshlab does not implement Gateway listeners.protocol other than HTTP and TCP on a Gateway of class istio",
		"warned spec.addresses: meshlab does not implement Gateway addresses",
	}},
	{"Gateway of another class", gwHead + `spec:
  gatewayClassName: other
  listeners: [{name: http, port: 80, protocol: HTTP}]
`, []string{
		"warned spec.gatewayClassName: meshlab does not implement Gateway gatewayClassName other than istio-waypoint and istio",
	}},
	{"GatewayClass", gcHead + `spec:
  controllerName: istio.io/gateway-controller
  parametersRef: {group: "", kind: ConfigMap, name: c}
`, []string{
		"warned spec.parametersRef: meshlab does not implement GatewayClass parametersRef",
	}},
	{"ServiceEntry", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\nspec: {hosts: [a.example]}\n",
		[]string{"warned meshlab does not implement ServiceEntry"}},
	{"AuthorizationPolicy on a waypoint with JWT conditions", apHead + `spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: w}]
  rules:
  - from: [{source: {requestPrincipals: ["*"], notRequestPrincipals: [x]}}]
    when:
    - {key: request.auth.principal, values: [a/b]}
    - {key: request.auth.audiences, values: [a]}
    - {key: request.auth.presenter, values: [a]}
    - {key: "request.auth.claims[groups]", values: [dev]}
    - {key: "request.headers[x-user]", values: [admin]}
`, []string{
		"rejected spec.rules[0].when[4]: meshlab does not implement AuthorizationPolicy rules.when on keys other than request.auth.*",
	}},
	{"RequestAuthentication", raHead + `spec:
  targetRefs: [{kind: ServiceEntry, group: networking.istio.io, name: s}]
  targetRef: {kind: GatewayClass, group: gateway.networking.k8s.io, name: istio-waypoint}
  jwtRules:
  - {issuer: a, jwks: '{"keys":[]}', audiences: [x], fromHeaders: [{name: h}], fromParams: [p], fromCookies: [c], outputPayloadToHeader: h, forwardOriginalToken: true, outputClaimToHeaders: [{header: h, claim: c}], spaceDelimitedClaims: [s], timeout: 5s}
  - {issuer: b, jwksUri: "https://b.example/jwks"}
  - {issuer: c}
`, []string{
		"rejected spec.targetRefs[0].kind: meshlab does not implement RequestAuthentication targetRefs kinds other than Gateway and Service",
		"rejected spec.targetRef.kind: meshlab does not implement RequestAuthentication targetRef kinds other than Gateway and Service",
		"warned spec.jwtRules[0].timeout: meshlab does not implement RequestAuthentication jwtRules.timeout",
		"rejected spec.jwtRules[1].jwksUri: meshlab does not implement RequestAuthentication jwtRules.jwksUri",
		"rejected spec.jwtRules[2]: meshlab does not implement RequestAuthentication jwtRules without jwks",
	}},
	{"PeerAuthentication: every field implemented", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: s}\nspec: {selector: {matchLabels: {app: a}}, mtls: {mode: STRICT}, portLevelMtls: {8080: {mode: PERMISSIVE}}}\n", nil},
	{"GRPCRoute", "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: r, namespace: ns}\n" + `spec:
  parentRefs:
  - {group: "", kind: Service, name: greeter, port: 9090}
  - {group: "", kind: Service, name: greeter, sectionName: grpc}
  hostnames: [greeter.example]
  rules:
  - matches: [{method: {service: a.B, method: C}, headers: [{name: x, value: "1"}]}]
    filters:
    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}
    - {type: ExtensionRef, extensionRef: {group: example.com, kind: Filter, name: f}}
    backendRefs:
    - {name: greeter, port: 9090, weight: 3}
    - {group: example.com, kind: Backend, name: b}
    - name: greeter-v2
      port: 9090
      filters:
      - {type: RequestMirror, requestMirror: {backendRef: {name: greeter-v1, port: 9090}}}
      - {type: ExtensionRef, extensionRef: {group: example.com, kind: Filter, name: f}}
    sessionPersistence: {sessionName: s}
`, []string{
		"rejected spec.parentRefs[1]: meshlab does not implement GRPCRoute parentRefs.sectionName on a Service",
		"warned spec.hostnames: meshlab does not implement GRPCRoute hostnames",
		"rejected spec.rules[0].filters[1].extensionRef: meshlab does not implement GRPCRoute rules.filters ExtensionRef",
		"rejected spec.rules[0].backendRefs[1]: meshlab does not implement GRPCRoute backendRefs other than Service",
		"warned spec.rules[0].backendRefs[2].filters[0].requestMirror: meshlab does not implement GRPCRoute rules.backendRefs.filters RequestMirror",
		"rejected spec.rules[0].backendRefs[2].filters[1].extensionRef: meshlab does not implement GRPCRoute rules.backendRefs.filters ExtensionRef",
		"warned spec.rules[0].sessionPersistence: meshlab does not implement GRPCRoute rules.sessionPersistence",
	}},
	{"TCPRoute", "apiVersion: gateway.networking.k8s.io/v1\nkind: TCPRoute\nmetadata: {name: r, namespace: ns}\n" + `spec:
  parentRefs:
  - {group: "", kind: Service, name: db, port: 5432}
  - {group: "", kind: Service, name: db, sectionName: tcp}
  - {name: bookinfo-gateway, sectionName: tcp}
  rules:
  - backendRefs:
    - {name: db-v1, port: 5432, weight: 90}
    - {group: example.com, kind: Backend, name: b}
`, []string{
		"rejected spec.parentRefs[1]: meshlab does not implement TCPRoute parentRefs.sectionName on a Service",
		"rejected spec.rules[0].backendRefs[1]: meshlab does not implement TCPRoute backendRefs other than Service",
	}},
	{"TLSRoute: a kind meshlab does not act on", "apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {name: s}\nspec: {}\n",
		[]string{"warned meshlab does not implement TLSRoute"}},
	{"a kind meshlab reads without a table (Service)", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n", nil},
}

// implemented reports whether the row a wanted finding names is now Implemented, so that flipping a row
// in the table is one line.
func implemented(want string) bool {
	for _, c := range Coverage {
		if c.Support == Implemented && strings.HasSuffix(want, "meshlab does not implement "+c.Kind+" "+c.Name) {
			return true
		}
	}
	return false
}

func TestCheckCoverage(t *testing.T) {
	hit := map[string]bool{} // kind + " " + name of every row a case reported
	for _, tc := range coverageCases {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]bool{}
			for _, f := range findings(t, tc.doc) {
				s := f.Support.String() + " " + f.String()
				if f.Support == Implemented || !strings.Contains(f.Message, "meshlab does not implement ") {
					t.Errorf("finding %q", s)
				}
				head, _, _ := strings.Cut(s, ";")
				if got[head] {
					t.Errorf("finding %q twice", head)
				}
				got[head] = true
				_, rest, _ := strings.Cut(f.Message, "meshlab does not implement ")
				hit[rest[:strings.IndexAny(rest+";", ";")]] = true
			}
			for _, w := range tc.want {
				if implemented(w) {
					continue // a row flipped to Implemented: no finding any more
				}
				if !got[w] {
					t.Errorf("no finding %q", w)
				}
				delete(got, w)
			}
			for g := range got {
				t.Errorf("unexpected finding %q", g)
			}
		})
	}
	// Every row meshlab does not implement has a case above.
	for _, c := range Coverage {
		if c.Support != Implemented && !hit[c.Kind+" "+c.Name] {
			t.Errorf("no test case sets %s %s (%s)", c.Kind, c.Path, c.Name)
		}
	}
}

func TestCoverageTable(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Coverage {
		key := fmt.Sprintf("%s/%s %s %s", c.Group, c.Kind, c.Path, c.Name)
		if seen[key] {
			t.Errorf("row %s twice", key)
		}
		seen[key] = true
		if c.Group == "" || c.Kind == "" || !strings.HasPrefix(c.Path, "spec.") || c.Name == "" {
			t.Errorf("incomplete row %+v", c)
		}
		if c.Support == Implemented && (c.Applies != nil || c.Note != "") {
			t.Errorf("implemented row %s has a condition or note", key)
		}
	}
}

// TestCheckCoverageObject: typed objects are checked in their JSON form.
func TestCheckCoverageObject(t *testing.T) {
	obj := &networkingv1.VirtualService{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "VirtualService"},
		ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns"},
		Spec: networking.VirtualService{Hosts: []string{"reviews"}, Http: []*networking.HTTPRoute{{
			Retries: &networking.HTTPRetry{Attempts: 2, RetryRemoteLocalities: wrapperspb.Bool(true)},
			Route:   []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "reviews"}}},
		}}},
	}
	fs, err := CheckCoverageObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Field != "spec.http[0].retries.retryRemoteLocalities" || fs[0].Support != Warned {
		t.Errorf("CheckCoverageObject = %+v", fs)
	}
	rejected, warned := SplitFindings(fs)
	if len(rejected) != 0 || len(warned) != 1 {
		t.Errorf("SplitFindings = %v, %v", rejected, warned)
	}
}

// TestCoverageDocumented: docs/api-coverage.md has a row for every row of the table, with the same status
// (flipping a row in code means updating the document).
func TestCoverageDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "api-coverage.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Coverage {
		row := fmt.Sprintf("| `%s` | %s | %s |", c.Path, c.Name, c.Support)
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/api-coverage.md lacks the row %s", row)
		}
	}
	for gk := range UnimplementedKinds {
		if !strings.Contains(string(doc), gk.Kind) {
			t.Errorf("docs/api-coverage.md does not list %s", gk.Kind)
		}
	}
}

// trafficPolicyCase sets every traffic policy field meshlab does not implement, at each place a policy may
// stand (the rule's, a subset's, and their port-level settings).
func trafficPolicyCase() (doc string, want []string) {
	const policy = `
  loadBalancer: {simple: LEAST_REQUEST, localityLbSetting: {enabled: true}, warmupDurationSecs: 10s, warmup: {duration: 10s}}
  connectionPool:
    tcp: {maxConnections: 1, tcpKeepalive: {time: 10s}, maxConnectionDuration: 1h}
    http: {http1MaxPendingRequests: 1, h2UpgradePolicy: UPGRADE, useClientProtocol: true, maxConcurrentStreams: 10, http2KeepAlive: {interval: 10s}}
  outlierDetection: {consecutive5xxErrors: 1, interval: 5s, consecutiveErrors: 3, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2}
  tls: {mode: ISTIO_MUTUAL}`
	const whole = policy + `
  tunnel: {targetHost: x, targetPort: 1}
  proxyProtocol: {version: V1}
  retryBudget: {percent: 10}`
	indent := func(s, by string) string { return strings.ReplaceAll(s, "\n", "\n"+by) }
	portLevel := "\n  portLevelSettings:\n  - port: {number: 80}" + indent(policy, "  ")
	doc = drHead + "spec:\n  host: reviews\n  trafficPolicy:" + indent(whole+portLevel, "  ") +
		"\n  subsets:\n  - name: v1\n    labels: {version: v1}\n    trafficPolicy:" + indent(whole+portLevel, "    ") + "\n"
	fields := []string{
		"loadBalancer.localityLbSetting", "loadBalancer.warmupDurationSecs", "loadBalancer.warmup",
		"connectionPool.tcp.tcpKeepalive", "connectionPool.tcp.maxConnectionDuration",
		"connectionPool.http.h2UpgradePolicy", "connectionPool.http.useClientProtocol",
		"connectionPool.http.maxConcurrentStreams", "connectionPool.http.http2KeepAlive",
		"outlierDetection.interval", "outlierDetection.consecutiveErrors",
		"outlierDetection.splitExternalLocalOriginErrors", "outlierDetection.consecutiveLocalOriginFailures", "tls",
	}
	for _, at := range []struct{ field, name string }{
		{"spec.trafficPolicy", "trafficPolicy"},
		{"spec.subsets[0].trafficPolicy", "subsets.trafficPolicy"},
		{"spec.trafficPolicy.portLevelSettings[0]", "trafficPolicy.portLevelSettings"},
		{"spec.subsets[0].trafficPolicy.portLevelSettings[0]", "subsets.trafficPolicy.portLevelSettings"},
	} {
		fs := fields
		if !strings.Contains(at.name, "portLevelSettings") {
			fs = append(append([]string(nil), fields...), "tunnel", "proxyProtocol", "retryBudget")
		}
		for _, f := range fs {
			want = append(want, "warned "+at.field+"."+f+": meshlab does not implement DestinationRule "+at.name+"."+f)
		}
	}
	return doc, want
}

func init() {
	doc, want := trafficPolicyCase()
	coverageCases = append(coverageCases, struct {
		name string
		doc  string
		want []string
	}{"DestinationRule traffic policy", doc, want})
}
