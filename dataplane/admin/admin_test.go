package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/prometheus/client_golang/prometheus"
)

func TestHandler(t *testing.T) {
	var ready atomic.Bool
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "envoy_test_total", Help: "x"})
	reg.MustRegister(c)
	c.Inc()
	h := Handler(Options{
		ConfigDump: func() *Config {
			return &Config{Listeners: []*listenerv3.Listener{{Name: "main_internal"}}, LastUpdated: time.Unix(0, 0),
				Versions: map[string]string{"type.googleapis.com/envoy.config.listener.v3.Listener": "v7"}}
		},
		Clusters: func() []ClusterStatus {
			return []ClusterStatus{{Name: "inbound-vip|9080|http|reviews.default.svc.cluster.local", Hosts: []HostStatus{
				{Address: "envoy://connect_originate/10.244.0.5:9080", Healthy: true}, {Address: "envoy://connect_originate/10.244.0.6:9080"}}}}
		},
		Gatherer: reg,
		Ready:    ready.Load,
	})
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		b, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(b)
	}
	if code, body := get("/ready"); code != 503 || body != "PRE_INITIALIZING\n" {
		t.Errorf("/ready before config = %d %q", code, body)
	}
	ready.Store(true)
	if code, body := get("/ready"); code != 200 || body != "LIVE\n" {
		t.Errorf("/ready after config = %d %q", code, body)
	}
	code, body := get("/config_dump")
	var dump struct {
		Configs []map[string]any `json:"configs"`
	}
	if err := json.Unmarshal([]byte(body), &dump); code != 200 || err != nil || len(dump.Configs) != 3 {
		t.Fatalf("/config_dump = %d %v: %s", code, err, body)
	}
	dl, _ := dump.Configs[1]["dynamic_listeners"].([]any)
	if dump.Configs[1]["@type"] != "type.googleapis.com/envoy.admin.v3.ListenersConfigDump" || dump.Configs[1]["version_info"] != "v7" ||
		len(dl) != 1 || dl[0].(map[string]any)["name"] != "main_internal" {
		t.Errorf("/config_dump listeners = %v", dump.Configs[1])
	}
	_, body = get("/clusters")
	want := "inbound-vip|9080|http|reviews.default.svc.cluster.local::envoy://connect_originate/10.244.0.5:9080::health_flags::healthy\n"
	if !strings.Contains(body, want) || !strings.Contains(body, "10.244.0.6:9080::health_flags::/failed_eds_health") {
		t.Errorf("/clusters =\n%s\nwant a line %q", body, want)
	}
	if _, body := get("/stats/prometheus"); !strings.Contains(body, "envoy_test_total 1") {
		t.Errorf("/stats/prometheus =\n%s", body)
	}
	rec := httptest.NewRecorder()
	HealthHandler(ready.Load).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz/ready", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("/healthz/ready = %d", rec.Code)
	}
}
