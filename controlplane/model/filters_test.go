package model_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

func rulesFor(t *testing.T, snap *model.Snapshot) map[string]*model.RouteRule {
	t.Helper()
	if len(snap.Problems) != 0 {
		t.Fatalf("Problems = %v", snap.Problems)
	}
	out := map[string]*model.RouteRule{}
	for _, r := range snap.RoutesFor(snap.Service("reviews.default.svc.cluster.local"), 9080) {
		out[r.Name] = r
	}
	return out
}

func TestVirtualServiceRedirectRewriteHeaders(t *testing.T) {
	rules := rulesFor(t, modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsVSFilters))
	moved := rules["moved"]
	if moved == nil || moved.Redirect == nil || moved.DirectStatus != 0 || len(moved.Destinations) != 0 {
		t.Fatalf("moved = %+v, want a redirect without destinations or direct status", moved)
	}
	if got := *moved.Redirect; got != (model.Redirect{URI: "/reviews", Authority: "reviews.example", Code: 308}) {
		t.Errorf("moved.Redirect = %+v", got)
	}
	if got := rules["to-https"].Redirect; got.Scheme != "https" || got.PortMode != model.RedirectPortDefault || got.Code != 302 {
		t.Errorf("to-https.Redirect = %+v", got)
	}
	if got := rules["same-port"].Redirect; got.PortMode != model.RedirectPortFromRequest {
		t.Errorf("same-port.Redirect = %+v", got)
	}
	api := rules["api-v2"]
	if got := *api.Rewrite; got != (model.Rewrite{URI: "/reviews/", Authority: "reviews-v2.internal"}) {
		t.Errorf("api-v2.Rewrite = %+v", got)
	}
	if got := fmt.Sprint(*api.Headers); got != "{{[{x-api v2}] [{x-trace on}] [x-legacy]} {[{cache-control no-store}] [] [x-internal]}}" {
		t.Errorf("api-v2.Headers = %s", got)
	}
	if got := fmt.Sprint(*api.Destinations[0].Headers); got != "{{[{x-subset v2}] [] []} {[] [{x-served-by v2}] []}}" {
		t.Errorf("api-v2 destination headers = %s", got)
	}
	if got := *rules["versioned"].Rewrite; got != (model.Rewrite{RegexMatch: "^/v[0-9]+/", RegexRewrite: "/"}) {
		t.Errorf("versioned.Rewrite = %+v", got)
	}
}

func TestHTTPRouteFilters(t *testing.T) {
	rules := rulesFor(t, modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsHTTPRouteFilters))
	for name, want := range map[string]model.Redirect{
		"reviews.default.0": {URI: "/replacement-prefix", PrefixReplace: true, PortMode: model.RedirectPortFromRequest, Code: 302},
		"reviews.default.1": {URI: "/full-path", Authority: "example.org", PortMode: model.RedirectPortFromRequest},
		"reviews.default.2": {Scheme: "https", PortMode: model.RedirectPortDefault},
		"reviews.default.3": {PortMode: model.RedirectPortFixed, Port: 8443},
	} {
		r := rules[name]
		if r == nil || r.Redirect == nil || *r.Redirect != want || r.DirectStatus != 0 {
			t.Errorf("%s = %+v, want redirect %+v", name, r, want)
		}
	}
	for name, want := range map[string]model.Rewrite{
		"reviews.default.4": {URI: "/one", Authority: "one.example.org"},
		"reviews.default.5": {URI: "/"},
		"reviews.default.6": {RegexMatch: "/.*", RegexRewrite: "/one"},
	} {
		if r := rules[name]; r == nil || r.Rewrite == nil || *r.Rewrite != want {
			t.Errorf("%s rewrite = %+v, want %+v", name, r, want)
		}
	}
	hdr := rules["reviews.default.7"]
	if got := fmt.Sprint(*hdr.Headers); got != "{{[{x-header-set set-overwrites-values}] [{x-header-add add-appends-values}] [X-Header-Remove]} {[{x-resp-set resp-set}] [{x-resp-add resp-add}] [X-Resp-Remove]}}" {
		t.Errorf("rule headers = %s", got)
	}
	if got := fmt.Sprint(*hdr.Destinations[0].Headers, *hdr.Destinations[1].Headers); got != "{{[{x-backend v1}] [] []} {[] [] []}} {{[] [] []} {[] [{x-backend v2}] []}}" {
		t.Errorf("backendRef headers = %s", got)
	}
}

func TestUnsupportedHTTPRouteFilterIsAProblem(t *testing.T) {
	snap := modeltest.FromYAML(t, `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 9080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - filters:
    - type: CORS
      cors: {allowOrigins: ["*"]}
    backendRefs: [{name: reviews, port: 9080}]`)
	if len(snap.Problems) != 1 || !strings.Contains(snap.Problems[0].Message, "filter CORS is not supported") {
		t.Errorf("Problems = %v, want one for CORS", snap.Problems)
	}
}
