package xds

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/meshlab/meshlab/api/xdstype"
	"google.golang.org/genproto/googleapis/rpc/status"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func TestDebugHandlers(t *testing.T) {
	gen := newTestGen()
	gen.setCluster("default", "reviews", "v1", "10.0.0.1")
	s := NewServer(gen, WithDebounce(0, 0), WithID("istiod-0"))
	cc := dial(t, startServer(t, s))
	mux := http.NewServeMux()
	s.RegisterHTTP(mux)
	web := httptest.NewServer(mux)
	defer web.Close()

	const id = "waypoint/default/waypoint"
	d := newDeltaClient(t, cc, id)
	d.subscribe(xdstype.Cluster)
	d.ack(d.recv())
	d.subscribe(xdstype.Listener)
	r := d.recv()
	d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: xdstype.Listener, ResponseNonce: r.Nonce, ErrorDetail: &status.Status{Code: 3, Message: "listener main_internal: bad filter chain"}})
	waitFor(t, "NACK", func() bool { st, _ := typeStatus(s, id, xdstype.Listener); return st.NackError != "" })

	code, body := get(t, web.URL+MeshlabSynczPath)
	if code != http.StatusOK {
		t.Fatalf("/debug/syncz = %d %s", code, body)
	}
	var sync SyncStatus
	if err := json.Unmarshal([]byte(body), &sync); err != nil {
		t.Fatalf("decoding syncz: %v\n%s", err, body)
	}
	if sync.ControlPlane != "istiod-0" || len(sync.Proxies) != 1 {
		t.Fatalf("syncz = %+v, want one proxy on istiod-0", sync)
	}
	p := sync.Proxies[0]
	if p.ID != id || p.Kind != KindWaypoint || p.Namespace != "default" || p.Version != "test" || !p.Delta {
		t.Errorf("proxy = %+v", p)
	}
	cds, _ := p.Type(xdstype.Cluster)
	if !cds.Synced() || cds.Type != "CDS" || cds.Resources != 1 || cds.LastAck.IsZero() {
		t.Errorf("CDS status = %+v, want synced with 1 resource", cds)
	}
	lds, _ := p.Type(xdstype.Listener)
	if lds.Synced() || lds.NackError != "listener main_internal: bad filter chain" || lds.NackVersion != lds.SentVersion {
		t.Errorf("LDS status = %+v, want the NACK recorded", lds)
	}

	// istiod's shapes, for istioctl version: /debug/syncz as an array, /version with clientVersion.
	code, body = get(t, web.URL+"/debug/syncz")
	var istio []IstioSyncStatus
	if err := json.Unmarshal([]byte(body), &istio); code != http.StatusOK || err != nil || len(istio) != 1 {
		t.Fatalf("/debug/syncz = %d %v %s, want istiod's array of one", code, err, body)
	}
	if e := istio[0]; e.ProxyID != "waypoint.default" || e.ProxyType != "router" || e.IstioVersion != "test" || e.ClusterSent == "" || e.ClusterAcked != e.ClusterSent || e.ListenerAcked == e.ListenerSent {
		t.Errorf("istiod-shaped syncz entry = %+v", e)
	}
	code, body = get(t, web.URL+"/version")
	var v struct{ ClientVersion BuildInfo }
	if err := json.Unmarshal([]byte(body), &v); code != http.StatusOK || err != nil || v.ClientVersion.Version != ControlPlaneVersion() {
		t.Errorf("/version = %d %v %s, want clientVersion %s", code, err, body, ControlPlaneVersion())
	}

	code, body = get(t, web.URL+"/debug/config_dump?proxy="+id)
	if code != http.StatusOK {
		t.Fatalf("/debug/config_dump = %d %s", code, body)
	}
	var dump ConfigDump
	if err := json.Unmarshal([]byte(body), &dump); err != nil {
		t.Fatalf("decoding config_dump: %v", err)
	}
	if len(dump.Types) != 2 || dump.Types[0].Type != "CDS" || len(dump.Types[0].Resources) != 1 {
		t.Fatalf("config dump = %s", body)
	}
	for _, want := range []string{`"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster"`, `"name": "reviews"`, `"altStatName": "v1"`, `"nack_error": "listener main_internal: bad filter chain"`} {
		if !strings.Contains(body, want) {
			t.Errorf("config dump lacks %s:\n%s", want, body)
		}
	}
	if code, _ := get(t, web.URL+"/debug/config_dump?proxy=nobody"); code != http.StatusNotFound {
		t.Errorf("config_dump of an unknown proxy = %d, want 404", code)
	}
	if code, _ := get(t, web.URL+"/debug/config_dump"); code != http.StatusBadRequest {
		t.Errorf("config_dump without proxy = %d, want 400", code)
	}

	_, body = get(t, web.URL+"/metrics")
	for _, want := range []string{
		"pilot_xds 1",
		`pilot_total_xds_rejects{type="lds"} 1`,
		`pilot_xds_pushes{type="cds"} 1`,
		`pilot_xds_config_size_bytes_count{type="cds"} 1`,
		`pilot_xds_push_time_bucket{type="lds",le="+Inf"} 1`,
		"pilot_proxy_convergence_time_count 1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
