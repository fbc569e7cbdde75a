package model_test

import (
	"os"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

// TestRequestAuthenticationBinding: targetRefs bind to the waypoint (for the Service targeted, or for all
// its traffic through its Gateway), selectors to sidecars of the namespace (and the root namespace's to
// every one); what cannot bind is a problem.
func TestRequestAuthenticationBinding(t *testing.T) {
	base, err := os.ReadFile(modeltest.Path(modeltest.Bookinfo))
	if err != nil {
		t.Fatal(err)
	}
	snap := modeltest.FromYAML(t, string(base), `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: on-reviews, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  jwtRules: [{issuer: a, jwks: '{"keys":[]}'}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: on-waypoint, namespace: default}
spec:
  targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: reviews-waypoint}
  jwtRules: [{issuer: b, jwks: '{"keys":[]}'}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: productpage, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  jwtRules: [{issuer: c, jwks: '{"keys":[]}'}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: mesh-wide, namespace: istio-system}
spec:
  jwtRules: [{issuer: d}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: on-details, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: details}]
  jwtRules: [{issuer: e, jwks: '{"keys":[]}'}]`)
	ns := func(ras []*model.RequestAuthentication) string {
		var out []string
		for _, ra := range ras {
			out = append(out, ra.Name)
		}
		return strings.Join(out, ",")
	}
	w := snap.Waypoint("default", "reviews-waypoint")
	if got := ns(snap.JWTRulesForWaypoint(w, snap.Service("reviews.default.svc.cluster.local"))); got != "on-reviews,on-waypoint" {
		t.Errorf("reviews through the waypoint: %s, want on-reviews,on-waypoint", got)
	}
	if got := ns(snap.JWTRulesForWaypoint(w, nil)); got != "on-waypoint" {
		t.Errorf("workload traffic through the waypoint: %s, want on-waypoint", got)
	}
	if got := ns(snap.JWTRulesForWorkload(snap.Workload("default", "productpage-v1-6b746f74dc-9stvs"))); got != "productpage,mesh-wide" {
		t.Errorf("productpage's sidecar: %s, want productpage,mesh-wide", got)
	}
	if got := ns(snap.JWTRulesForWorkload(snap.Workload("default", "details-v1-79f774bdb9-qkq4x"))); got != "mesh-wide" {
		t.Errorf("details' sidecar: %s, want mesh-wide", got)
	}
	var problems []string
	for _, p := range snap.Problems {
		problems = append(problems, p.String())
	}
	for _, want := range []string{
		`RequestAuthentication/default/on-details: targetRef Service default/details is not bound to a waypoint, so nothing enforces this policy`,
		`RequestAuthentication/istio-system/mesh-wide: jwtRules[0] (issuer "d") has no inline jwks: every token it is asked to verify is rejected`,
	} {
		if !strings.Contains(strings.Join(problems, "\n"), want) {
			t.Errorf("problems lack %q:\n%s", want, strings.Join(problems, "\n"))
		}
	}
}
