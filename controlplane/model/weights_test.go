package model_test

import (
	"reflect"
	"strings"
	"testing"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

// The loaders reject negative weights, but objects can reach the model without them (informers, tests): a
// negative weight must never wrap into a huge uint32 that takes all the traffic.
func TestNegativeWeightsNeverWrap(t *testing.T) {
	for _, tc := range []struct {
		name, fixture, doc string
		obj                ingest.Object
		want               []string // service/subset:weight
		problem            string
	}{
		{"VirtualService", modeltest.ReviewsVS, `
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 110
    - destination: {host: reviews, subset: v2}
      weight: -10`, &networkingv1.VirtualService{}, []string{"reviews/v1:110"}, "http[0].route[1]: weight -10 is negative"},
		{"HTTPRoute", modeltest.ReviewsHTTPRoute, `
metadata: {name: reviews, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: 110}
    - {name: reviews-v2, port: 9080, weight: -10}`, &gwv1.HTTPRoute{}, []string{"reviews-v1/:110"}, "rules[0].backendRefs[1]: weight -10 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, _, err := ingest.LoadFiles(modeltest.Path(modeltest.Bookinfo), modeltest.Path(tc.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal([]byte(tc.doc), tc.obj); err != nil {
				t.Fatal(err)
			}
			if _, err := store.Update(tc.obj); err != nil {
				t.Fatal(err)
			}
			snap := model.Build(store.Objects())
			var problems []string
			for _, p := range snap.Problems {
				problems = append(problems, p.String())
			}
			if len(problems) != 1 || !strings.Contains(problems[0], tc.problem) {
				t.Errorf("Problems = %q, want one containing %q", problems, tc.problem)
			}
			rules := snap.RoutesFor(snap.Service("reviews.default.svc.cluster.local"), 9080)
			if len(rules) != 1 {
				t.Fatalf("RoutesFor() = %d rules, want 1", len(rules))
			}
			got := names(rules[0].Destinations, func(d model.Destination) string {
				return d.Service.Name + "/" + d.Subset + ":" + itoa(d.Weight)
			})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("destinations = %v, want %v", got, tc.want)
			}
		})
	}
}
