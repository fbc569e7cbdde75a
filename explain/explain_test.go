package explain_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/explain"
	"github.com/meshlab/meshlab/internal/golden"
)

const (
	productpage = "default/productpage-v1-6b746f74dc-9stvs"
	sleep       = "legacy/sleep-7d8b8f9c6-qz2lm"
	gatewayPod  = "default/bookinfo-gateway-istio-5d9c7b8f6d-x2k4p"
)

// load builds a snapshot from bookinfo and more files (modeltest fixtures, or this package's testdata).
func load(t *testing.T, files ...string) *model.Snapshot {
	t.Helper()
	return modeltest.LoadBookinfoWith(t, files...)
}

type testCase struct {
	name    string
	files   []string
	from    string
	method  string
	url     string
	headers http.Header
	// what the prediction must say, besides the golden file: outcome and status, and for forwarded
	// requests the probability of reaching each pod.
	outcome string
	status  int
	reach   map[string]float64
}

var cases = []testCase{
	{name: "vs-90-10", files: []string{modeltest.ReviewsVS}, from: productpage, url: "http://reviews:9080/reviews/0",
		outcome: explain.OutcomeForwarded, reach: map[string]float64{"default/reviews-v1-545db77b95-2ps6q": 0.9, "default/reviews-v2-7bf8c9648f-5jw7x": 0.1}},
	{name: "httproute-90-10", files: []string{modeltest.ReviewsHTTPRoute}, from: productpage, url: "http://reviews:9080/reviews/0",
		outcome: explain.OutcomeForwarded, reach: map[string]float64{"default/reviews-v1-545db77b95-2ps6q": 0.9, "default/reviews-v2-7bf8c9648f-5jw7x": 0.1}},
	{name: "header-match", files: []string{"testdata/header-match.yaml"}, from: productpage, url: "http://reviews:9080/reviews/0",
		headers: http.Header{"End-User": {"jason"}},
		outcome: explain.OutcomeForwarded, reach: map[string]float64{"default/reviews-v2-7bf8c9648f-5jw7x": 1}},
	{name: "header-mismatch", files: []string{"testdata/header-match.yaml"}, from: productpage, url: "http://reviews:9080/reviews/0",
		headers: http.Header{"End-User": {"bob"}},
		outcome: explain.OutcomeForwarded, reach: map[string]float64{"default/reviews-v1-545db77b95-2ps6q": 1}},
	{name: "fault-abort", files: []string{"testdata/fault-abort.yaml"}, from: productpage, url: "http://reviews:9080/reviews/0",
		outcome: explain.OutcomeAborted, status: 503},
	{name: "l7-deny-waypoint", files: []string{modeltest.ReviewsVS, "testdata/l7-deny.yaml"}, from: productpage, url: "http://reviews:9080/reviews/0",
		outcome: explain.OutcomeDenied, status: 403},
	{name: "l7-allow-other-path", files: []string{modeltest.ReviewsVS, "testdata/l7-deny.yaml"}, from: productpage, url: "http://reviews:9080/health",
		outcome: explain.OutcomeForwarded, reach: map[string]float64{"default/reviews-v1-545db77b95-2ps6q": 0.9, "default/reviews-v2-7bf8c9648f-5jw7x": 0.1}},
	{name: "l4-deny-ztunnel", files: []string{"testdata/l4-deny.yaml"}, from: productpage, url: "http://details:9080/details/0",
		outcome: explain.OutcomeDenied},
	{name: "no-waypoint", from: productpage, url: "http://details:9080/details/0",
		outcome: explain.OutcomeForwarded, reach: map[string]float64{"default/details-v1-79f774bdb9-qkq4x": 1}},
	{name: "sidecar-source", files: []string{modeltest.ReviewsVS, "testdata/sidecar-sleep.yaml"}, from: sleep, url: "http://reviews.default:9080/reviews/0",
		outcome: explain.OutcomeForwarded, reach: map[string]float64{"default/reviews-v1-545db77b95-2ps6q": 0.9, "default/reviews-v2-7bf8c9648f-5jw7x": 0.1}},
	{name: "ingress-source", files: []string{modeltest.BookinfoGateway}, from: gatewayPod, url: "http://bookinfo.example.com/productpage",
		outcome: explain.OutcomeForwarded, reach: map[string]float64{"default/productpage-v1-6b746f74dc-9stvs": 1}},
	{name: "ingress-no-route", files: []string{modeltest.BookinfoGateway}, from: gatewayPod, url: "http://bookinfo.example.com/admin",
		outcome: explain.OutcomeNoRoute, status: 404},
	{name: "uncaptured-source", files: []string{"testdata/outside-curl.yaml"}, from: "outside/curl", url: "http://details.default:9080/details/0",
		outcome: explain.OutcomeForwarded, reach: map[string]float64{"default/details-v1-79f774bdb9-qkq4x": 1}},
	{name: "no-route", files: []string{"testdata/no-route.yaml"}, from: productpage, url: "http://reviews:9080/reviews/0",
		outcome: explain.OutcomeNoRoute, status: 404},
	{name: "grpcroute-method", files: []string{modeltest.GreeterGRPCRoute}, from: productpage, method: "POST",
		url: "http://greeter:9090/grpc.health.v1.Health/Check", headers: http.Header{"Content-Type": {"application/grpc"}},
		outcome: explain.OutcomeForwarded, reach: map[string]float64{"default/greeter-v1-5d8f7c6b9-abcde": 1}},
	{name: "tcproute-80-20", files: []string{modeltest.EchoTCPRoute}, from: productpage, url: "http://tcp-echo:9000/",
		outcome: explain.OutcomeForwarded, reach: map[string]float64{"default/tcp-echo-v1-6b7c8d9e0-aaaaa": 0.8, "default/tcp-echo-v2-6b7c8d9e0-bbbbb": 0.2}},
}

// TestExplainGolden predicts each case and compares the text tree with testdata/NAME.golden; it also
// checks the outcome and where the request lands against what the case states, so that a golden file
// accepted with -update cannot hide a wrong prediction.
func TestExplainGolden(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := load(t, tc.files...)
			r, err := explain.Explain(explain.Offline{Snapshot: snap}, explain.Request{From: tc.from, Method: tc.method, URL: tc.url, Headers: tc.headers})
			if err != nil {
				t.Fatalf("Explain() = %v", err)
			}
			if r.Result.Outcome != tc.outcome || r.Result.Status != tc.status {
				t.Errorf("result = %s %d (%s), want %s %d", r.Result.Outcome, r.Result.Status, r.Result.Summary, tc.outcome, tc.status)
			}
			if tc.reach != nil {
				got := map[string]float64{}
				for _, b := range r.Backends {
					for _, ep := range b.Endpoints {
						if ep.Inbound == nil || ep.Inbound.Allowed {
							got[ep.Pod] += b.Probability / float64(len(b.Endpoints))
						}
					}
				}
				for pod, p := range tc.reach {
					if d := got[pod] - p; d > 1e-9 || d < -1e-9 {
						t.Errorf("P(%s) = %v, want %v (all: %v)", pod, got[pod], p, got)
					}
				}
				if len(got) != len(tc.reach) {
					t.Errorf("reaches %v, want %v", got, tc.reach)
				}
			}
			var buf bytes.Buffer
			if err := r.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", tc.name+".golden"), buf.Bytes())
		})
	}
}

// TestExplainJSON: -o json carries the same facts, in a stable shape.
func TestExplainJSON(t *testing.T) {
	snap := load(t, modeltest.ReviewsVS)
	r, err := explain.Explain(explain.Offline{Snapshot: snap}, explain.Request{From: productpage, URL: "http://reviews:9080/reviews/0"})
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/vs-90-10.json", append(js, '\n'))
}

// TestExplainDetails checks the facts the issue asks for, one by one, on the 90/10 VirtualService.
func TestExplainDetails(t *testing.T) {
	snap := load(t, "testdata/header-match.yaml")
	r, err := explain.Explain(explain.Offline{Snapshot: snap}, explain.Request{From: productpage, URL: "http://reviews:9080/ratings/1", Headers: http.Header{"End-User": {"jason"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Source.Why, "label istio.io/dataplane-mode=ambient on Namespace default"; got != want {
		t.Errorf("capture why = %q, want %q", got, want)
	}
	z := r.Ztunnel
	if z == nil || z.Waypoint != "default/reviews-waypoint" || z.WaypointWhy != "label istio.io/use-waypoint=reviews-waypoint on Service default/reviews" ||
		z.Target != "10.96.10.13:9080" || z.Via != "10.244.1.20:15008" || z.ExpectedIdentity != "spiffe://cluster.local/ns/default/sa/reviews-waypoint" {
		t.Errorf("ztunnel hop = %+v", z)
	}
	p := r.Proxy
	if p == nil || p.FilterChain != "inbound-vip|9080|http|reviews.default.svc.cluster.local" || p.VirtualHost != "inbound|http|9080" {
		t.Fatalf("proxy hop = %+v", p)
	}
	// The first rule matches on the path, before the header rule is tried.
	if p.Route == nil || p.Route.Name != "ratings-path" || p.Route.Rule != "http[0]" || p.Route.Source != "VirtualService default/reviews" {
		t.Errorf("route = %+v", p.Route)
	}
	if len(p.Routes) != 1 || !p.Routes[0].Matched {
		t.Errorf("routes tried = %+v, want only the first", p.Routes)
	}
	if len(r.Backends) != 1 || r.Backends[0].Subset != "v3" || r.Backends[0].SubsetLabels["version"] != "v3" {
		t.Errorf("backends = %+v", r.Backends)
	}
}

func TestExplainInputErrors(t *testing.T) {
	snap := load(t)
	for _, tc := range []struct{ from, url, want string }{
		{"productpage", "http://reviews:9080/", "want NAMESPACE/POD"},
		{"default/nope", "http://reviews:9080/", "no pod default/nope"},
		{productpage, "http://nosuch:9080/", "no Service nosuch.default.svc.cluster.local"},
		{productpage, "https://reviews:9080/", "only http"},
		{productpage, "http://reviews:99999/", "bad port"},
	} {
		_, err := explain.Explain(explain.Offline{Snapshot: snap}, explain.Request{From: tc.from, URL: tc.url})
		var in *explain.InputError
		if !errors.As(err, &in) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Explain(%s, %s) = %v, want an InputError with %q", tc.from, tc.url, err, tc.want)
		}
	}
}
