package admission

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/caserver"
	"github.com/meshlab/meshlab/identity/ca"
	"github.com/meshlab/meshlab/identity/caclient"
)

// tlsServer serves h at Path over HTTPS with a serving certificate from a fresh meshlab CA (the control
// plane's identity, as the control plane serves it) and returns a client that trusts that CA.
func tlsServer(t *testing.T, h http.Handler) (*httptest.Server, *http.Client, *ca.CA) {
	t.Helper()
	c, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	serverTLS, err := caserver.ServerTLSConfig(ctx, c, mesh.ControlPlaneID)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = serverTLS
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: caclient.ClientTLSConfig([]*x509.Certificate{c.Root()}, mesh.ServerName, mesh.ControlPlaneID, nil),
	}}
	return srv, client, c
}

// review is the AdmissionReview the API server sends for op on the object in doc (YAML).
func review(t *testing.T, op admissionv1.Operation, doc string) []byte {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		APIVersion, Kind string
		Metadata         struct{ Name, Namespace string }
	}
	if err := json.Unmarshal(js, &head); err != nil {
		t.Fatal(err)
	}
	group, version, _ := strings.Cut(head.APIVersion, "/")
	if version == "" {
		group, version = "", group
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("uid-" + head.Metadata.Name),
			Kind:      metav1.GroupVersionKind{Group: group, Version: version, Kind: head.Kind},
			Resource:  metav1.GroupVersionResource{Group: group, Version: version, Resource: strings.ToLower(head.Kind) + "s"},
			Name:      head.Metadata.Name,
			Namespace: head.Metadata.Namespace,
			Operation: op,
			Object:    runtime.RawExtension{Raw: js},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t *testing.T, client *http.Client, url, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Post(url+Path, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func admit(t *testing.T, client *http.Client, url string, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	resp, b := post(t, client, url, "application/json", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %s: %s", resp.Status, b)
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &ar); err != nil || ar.Response == nil {
		t.Fatalf("decoding the AdmissionReview answer %s: %v", b, err)
	}
	if ar.APIVersion != "admission.k8s.io/v1" || ar.Kind != "AdmissionReview" {
		t.Errorf("answer TypeMeta = %+v", ar.TypeMeta)
	}
	return ar.Response
}

const validVS = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews, subset: v2}
      weight: 10
`

func TestWebhook(t *testing.T) {
	var logged atomic.Int32
	srv, client, _ := tlsServer(t, Handler(Options{Logf: func(string, ...any) { logged.Add(1) }}))
	for _, tc := range []struct {
		name string
		op   admissionv1.Operation
		doc  string
		// allowed, or denied with every one of want in the message
		want []string
	}{
		{name: "valid VirtualService", doc: validVS},
		{name: "valid VirtualService, v1alpha3", doc: strings.Replace(validVS, "networking.istio.io/v1", "networking.istio.io/v1alpha3", 1)},
		{name: "negative weight", doc: strings.Replace(validVS, "weight: 90", "weight: -10", 1),
			want: []string{"configuration is invalid: ", "spec.http[0].route[0].weight", "-10", "must not be negative"}},
		{name: "negative weight on update", op: admissionv1.Update, doc: strings.Replace(validVS, "weight: 10", "weight: -10", 1),
			want: []string{"spec.http[0].route[1].weight", "must not be negative"}},
		{name: "misspelt weight", doc: strings.Replace(validVS, "weight: 90", "wieght: 90", 1),
			want: []string{"spec.http[0].route[0].wieght", "unknown field"}},
		{name: "DestinationRule negative maxConnections", doc: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: -1}}
`, want: []string{"spec.trafficPolicy.connectionPool.tcp.maxConnections", "must not be negative"}},
		{name: "DestinationRule subset without a name", doc: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  subsets: [{labels: {version: v1}}]
`, want: []string{"spec.subsets[0].name"}},
		{name: "AuthorizationPolicy bad action", doc: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: bookinfo}
spec:
  action: DENYY
`, want: []string{"spec.action", "DENYY", "ALLOW"}},
		{name: "valid AuthorizationPolicy", doc: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-productpage, namespace: bookinfo}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules: [{from: [{source: {principals: ["cluster.local/ns/bookinfo/sa/bookinfo-productpage"]}}]}]
`},
		{name: "valid HTTPRoute", doc: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: bookinfo}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: reviews-v1, port: 9080, weight: 90}, {name: reviews-v2, port: 9080, weight: 10}]
`},
		{name: "HTTPRoute negative weight", doc: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: bookinfo}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - backendRefs: [{name: reviews-v1, port: 9080, weight: -10}]
`, want: []string{"spec.rules[0].backendRefs[0].weight", "greater than or equal to 0"}},
		{name: "HTTPRoute path without a leading slash (CEL)", doc: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: bookinfo}
spec:
  rules:
  - matches: [{path: {type: PathPrefix, value: reviews}}]
    backendRefs: [{name: reviews-v1, port: 9080}]
`, want: []string{"spec.rules[0].matches[0].path", "must be an absolute path"}},
		{name: "Istio kind without rules (Sidecar)", doc: `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: bookinfo}
spec: {anything: goes}
`},
		{name: "kind outside the webhook's groups", doc: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews, namespace: bookinfo}
spec: {replicas: -1}
`},
		{name: "Gateway API version meshlab does not install", doc: `
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: HTTPRoute
metadata: {name: reviews, namespace: bookinfo}
spec: {rules: [{backendRefs: [{name: x, port: 1, weight: -10}]}]}
`},
		{name: "delete is not validated", op: admissionv1.Delete, doc: strings.Replace(validVS, "weight: 90", "weight: -10", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := tc.op
			if op == "" {
				op = admissionv1.Create
			}
			body := review(t, op, tc.doc)
			var req admissionv1.AdmissionReview
			_ = json.Unmarshal(body, &req)
			r := admit(t, client, srv.URL, body)
			if r.UID != req.Request.UID {
				t.Errorf("UID = %q, want %q", r.UID, req.Request.UID)
			}
			if len(tc.want) == 0 {
				if !r.Allowed {
					t.Errorf("denied: %+v", r.Result)
				}
				return
			}
			if r.Allowed || r.Result == nil {
				t.Fatalf("allowed, want denied with %q", tc.want)
			}
			if r.Result.Code != http.StatusUnprocessableEntity || r.Result.Reason != metav1.StatusReasonInvalid {
				t.Errorf("result code %d reason %s", r.Result.Code, r.Result.Reason)
			}
			if !strings.HasPrefix(r.Result.Message, "configuration is invalid: ") {
				t.Errorf("message %q", r.Result.Message)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Result.Message, w) {
					t.Errorf("message %q lacks %q", r.Result.Message, w)
				}
			}
			t.Logf("kubectl would print: admission webhook %q denied the request: %s", WebhookName, r.Result.Message)
		})
	}
	if logged.Load() == 0 {
		t.Error("no rejection was logged")
	}

	// Istio's warnings reach kubectl on an admitted object.
	warned := strings.Replace(validVS, "  - route:", "  - mirrorPercent: 50\n    mirror: {host: reviews}\n    retries: {attempts: 2, retryRemoteLocalities: true}\n    route:", 1)
	r := admit(t, client, srv.URL, review(t, admissionv1.Create, warned))
	if !r.Allowed || len(r.Warnings) == 0 || !strings.Contains(r.Warnings[0], "spec.http[0].mirrorPercent: deprecated") {
		t.Errorf("deprecated mirrorPercent: allowed %v, warnings %q", r.Allowed, r.Warnings)
	}
	// ... and so do meshlab's: it ignores retryRemoteLocalities (it mirrors: no warning for mirror).
	if !slices.Contains(r.Warnings, "spec.http[0].retries.retryRemoteLocalities: meshlab does not implement VirtualService http.retries.retryRemoteLocalities; it is ignored") {
		t.Errorf("retryRemoteLocalities: warnings %q lack meshlab's", r.Warnings)
	}
	for _, w := range r.Warnings {
		if strings.Contains(w, "http.mirror") {
			t.Errorf("warning %q: meshlab implements mirror", w)
		}
	}
}

// TestWebhookCoverage: what meshlab does not implement is denied with "meshlab does not implement ..." where
// ignoring it would mislead, admitted with that warning where it degrades gracefully, and a kind meshlab
// does not act on is admitted with a warning that it has no effect (issue #12).
func TestWebhookCoverage(t *testing.T) {
	srv, client, _ := tlsServer(t, Handler(Options{}))
	for _, tc := range []struct {
		name   string
		doc    string
		denied string // the denial must contain it; empty: admitted
		warn   string // a warning must equal it
	}{
		{name: "AuthorizationPolicy when is denied", doc: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-header, namespace: bookinfo}
spec:
  selector: {matchLabels: {app: reviews}}
  rules: [{when: [{key: "request.headers[x-user]", values: [admin]}]}]
`, denied: "spec.rules[0].when[0]: meshlab does not implement AuthorizationPolicy rules.when on keys other than request.auth.*"},
		{name: "AuthorizationPolicy requestPrincipals and JWT claims on a waypoint are admitted", doc: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt, namespace: bookinfo}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: waypoint}]
  rules: [{from: [{source: {requestPrincipals: ["*"]}}], when: [{key: "request.auth.claims[groups]", values: [dev]}]}]
`},
		{name: "RequestAuthentication with jwksUri is denied", doc: `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: bookinfo}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: waypoint}]
  jwtRules: [{issuer: "https://accounts.example.com", jwksUri: "https://accounts.example.com/jwks"}]
`, denied: "spec.jwtRules[0].jwksUri: meshlab does not implement RequestAuthentication jwtRules.jwksUri; meshlab fetches no keys"},
		{name: "VirtualService CORS policy is admitted (implemented)", doc: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http: [{corsPolicy: {allowOrigins: [{exact: "https://example.com"}]}, route: [{destination: {host: reviews}}]}]
`},
		{name: "HTTPRoute CORS filter is denied", doc: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: bookinfo}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - matches: [{queryParams: [{name: v, value: "2"}]}]
    filters: [{type: CORS, cors: {allowOrigins: ["https://example.com"]}}]
    backendRefs: [{name: reviews-v2, port: 9080}]
`, denied: "spec.rules[0].filters[0].cors: meshlab does not implement HTTPRoute rules.filters CORS"},
		{name: "DestinationRule outlierDetection interval is a warning", doc: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3, interval: 5s}}
`, warn: "spec.trafficPolicy.outlierDetection.interval: meshlab does not implement DestinationRule trafficPolicy.outlierDetection.interval; it is written into the cluster as in Istio, but meshlab's proxies return an ejected host when its ejection time ends, not at the next interval"},
		{name: "Sidecar is stored with a warning", doc: `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: bookinfo}
spec: {egress: [{hosts: ["./*"]}]}
`, warn: "meshlab does not implement Sidecar; it is stored but has no effect"},
		{name: "TLSRoute is stored with a warning", doc: `
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: tls, namespace: bookinfo}
spec: {parentRefs: [{group: "", kind: Service, name: reviews}], hostnames: [reviews.example], rules: [{backendRefs: [{name: reviews, port: 9080}]}]}
`, warn: "meshlab does not implement TLSRoute; it is stored but has no effect"},
		{name: "GRPCRoute with an Exact method that is no gRPC name is denied", doc: `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc, namespace: bookinfo}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules: [{matches: [{method: {service: "grpc.health.v1.Health", method: "Check/Now"}}]}]
`, denied: "spec.rules[0].matches[0].method: Invalid value: method must only contain valid characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := admit(t, client, srv.URL, review(t, admissionv1.Create, tc.doc))
			if tc.denied != "" {
				if r.Allowed || r.Result == nil {
					t.Fatalf("allowed (warnings %q), want denied with %q", r.Warnings, tc.denied)
				}
				if !strings.Contains(r.Result.Message, tc.denied) || r.Result.Code != http.StatusUnprocessableEntity {
					t.Errorf("denied with %d %q, want %q", r.Result.Code, r.Result.Message, tc.denied)
				}
				return
			}
			if !r.Allowed {
				t.Fatalf("denied: %+v", r.Result)
			}
			if tc.warn == "" && len(r.Warnings) > 0 {
				t.Errorf("warnings %q, want none", r.Warnings)
			}
			if tc.warn != "" && !slices.Contains(r.Warnings, tc.warn) {
				t.Errorf("warnings %q lack %q", r.Warnings, tc.warn)
			}
		})
	}
}

func TestWebhookMalformed(t *testing.T) {
	srv, client, _ := tlsServer(t, Handler(Options{}))
	good := review(t, admissionv1.Create, validVS)
	noRequest, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}})
	v1beta1 := bytes.Replace(good, []byte(`"admission.k8s.io/v1"`), []byte(`"admission.k8s.io/v1beta1"`), 1)
	for _, tc := range []struct {
		name, contentType string
		body              []byte
		code              int
	}{
		{"not JSON", "application/json", []byte("{not json"), http.StatusBadRequest},
		{"empty body", "application/json", nil, http.StatusBadRequest},
		{"review without a request", "application/json", noRequest, http.StatusBadRequest},
		{"v1beta1 review (the configuration asks for v1)", "application/json", v1beta1, http.StatusBadRequest},
		{"wrong content type", "text/plain", good, http.StatusUnsupportedMediaType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := post(t, client, srv.URL, tc.contentType, tc.body)
			if resp.StatusCode != tc.code {
				t.Errorf("HTTP %s (%s), want %d", resp.Status, b, tc.code)
			}
		})
	}
	resp, err := client.Get(srv.URL + Path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: HTTP %s", resp.Status)
	}
	// A malformed object inside a well-formed review is denied, not a transport error.
	var ar admissionv1.AdmissionReview
	_ = json.Unmarshal(good, &ar)
	ar.Request.Object.Raw = []byte(`{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","spec":{"hosts":"not-a-list"}}`)
	bad, _ := json.Marshal(ar)
	if r := admit(t, client, srv.URL, bad); r.Allowed || r.Result == nil || !strings.Contains(r.Result.Message, "spec.hosts") {
		t.Errorf("malformed VirtualService: %+v", r)
	}
	// The server still answers.
	if r := admit(t, client, srv.URL, good); !r.Allowed {
		t.Errorf("after malformed reviews, a valid VirtualService is denied: %+v", r.Result)
	}
}

// dnsServer serves h at Path with a certificate for the control plane's Service DNS name, as the control
// plane's webhook listener does (the API server verifies that name, not a SPIFFE ID).
func dnsServer(t *testing.T, h http.Handler) (*httptest.Server, *ca.CA) {
	t.Helper()
	c, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	svid, err := c.IssueServing(mesh.ControlPlaneID, []string{mesh.ServerName}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{PrivateKey: svid.PrivateKey, Leaf: svid.Certificates[0]}
	for _, x := range svid.Certificates {
		cert.Certificate = append(cert.Certificate, x.Raw)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, c
}

func TestProbe(t *testing.T) {
	ctx := context.Background()
	srv, c := dnsServer(t, Handler(Options{}))
	addr := strings.TrimPrefix(srv.URL, "https://")
	if err := Probe(ctx, addr, c.RootPEM(), mesh.ServerName); err != nil {
		t.Errorf("Probe() = %v", err)
	}
	if err := Probe(ctx, addr, c.RootPEM(), "other."+mesh.Namespace+".svc"); err == nil {
		t.Error("Probe() by a name the certificate lacks succeeded")
	}
	// A webhook that admits everything is not ready to fail closed.
	permissive := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ar admissionv1.AdmissionReview
		_ = json.NewDecoder(r.Body).Decode(&ar)
		_ = json.NewEncoder(w).Encode(admissionv1.AdmissionReview{TypeMeta: ar.TypeMeta,
			Response: &admissionv1.AdmissionResponse{UID: ar.Request.UID, Allowed: true}})
	})
	srv2, c2 := dnsServer(t, permissive)
	if err := Probe(ctx, strings.TrimPrefix(srv2.URL, "https://"), c2.RootPEM(), mesh.ServerName); err == nil || !strings.Contains(err.Error(), "admitted") {
		t.Errorf("Probe() of a permissive webhook = %v", err)
	}
}
