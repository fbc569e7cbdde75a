package scenarios

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestCheckResponse(t *testing.T) {
	r := Response{Status: 200, Header: http.Header{"X-Envoy-Upstream-Service-Time": {"32"}, "Content-Type": {"application/json"}}, Body: `{"podname":"reviews-v2-5d65f4986f-tqmxq"}`}
	tests := []struct {
		name     string
		r        Response
		want     ResponseWant
		ok       bool
		wantSeen string
	}{
		{"any answer", r, ResponseWant{}, true, "HTTP 200"},
		{"status", r, ResponseWant{Status: 200}, true, "HTTP 200"},
		{"wrong status", r, ResponseWant{Status: 503}, false, "HTTP 200"},
		{"body", r, ResponseWant{BodyRE: `reviews-v[12]`}, true, `body "{\"podname\"`},
		{"body mismatch", r, ResponseWant{BodyRE: `reviews-v3`}, false, "podname"},
		{"header present", r, ResponseWant{Headers: map[string]string{"x-envoy-upstream-service-time": `^\d+$`}}, true, "header x-envoy-upstream-service-time: 32"},
		{"header value mismatch", r, ResponseWant{Headers: map[string]string{"content-type": "text/html"}}, false, "header content-type: application/json"},
		{"header absent wanted", r, ResponseWant{Headers: map[string]string{"x-envoy-upstream-service-time": ""}}, false, "header x-envoy-upstream-service-time: 32"},
		{"header absent", r, ResponseWant{Headers: map[string]string{"x-fault": ""}}, true, "no header x-fault"},
		{"header missing", r, ResponseWant{Headers: map[string]string{"x-fault": "."}}, false, "no header x-fault"},
		{"no answer", Response{ExitCode: 56, Stderr: "curl: (56) Recv failure: Connection reset by peer\n"}, ResponseWant{}, false, "curl exit 56"},
		{"bad pattern", r, ResponseWant{BodyRE: "("}, false, "invalid expectation"},
	}
	for _, tt := range tests {
		seen, ok := CheckResponse(tt.r, tt.want)
		if ok != tt.ok || !strings.Contains(seen, tt.wantSeen) {
			t.Errorf("%s: CheckResponse = %v, %q; want %v, seen containing %q", tt.name, ok, seen, tt.ok, tt.wantSeen)
		}
	}
	if err := (ResponseWant{Status: 42}).Validate(); err == nil {
		t.Errorf("status 42 validated")
	}
	if got := (ResponseWant{Status: 200, BodyRE: "v1", Headers: map[string]string{"X-A": "", "b": "1"}}).String(); got != "HTTP 200, body ~ /v1/, no header x-a, header b ~ /1/" {
		t.Errorf("ResponseWant.String() = %q", got)
	}
}

func TestVerdict(t *testing.T) {
	tests := []struct {
		r    Response
		want string
	}{
		{Response{Status: 200}, VerdictAllowed},
		{Response{Status: 503, Body: "fault filter abort"}, VerdictAllowed},
		{Response{Status: 403, Body: "forbidden by the app"}, VerdictAllowed},
		{Response{Status: 403, Body: "RBAC: access denied"}, VerdictDeniedL7},
		// What sleep's curl printed in the lab when productpage's ztunnel refused the HBONE CONNECT.
		{Response{ExitCode: 56, Stderr: "curl: (56) Recv failure: Connection reset by peer\n"}, VerdictDeniedL4},
		{Response{ExitCode: 52, Stderr: "curl: (52) Empty reply from server\n"}, VerdictDeniedL4},
		{Response{ExitCode: 28, Stderr: "curl: (28) Operation timed out\n"}, "curl exit 28: curl: (28) Operation timed out"},
		{Response{ExitCode: 6, Stderr: "curl: (6) Could not resolve host: nope\n"}, "curl exit 6: curl: (6) Could not resolve host: nope"},
	}
	for _, tt := range tests {
		if got := Verdict(tt.r); got != tt.want {
			t.Errorf("Verdict(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestByField(t *testing.T) {
	rs := []Response{
		{Status: 200, Body: `{"id":"0","podname":"reviews-v2-5d65f4986f-tqmxq","clustername":"null"}`},
		{Status: 200, Body: "ServiceVersion=v1\nServicePort=8080\nStatusCode=200\nHostname=echo-v1-6d8f9c7b5-abcde\n"},
		{Status: 200, Body: "serviceversion=v2\n"},
		{Status: 200, Body: `{"ServiceVersion":"v2"}`},
		{Status: 200, Body: "no fields here"},
		{Status: 503, Body: "fault filter abort"},
	}
	got := Tally(rs, ByField("ServiceVersion")).String()
	if want := "HTTP 503 1, answer without ServiceVersion 2, v1 1, v2 2"; got != want {
		t.Errorf("Tally(ByField(ServiceVersion)) = %s, want %s", got, want)
	}
	if got := ByField("podname")(rs[0]); got != "reviews-v2-5d65f4986f-tqmxq" {
		t.Errorf("ByField(podname) = %q", got)
	}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The logs in testdata were captured on a kind lab: sleep (10.244.0.10) curled reviews through the
// reviews waypoint (10.244.0.14, request id abc-123, curl's port 37094), productpage directly (port
// 45528), and productpage three times under a DENY policy (ports 51310, 60172, ...); the rest is kubelet probes
// and bookinfo's own calls.
func TestParseLogs(t *testing.T) {
	zt := ParseZtunnelLog(readTestdata(t, "ztunnel.log"), "ztunnel-86zg4", "node-a")
	if len(zt) != 14 {
		t.Fatalf("parsed %d access entries, want 14", len(zt))
	}
	e := zt[2]
	if e.Fields["src.addr"] != "10.244.0.10:37094" || e.Fields["dst.identity"] != "spiffe://cluster.local/ns/default/sa/reviews-waypoint" ||
		e.Fields["protocol"] != "HBONE" || e.Fields["duration"] != "72.251ms" || e.Time.Format(time.RFC3339Nano) != "2026-12-07T03:48:21.875049Z" || e.Node != "node-a" {
		t.Errorf("entry 2 = %v %v", e.Time, e.Fields)
	}
	if got := e.start().Format("15:04:05.000000"); got != "03:48:21.802798" {
		t.Errorf("start = %s", got)
	}
	var denied int
	for _, e := range zt {
		if strings.Contains(e.Fields["error"], "policy rejection: denied by policy default/deny-sleep") {
			denied++
		}
	}
	if denied != 3 {
		t.Errorf("%d inbound policy rejections parsed, want 3", denied)
	}

	wp := ParseWaypointLog(readTestdata(t, "waypoint.log"), "default/reviews-waypoint-7c796fb944-rttmx")
	if len(wp) != 1 {
		t.Fatalf("parsed %d waypoint lines, want 1", len(wp))
	}
	w := wp[0]
	if w.Request != "GET /reviews/0 HTTP/1.1" || w.Status != 200 || w.Flags != "-" || w.Fields["request_id"] != "abc-123" ||
		w.Fields["source_identity"] != "spiffe://cluster.local/ns/default/sa/sleep" ||
		w.Fields["destination_identity"] != "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" ||
		w.Fields["upstream_host"] != "envoy://connect_originate/10.244.0.12:9080" {
		t.Errorf("waypoint line = %+v", w)
	}
	if got := ParseWaypointLog(`[2026-12-07T03:48:21.840Z] "- - TCP" 0 - bytes_sent=1`+"\nnot a line\n", "x"); len(got) != 0 {
		t.Errorf("TCP and other lines parsed: %v", got)
	}
}

func TestParseZtunnelLogQuoting(t *testing.T) {
	log := `2026-01-02T03:04:05.000000Z	info	xds	connected to control plane
2026-01-02T03:04:07.000000Z	info	access	connection complete src.addr="10.244.3.9:5000" dst.addr="10.244.2.7:9080" direction="inbound" protocol="TCP" bytes_sent=0 bytes_recv=0 duration="1ms" error="policy rejected: \"deny-sleep\""
`
	es := ParseZtunnelLog(log, "z", "n")
	if len(es) != 1 || es[0].Fields["error"] != `policy rejected: "deny-sleep"` || es[0].Fields["protocol"] != "TCP" || es[0].Fields["bytes_sent"] != "0" {
		t.Errorf("ParseZtunnelLog = %+v", es)
	}
}

func TestCorrelatePath(t *testing.T) {
	zt := ParseZtunnelLog(readTestdata(t, "ztunnel.log"), "ztunnel-86zg4", "node-a")
	wpLines := ParseWaypointLog(readTestdata(t, "waypoint.log"), "default/reviews-waypoint-7c796fb944-rttmx")
	waypoints := map[string]waypointPod{
		"10.244.0.14:15008": {Gateway: "default/reviews-waypoint", Pod: "default/reviews-waypoint-7c796fb944-rttmx"},
		"10.244.0.13:15008": {Gateway: "default/bookinfo-gateway", Pod: "default/bookinfo-gateway-istio-57cffbcbb8-9xddj"},
	}
	const (
		sleep       = "spiffe://cluster.local/ns/default/sa/sleep"
		reviews     = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
		productpage = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
	)
	yes, no := true, false
	tests := []struct {
		name     string
		q        pathQuery
		want     PathWant
		ok       bool
		complete bool
		seen     []string // substrings of the failure text
	}{
		{"through the waypoint", pathQuery{"10.244.0.10:37094", "abc-123"},
			PathWant{SrcIdentity: sleep, DstIdentity: reviews, HBONE: &yes, Waypoint: "default/reviews-waypoint"}, true, true,
			[]string{"through waypoint default/reviews-waypoint", "source:      ztunnel ztunnel-86zg4", "src.addr=10.244.0.10:37094", "waypoint:    waypoint default/reviews-waypoint-7c796fb944-rttmx", "request_id=abc-123"}},
		{"waypoint expected absent", pathQuery{"10.244.0.10:37094", "abc-123"}, PathWant{Waypoint: "none"}, false, true, nil},
		{"waypoint line not (yet) logged", pathQuery{"10.244.0.10:37094", "other-id"}, PathWant{SrcIdentity: sleep}, false, false,
			[]string{"no line with the request id in default/reviews-waypoint's log", "source identity (none)"}},
		{"direct", pathQuery{"10.244.0.10:45528", ""},
			PathWant{SrcIdentity: sleep, DstIdentity: productpage, HBONE: &yes, Waypoint: "none"}, true, true,
			[]string{"destination: ztunnel ztunnel-86zg4", "src.addr=10.244.0.10:33108", "direction=inbound"}},
		{"direct, wrong identity", pathQuery{"10.244.0.10:45528", ""}, PathWant{SrcIdentity: "spiffe://cluster.local/ns/default/sa/other"}, false, true,
			[]string{"source identity " + sleep}},
		{"direct, not HBONE wanted", pathQuery{"10.244.0.10:45528", ""}, PathWant{HBONE: &no}, false, true, []string{"over HBONE (mTLS)"}},
		{"denied connection", pathQuery{"10.244.0.10:51310", ""}, PathWant{}, false, true,
			[]string{`error=HBONE CONNECT 10.244.0.8:9080: 403 Forbidden: denied by policy default/deny-sleep`}},
		{"unknown connection", pathQuery{"10.244.0.10:1", ""}, PathWant{}, false, false,
			[]string{"no ztunnel logged an outbound entry", "not matched: ztunnel ztunnel-86zg4", "src.addr=10.244.0.10:37094"}},
		{"not captured", pathQuery{"10.244.0.99:1234", ""}, PathWant{HBONE: &no, Waypoint: "none"}, true, false, []string{"not over HBONE, no waypoint"}},
		{"not captured, identity wanted", pathQuery{"10.244.0.99:1234", ""}, PathWant{HBONE: &no, SrcIdentity: sleep}, false, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := correlate(tt.q, zt, waypoints, wpLines)
			seen, ok := CheckPath(s, tt.want)
			if ok != tt.ok || s.complete() != tt.complete {
				t.Errorf("ok %v complete %v, want %v %v; seen:\n%s", ok, s.complete(), tt.ok, tt.complete, seen)
			}
			for _, sub := range tt.seen {
				if !strings.Contains(seen, sub) {
					t.Errorf("seen lacks %q:\n%s", sub, seen)
				}
			}
		})
	}

	// The inbound entry must fall within the outbound connection's lifetime: the same pair a minute
	// later is another connection.
	shifted := append([]ZtunnelEntry(nil), zt...)
	for i := range shifted {
		if shifted[i].Fields["direction"] == "inbound" {
			shifted[i].Time = shifted[i].Time.Add(time.Minute)
		}
	}
	s := correlate(pathQuery{"10.244.0.10:45528", ""}, shifted, waypoints, nil)
	if s.In != nil || s.complete() || !strings.Contains(strings.Join(s.Candidates, "\n"), "outside the connection's lifetime") {
		t.Errorf("an inbound entry a minute later correlated: %+v", s)
	}
}

func TestSplitWriteOut(t *testing.T) {
	out := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\n" + writeOutMarker + " 10.244.0.10:45528 0.017429\n"
	rest, local, total, err := splitWriteOut(out)
	if err != nil || local != "10.244.0.10:45528" || total != 17429*time.Microsecond || !strings.HasSuffix(rest, "\r\n\r\nok") {
		t.Errorf("splitWriteOut = %q, %q, %v, %v", rest, local, total, err)
	}
	// No connection: curl prints empty local fields.
	if _, local, _, err := splitWriteOut("\n" + writeOutMarker + " : 3.001\n"); err != nil || local != "" {
		t.Errorf("no connection: local %q, %v", local, err)
	}
	if _, _, _, err := splitWriteOut("HTTP/1.1 200 OK\r\n\r\nbody"); err == nil {
		t.Errorf("output without the -w line accepted")
	}
	args := strings.Join(measuredArgs(Request{URL: "http://reviews:9080/"}), " ")
	if !strings.HasSuffix(args, "%{local_ip}:%{local_port} %{time_total}\n http://reviews:9080/") {
		t.Errorf("measuredArgs = %q", args)
	}
}

func TestCheckLatency(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if p := Percentile(ds, 0.5); p != 50*time.Millisecond {
		t.Errorf("p50 = %s", p)
	}
	if p := Percentile(ds, 0.99); p != 99*time.Millisecond {
		t.Errorf("p99 = %s", p)
	}
	if p := Percentile(ds[:3], 0.99); p != 3*time.Millisecond {
		t.Errorf("p99 of 3 = %s", p)
	}
	exp, seen, ok := CheckLatency(ds, nil, map[float64]time.Duration{0.5: 60 * time.Millisecond, 0.99: 100 * time.Millisecond})
	if !ok || exp != "p50 <= 60ms, p99 <= 100ms over 100 requests (curl's time_total in the pod)" || seen != "p50 50ms, p99 99ms, max 100ms" {
		t.Errorf("CheckLatency = %q, %q, %v", exp, seen, ok)
	}
	_, seen, ok = CheckLatency(ds, nil, map[float64]time.Duration{0.5: 40 * time.Millisecond})
	if ok || seen != "p50 50ms (over), max 100ms" {
		t.Errorf("over budget: %q, %v", seen, ok)
	}
	_, seen, ok = CheckLatency(ds[:2], []string{"curl exit 56", "curl exit 56"}, map[float64]time.Duration{0.5: time.Second})
	if ok || !strings.Contains(seen, "2 of 4 without an HTTP answer: curl exit 56 2") {
		t.Errorf("failed requests: %q, %v", seen, ok)
	}
	for _, bad := range []map[float64]time.Duration{nil, {0: time.Second}, {1.5: time.Second}, {0.5: 0}} {
		if ValidateBudgets(bad) == nil {
			t.Errorf("ValidateBudgets(%v) accepted", bad)
		}
	}
	if ValidateBudgets(map[float64]time.Duration{0.999: time.Second, 1: time.Second}) != nil {
		t.Errorf("p99.9 and p100 refused")
	}
}

func TestCheckCounts(t *testing.T) {
	half := map[string]Range{"HTTP 503": Share(0.5)}
	exp, seen, ok := CheckCounts(Counts{"HTTP 503": 48, "HTTP 200": 52}, half)
	if !ok || exp != "HTTP 503 50% of 100 (34..66 at alpha 0.001)" || seen != "HTTP 503 48 of 100 (all: HTTP 200 52, HTTP 503 48)" {
		t.Errorf("50%% abort, 48 of 100: %q, %q, %v", exp, seen, ok)
	}
	if _, seen, ok := CheckCounts(Counts{"HTTP 503": 100}, half); ok || !strings.Contains(seen, "HTTP 503 100 (outside)") {
		t.Errorf("every request aborted passed 50%%: %q", seen)
	}
	if _, _, ok := CheckCounts(Counts{"HTTP 200": 100}, half); ok {
		t.Errorf("no abort passed 50%%")
	}
	// A retry hides the fault: no 503 at all, every answer 200.
	retry := map[string]Range{"HTTP 503": Exactly(0), "HTTP 200": AtLeast(20)}
	if _, seen, ok := CheckCounts(Counts{"HTTP 200": 20}, retry); !ok {
		t.Errorf("retries: %q", seen)
	}
	if _, _, ok := CheckCounts(Counts{"HTTP 200": 19, "HTTP 503": 1}, retry); ok {
		t.Errorf("one 503 passed Exactly(0)")
	}
	if _, _, ok := CheckCounts(Counts{}, half); ok {
		t.Errorf("no responses passed a share")
	}
	if n := ShareSampleSize(0.1); n != 200 {
		t.Errorf("ShareSampleSize(0.1) = %d, want 200", n)
	}
}

func TestParseRange(t *testing.T) {
	for in, want := range map[string]string{"50%": "50%", "12.5%": "12.5%", "0": "0", "12": "12", "10..20": "10..20", ">=5": ">=5", "<=3": "<=3", " 7 ": "7"} {
		r, err := ParseRange(in)
		if err != nil || r.String() != want {
			t.Errorf("ParseRange(%q) = %v, %v; want %s", in, r, err, want)
		}
	}
	for _, bad := range []string{"", "x", "150%", "-1", "20..10", ">=x", "1..", "%"} {
		if _, err := ParseRange(bad); err == nil {
			t.Errorf("ParseRange(%q) accepted", bad)
		}
	}
}
