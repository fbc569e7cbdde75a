package explain_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/explain"
)

// The observations below are what the access logs of a lab holding the fixture's config would show for
// the request (addresses from modeltest's bookinfo).
func throughWaypoint() *explain.Observed {
	return &explain.Observed{Status: 200,
		Ztunnel: &explain.ObservedZtunnel{Pod: "ztunnel-a", Node: "meshlab-worker", Protocol: "HBONE", Via: "10.244.1.20:15008", Target: "10.96.10.13:9080",
			Service: "reviews.default.svc.cluster.local", Identity: "spiffe://cluster.local/ns/default/sa/reviews-waypoint"},
		Waypoint: &explain.ObservedWaypoint{Waypoint: "default/reviews-waypoint", Logged: true, Status: 200, Route: "reviews.default.0",
			Cluster: "inbound-vip|9080|http/v2|reviews.default.svc.cluster.local", UpstreamHost: "envoy://connect_originate/10.244.2.14:9080"},
	}
}

func direct() *explain.Observed {
	return &explain.Observed{Status: 200,
		Ztunnel: &explain.ObservedZtunnel{Pod: "ztunnel-a", Node: "meshlab-worker", Protocol: "HBONE", Via: "10.244.1.11:15008", Target: "10.244.1.11:9080",
			Workload: "default/details-v1-79f774bdb9-qkq4x", Identity: "spiffe://cluster.local/ns/default/sa/bookinfo-details"},
		Inbound: &explain.ObservedInbound{Pod: "ztunnel-a", Workload: "default/details-v1-79f774bdb9-qkq4x", SourceIdentity: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"},
	}
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   []string
		url     string
		obs     func(*explain.Observed)
		base    func() *explain.Observed
		same    bool
		differs []string // facts flagged
	}{
		{"waypoint, as predicted (the 10% branch)", []string{modeltest.ReviewsVS}, "http://reviews:9080/reviews/0", nil, throughWaypoint, true, nil},
		{"waypoint skipped", []string{modeltest.ReviewsVS}, "http://reviews:9080/reviews/0", func(o *explain.Observed) {
			o.Waypoint = nil
			o.Ztunnel.Via, o.Ztunnel.Target, o.Ztunnel.Workload = "10.244.1.13:15008", "10.244.1.13:9080", "default/reviews-v1-545db77b95-2ps6q"
			o.Ztunnel.Identity = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
		}, throughWaypoint, false, []string{"waypoint", "HBONE target", "waypoint identity"}},
		{"a cluster the route does not name", []string{modeltest.ReviewsVS}, "http://reviews:9080/reviews/0", func(o *explain.Observed) {
			o.Waypoint.Cluster, o.Waypoint.UpstreamHost = "inbound-vip|9080|http/v3|reviews.default.svc.cluster.local", "envoy://connect_originate/10.244.2.15:9080"
		}, throughWaypoint, false, []string{"cluster", "pod"}},
		{"another route", []string{modeltest.ReviewsVS}, "http://reviews:9080/reviews/0", func(o *explain.Observed) { o.Waypoint.Route = "default" },
			throughWaypoint, false, []string{"route"}},
		{"waypoint line missing", []string{modeltest.ReviewsVS}, "http://reviews:9080/reviews/0", func(o *explain.Observed) {
			o.Waypoint = &explain.ObservedWaypoint{Waypoint: "default/reviews-waypoint"}
		},
			throughWaypoint, false, []string{"request line", "pod"}},
		{"direct, as predicted", nil, "http://details:9080/details/0", nil, direct, true, nil},
		{"direct, wrong client identity", nil, "http://details:9080/details/0", func(o *explain.Observed) { o.Inbound.SourceIdentity = "spiffe://cluster.local/ns/default/sa/other" },
			direct, false, []string{"client identity"}},
		{"direct, not captured", nil, "http://details:9080/details/0", func(o *explain.Observed) { o.Ztunnel, o.Inbound = nil, nil }, direct, false, []string{"captured by", "pod"}},
		{"L4 deny predicted, request answered", []string{"testdata/l4-deny.yaml"}, "http://details:9080/details/0", nil, direct, false, []string{"denied"}},
		{"L4 deny predicted and seen", []string{"testdata/l4-deny.yaml"}, "http://details:9080/details/0", func(o *explain.Observed) {
			o.Status, o.ClientError, o.Inbound = 0, "curl: (56) Recv failure", nil
		}, direct, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := explain.Explain(explain.Offline{Snapshot: load(t, tc.files...)}, explain.Request{From: productpage, URL: tc.url})
			if err != nil {
				t.Fatal(err)
			}
			o := tc.base()
			if tc.obs != nil {
				tc.obs(o)
			}
			c := explain.Compare(r, o)
			var buf bytes.Buffer
			if err := c.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			if c.Same != tc.same {
				t.Errorf("same = %v, want %v:\n%s", c.Same, tc.same, buf.String())
			}
			var flagged []string
			for _, row := range c.Rows {
				if !row.Match {
					flagged = append(flagged, row.Fact)
				}
			}
			if strings.Join(flagged, ",") != strings.Join(tc.differs, ",") {
				t.Errorf("flagged %v, want %v:\n%s", flagged, tc.differs, buf.String())
			}
			if want := map[bool]string{true: "observed = predicted", false: "observed differs from predicted"}[tc.same]; !strings.Contains(buf.String(), want) {
				t.Errorf("text lacks %q:\n%s", want, buf.String())
			}
		})
	}
}
