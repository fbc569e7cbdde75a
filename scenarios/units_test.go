package scenarios

import (
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/controlplane/render"
	"github.com/meshlab/meshlab/controlplane/render/tables"
	"github.com/meshlab/meshlab/controlplane/xds"
)

func ts(typ, sent, acked, nack string) xds.TypeStatus {
	s := xds.TypeStatus{Type: typ, TypeURL: "type/" + typ, SentVersion: sent, SentNonce: "n-" + sent, NackError: nack}
	if acked != "" {
		s.AckedVersion, s.AckedNonce = acked, "n-"+acked
	}
	return s
}

func proxy(id, kind, ns, name string, types ...xds.TypeStatus) xds.ProxyStatus {
	return xds.ProxyStatus{ID: id, Kind: kind, Namespace: ns, Name: name, Types: types}
}

func TestConvergence(t *testing.T) {
	wp := Waypoint("default", "reviews-waypoint")
	zt := ProxySet{Kind: xds.KindZtunnel, Min: 2}
	before := xds.SyncStatus{Proxies: []xds.ProxyStatus{
		proxy("ztunnel/a", "ztunnel", "", "a", ts("WDS", "v1", "v1", "")),
		proxy("ztunnel/b", "ztunnel", "", "b", ts("WDS", "v1", "v1", "")),
	}}
	tests := []struct {
		name string
		now  []xds.ProxyStatus
		sets []ProxySet
		mode convergeMode
		want string // "" converged, else a substring of what is waiting
	}{
		{"new waypoint not connected", before.Proxies, []ProxySet{wp}, modeChanged, "default/reviews-waypoint: 0 of 1 connected"},
		{"new waypoint stale", append(before.Proxies, proxy("waypoint/default/reviews-waypoint", "waypoint", "default", "reviews-waypoint", ts("CDS", "c1", "", ""))), []ProxySet{wp}, modeChanged, "CDS STALE"},
		{"new waypoint synced", append(before.Proxies, proxy("waypoint/default/reviews-waypoint", "waypoint", "default", "reviews-waypoint", ts("CDS", "c1", "c1", ""), ts("RDS", "r1", "r1", ""))), []ProxySet{wp}, modeChanged, ""},
		{"waypoint under its pod name", []xds.ProxyStatus{proxy("router~10.0.0.1~reviews-waypoint-5d9f-x~default", "router", "default", "reviews-waypoint-5d9f-x", ts("CDS", "c1", "c1", ""))}, []ProxySet{{Namespace: "default", Name: "reviews-waypoint"}}, modeChanged, ""},
		{"nacked", append(before.Proxies, proxy("waypoint/default/reviews-waypoint", "waypoint", "default", "reviews-waypoint", ts("RDS", "r2", "r1", "unknown cluster"))), []ProxySet{wp}, modeChanged, "RDS NACKED (unknown cluster)"},
		{"ztunnels unchanged", before.Proxies, []ProxySet{zt}, modeChanged, "still at the config from before the change"},
		{"one ztunnel changed", []xds.ProxyStatus{
			proxy("ztunnel/a", "ztunnel", "", "a", ts("WDS", "v2", "v2", "")),
			proxy("ztunnel/b", "ztunnel", "", "b", ts("WDS", "v1", "v1", "")),
		}, []ProxySet{zt}, modeChanged, "ztunnel/b: still at"},
		{"both ztunnels changed", []xds.ProxyStatus{
			proxy("ztunnel/a", "ztunnel", "", "a", ts("WDS", "v2", "v2", "")),
			proxy("ztunnel/b", "ztunnel", "", "b", ts("WDS", "v2", "v2", "")),
		}, []ProxySet{zt}, modeChanged, ""},
		{"a ztunnel missing", before.Proxies[:1], []ProxySet{zt}, modeSynced, "ztunnel: 1 of 2 connected"},
		{"synced needs no change", before.Proxies, []ProxySet{AllProxies()}, modeSynced, ""},
		{"restored", before.Proxies, []ProxySet{zt, wp}, modeRestored, ""},
		{"waypoint not gone yet", append(before.Proxies, proxy("waypoint/default/reviews-waypoint", "waypoint", "default", "reviews-waypoint", ts("CDS", "c1", "c1", ""))), []ProxySet{wp}, modeRestored, "should be gone"},
		{"ztunnel not restored", []xds.ProxyStatus{proxy("ztunnel/a", "ztunnel", "", "a", ts("WDS", "v2", "v2", ""))}, []ProxySet{zt}, modeRestored, "not back at its config from before the scenario: WDS v2 (before: v1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := convergence(before, xds.SyncStatus{Proxies: tt.now}, tt.sets, tt.mode)
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("waiting on %q, want converged", got)
			case tt.want != "" && !strings.Contains(strings.Join(got, "\n"), tt.want):
				t.Errorf("waiting on %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckSplit(t *testing.T) {
	w := map[string]float64{"reviews-v1": 90, "reviews-v2": 10}
	if n := SampleSize(w); n != 200 {
		t.Errorf("SampleSize(90/10) = %d, want 200 (ceil(20 * 100 / 10))", n)
	}
	if n := SampleSize(map[string]float64{"a": 1, "b": 1, "c": 2}); n != 80 {
		t.Errorf("SampleSize(1/1/2) = %d, want 80", n)
	}
	tests := []struct {
		counts   Counts
		ok       bool
		wantSeen string
	}{
		{Counts{"reviews-v1": 178, "reviews-v2": 22}, true, "reviews-v1 178, reviews-v2 22"},
		{Counts{"reviews-v1": 188, "reviews-v2": 12}, true, ""},    // chi-square 3.6, p 0.06: within chance
		{Counts{"reviews-v1": 200}, false, "p = 2.4e-06"},          // nothing reached v2
		{Counts{"reviews-v1": 160, "reviews-v2": 40}, false, "22"}, // an 80/20 split
		{Counts{"reviews-v1": 179, "reviews-v2": 20, "HTTP 503": 1}, false, "unexpected: HTTP 503"},
	}
	for _, tt := range tests {
		exp, seen, ok := CheckSplit(tt.counts, w)
		if ok != tt.ok || !strings.Contains(seen, tt.wantSeen) {
			t.Errorf("CheckSplit(%v) = %v, %q; want %v, seen containing %q", tt.counts, ok, seen, tt.ok, tt.wantSeen)
		}
		if !strings.Contains(exp, "reviews-v1 ") || !strings.Contains(exp, "alpha 0.001") {
			t.Errorf("expected = %q", exp)
		}
	}
	_, _, ok := CheckSplit(Counts{"reviews-v1": 180, "reviews-v2": 20}, w)
	exp, _, _ := CheckSplit(Counts{"reviews-v1": 180, "reviews-v2": 20}, w)
	if !ok || !strings.HasPrefix(exp, "reviews-v1 180, reviews-v2 20 of 200 (weights 90/10") {
		t.Errorf("exact split: ok %v, expected %q", ok, exp)
	}
}

func TestParseCurlOutput(t *testing.T) {
	tests := []struct {
		out     string
		status  int
		header  string
		body    string
		wantErr bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Envoy-Upstream-Service-Time: 3\r\n\r\n{\"podname\":\"reviews-v1-abc\"}", 200, "3", `{"podname":"reviews-v1-abc"}`, false},
		{"HTTP/2 503\r\nx-envoy-upstream-service-time: 1\r\n\r\nfault filter abort", 503, "1", "fault filter abort", false},
		{"HTTP/1.1 204 No Content\r\n\r\n", 204, "", "", false},
		{"", 0, "", "", false},
		{"garbage", 0, "", "garbage", true},
	}
	for _, tt := range tests {
		status, h, body, err := ParseCurlOutput(tt.out)
		if status != tt.status || body != tt.body || (err != nil) != tt.wantErr || h.Get("X-Envoy-Upstream-Service-Time") != tt.header {
			t.Errorf("ParseCurlOutput(%q) = %d, %v, %q, %v", tt.out, status, h, body, err)
		}
	}
}

func TestTallyByPodName(t *testing.T) {
	rs := []Response{
		{Status: 200, Body: `{"id":0,"podname":"reviews-v1-7f9c-abcde","clustername":"null"}`},
		{Status: 200, Body: `{"podname":"reviews-v2-55d-xyz"}`},
		{Status: 200, Body: `{"podname":"reviews-v1-7f9c-abcde"}`},
		{Status: 200, Body: `{"podname":"reviews-v3-1"}`},
		{Status: 503, Body: "no healthy upstream"},
		{ExitCode: 56, Stderr: "curl: (56) Recv failure: Connection reset by peer\n"},
		{Status: 200, Body: "<html>"},
	}
	got := Tally(rs, ByPodName("reviews-v1", "reviews-v2"))
	want := "HTTP 503 1, answer without podname 1, curl exit 56: curl: (56) Recv failure: Connection reset by peer 1, other pod reviews-v3-1 1, reviews-v1 2, reviews-v2 1"
	if got.String() != want {
		t.Errorf("Tally =\n%s\nwant\n%s", got, want)
	}
	if got.Total() != len(rs) {
		t.Errorf("Total = %d, want %d", got.Total(), len(rs))
	}
}

func TestCurlArgs(t *testing.T) {
	got := strings.Join(CurlArgs(Request{URL: "http://reviews:9080/reviews/0", Args: []string{"-H", "end-user: jason"}}), " ")
	want := "meshlab curl -s -S -i --max-time 5 -H end-user: jason http://reviews:9080/reviews/0"
	if got != want {
		t.Errorf("CurlArgs = %q, want %q", got, want)
	}
}

func TestDecodeYAML(t *testing.T) {
	objs, err := DecodeYAML(`
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default, labels: {istio.io/use-waypoint: reviews-waypoint}}
---
# only a comment
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: reviews-waypoint, namespace: default}
spec: {gatewayClassName: istio-waypoint}
`)
	if err != nil || len(objs) != 2 || objs[1].GetKind() != "Gateway" || objs[0].GetLabels()["istio.io/use-waypoint"] != "reviews-waypoint" {
		t.Fatalf("DecodeYAML = %v, %v", objs, err)
	}
	if _, err := DecodeYAML("kind: Service\nmetadata: {name: x}\n"); err == nil {
		t.Errorf("an object without apiVersion was accepted")
	}
}

// waypointDump renders the reviews waypoint's config from the control plane's own fixtures: the same
// generator the live control plane runs.
func waypointDump(t *testing.T, fixture string) *tables.Dump {
	t.Helper()
	snap := modeltest.Load(t, modeltest.Bookinfo, fixture)
	cfg, err := configgen.Envoy(snap, model.Proxy{Kind: model.KindWaypoint, Namespace: "default", Name: "reviews-waypoint"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := tables.FromConfigDump(render.ConfigDump(cfg, "test"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestConfigHelpers(t *testing.T) {
	const fqdn = "reviews.default.svc.cluster.local"
	route := "inbound-vip|9080|http|" + fqdn

	vs := waypointDump(t, modeltest.ReviewsVS)
	w, err := RouteWeights(vs, route)
	if err != nil {
		t.Fatal(err)
	}
	if w["inbound-vip|9080|http/v1|"+fqdn] != 90 || w["inbound-vip|9080|http/v2|"+fqdn] != 10 || len(w) != 2 {
		t.Errorf("RouteWeights(VS) = %v", w)
	}
	clusters := strings.Join(ClusterNames(vs), " ")
	for _, want := range []string{"inbound-vip|9080|http/v1|" + fqdn, "inbound-vip|9080|http/v2|" + fqdn} {
		if !strings.Contains(clusters, want) {
			t.Errorf("clusters %s lack %s", clusters, want)
		}
	}
	if eps := EndpointAddrs(vs, "inbound-vip|9080|http/v1|"+fqdn); len(eps) != 1 || !strings.HasSuffix(eps[0], ":9080") {
		t.Errorf("EndpointAddrs(v1) = %v, want one pod IP:9080", eps)
	}
	if m := Mentions(vs, "productpage", "details", "ratings"); len(m) != 0 {
		t.Errorf("the reviews waypoint mentions other services: %v", m)
	}
	if m := Mentions(vs, "reviews"); len(m) == 0 {
		t.Errorf("Mentions(reviews) found nothing")
	}
	if _, err := RouteWeights(vs, "inbound-vip|9080|http|nope"); err == nil || !strings.Contains(err.Error(), route) {
		t.Errorf("RouteWeights(missing) error = %v, want the known routes listed", err)
	}

	hr := waypointDump(t, modeltest.ReviewsHTTPRoute)
	w, err = RouteWeights(hr, route)
	if err != nil {
		t.Fatal(err)
	}
	if w["inbound-vip|9080|http|reviews-v1.default.svc.cluster.local"] != 90 || w["inbound-vip|9080|http|reviews-v2.default.svc.cluster.local"] != 10 {
		t.Errorf("RouteWeights(HTTPRoute) = %v", w)
	}
}
