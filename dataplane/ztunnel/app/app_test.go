package app

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshlab/meshlab/dataplane/ztunnel"
	"github.com/meshlab/meshlab/dataplane/ztunnel/configdump"
)

// Access-log lines as dataplane/ztunnel writes them (conntable.go).
const accessLog = `2026-05-01T10:00:00.000000Z	info	access	connection complete src.addr="10.244.1.4:41234" src.workload="default/sleep" src.identity="spiffe://cluster.local/ns/default/sa/sleep" dst.addr="10.244.1.5:15008" dst.hbone_addr="10.244.1.5:9080" dst.service="productpage.default.svc.cluster.local" dst.workload="default/productpage" dst.identity="spiffe://cluster.local/ns/default/sa/bookinfo-productpage" direction="outbound" protocol="HBONE" bytes_sent=120 bytes_recv=4500 duration="3.2ms"
2026-05-01T10:00:01.000000Z	info	access	connection complete src.addr="10.244.1.4:41240" src.workload="default/sleep" src.identity="spiffe://cluster.local/ns/default/sa/sleep" dst.addr="10.244.1.5:15008" dst.hbone_addr="10.244.1.5:9080" dst.service="productpage.default.svc.cluster.local" dst.workload="default/productpage" dst.identity="spiffe://cluster.local/ns/default/sa/bookinfo-productpage" direction="outbound" protocol="HBONE" bytes_sent=80 bytes_recv=500 duration="1ms" error="connection closed due to policy rejection: \"x\" denied"
`

func TestMetrics(t *testing.T) {
	var out bytes.Buffer
	open := []ztunnel.Connection{{
		Direction: ztunnel.Outbound, SrcIdentity: "spiffe://cluster.local/ns/default/sa/sleep",
		DstIdentity: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage", DstService: "productpage.default.svc.cluster.local",
		BytesSent: 10, BytesRecv: 20,
	}, {
		Direction: ztunnel.Inbound, SrcIdentity: "spiffe://cluster.local/ns/default/sa/sleep",
		DstIdentity: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage", BytesSent: 7,
	}}
	m := newMetrics(&out, func() []ztunnel.Connection { return open })
	// Written in two pieces that split a line: the writer must reassemble lines.
	if _, err := m.Write([]byte(accessLog[:100])); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write([]byte(accessLog[100:])); err != nil {
		t.Fatal(err)
	}
	if out.String() != accessLog {
		t.Error("access log not passed through unchanged")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{} // name/reporter/service -> value
	for _, f := range families {
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["source_principal"] != "spiffe://cluster.local/ns/default/sa/sleep" || l["destination_principal"] != "spiffe://cluster.local/ns/default/sa/bookinfo-productpage" {
				t.Errorf("%s has labels %v", f.GetName(), l)
			}
			got[f.GetName()+"/"+l["reporter"]+"/"+l["destination_service"]] = m.GetCounter().GetValue()
		}
	}
	const pp = "productpage.default.svc.cluster.local"
	want := map[string]float64{
		// outbound: two closed (from the log) and one open
		"istio_tcp_connections_opened_total/source/" + pp: 3,
		"istio_tcp_connections_closed_total/source/" + pp: 2,
		"istio_tcp_sent_bytes_total/source/" + pp:         120 + 80 + 10,
		"istio_tcp_received_bytes_total/source/" + pp:     4500 + 500 + 20,
		// inbound: one open, nothing closed yet
		"istio_tcp_connections_opened_total/destination/": 1,
		"istio_tcp_connections_closed_total/destination/": 0,
		"istio_tcp_sent_bytes_total/destination/":         7,
		"istio_tcp_received_bytes_total/destination/":     0,
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestParseAccessLog(t *testing.T) {
	kv := parseAccessLog(strings.Split(accessLog, "\n")[1])
	if kv["error"] != `connection closed due to policy rejection: "x" denied` || kv["bytes_recv"] != "500" || kv["duration"] != "1ms" {
		t.Errorf("parseAccessLog() = %v", kv)
	}
	if parseAccessLog("2026 info xds something else") != nil {
		t.Error("a non-access line was parsed")
	}
}

func TestHTTPEndpoints(t *testing.T) {
	var readyErr error
	health := httptest.NewServer(healthMux(func() error { return readyErr }))
	defer health.Close()
	admin := httptest.NewServer(adminMux(func() configdump.Dump { return configdump.Dump{Meshlab: &configdump.Meshlab{Node: "meshlab-worker"}} }))
	defer admin.Close()
	cases := []struct {
		url, want string
		code      int
		notReady  error
	}{
		{health.URL + "/healthz/ready", "ready", 200, nil},
		{health.URL + "/healthz/ready", "workload API not synced", 503, errors.New("workload API not synced")},
		{admin.URL + "/config_dump", `"node": "meshlab-worker"`, 200, nil},
		{admin.URL + "/nope", "not found", 404, nil},
	}
	for _, tc := range cases {
		readyErr = tc.notReady
		resp, err := http.Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(b.String(), tc.want) {
			t.Errorf("GET %s = %d %q, want %d containing %q", tc.url, resp.StatusCode, b.String(), tc.code, tc.want)
		}
	}
}
