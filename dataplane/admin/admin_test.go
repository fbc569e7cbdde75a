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

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/meshlab/meshlab/api/xdstype"
)

const reviews = "inbound-vip|9080|http|reviews.default.svc.cluster.local"

func socket(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func internal(listener, id string) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
		AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: listener}, EndpointId: id}}}
}

func testConfig() *Config {
	t1, t2 := time.Unix(1000, 0).UTC(), time.Unix(2000, 0).UTC()
	eds := &clusterv3.Cluster{Name: reviews, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}
	encap := &clusterv3.Cluster{Name: "encap", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "encap", Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: internal("connect_originate", "")}}}}}}}}
	return &Config{
		Bootstrap:        &bootstrapv3.Bootstrap{Node: &corev3.Node{Id: "waypoint/default/waypoint"}},
		BootstrapUpdated: t1,
		Listeners:        []*listenerv3.Listener{{Name: "main_internal", ListenerSpecifier: &listenerv3.Listener_InternalListener{InternalListener: &listenerv3.Listener_InternalListenerConfig{}}}, {Name: "connect_terminate", Address: socket("0.0.0.0", 15008)}},
		Routes:           []*routev3.RouteConfiguration{{Name: reviews}},
		Clusters:         []*clusterv3.Cluster{encap, eds},
		Endpoints:        []*endpointv3.ClusterLoadAssignment{{ClusterName: reviews}},
		Secrets:          []Secret{{Name: "default", Version: "1f", LastUpdated: t1, Secret: &tlsv3.Secret{Name: "default"}}},
		Versions:         map[string]string{xdstype.Listener: "v7", xdstype.Cluster: "v7", xdstype.Route: "v7", xdstype.Endpoint: "v7"},
		Meta: map[string]map[string]ResourceMeta{
			xdstype.Cluster:  {reviews: {"v3", t1}, "encap": {"v1", t1}},
			xdstype.Listener: {"main_internal": {"v7", t2}},
		},
		LastUpdated: t2,
	}
}

func TestHandler(t *testing.T) {
	var ready atomic.Bool
	reg := prometheus.NewRegistry()
	rq := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "envoy_cluster_upstream_rq", Help: "x"}, []string{"envoy_cluster_name", "envoy_response_code"})
	denied := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "envoy_http_rbac_denied", Help: "x"}, []string{"envoy_http_conn_manager_prefix"})
	reg.MustRegister(rq, denied)
	rq.WithLabelValues(reviews, "200").Add(3)
	rq.WithLabelValues(reviews, "503").Inc()
	denied.WithLabelValues("inbound_0.0.0.0_9080").Inc()
	h := Handler(Options{
		ConfigDump: testConfig,
		Clusters: func() []ClusterStatus {
			return []ClusterStatus{{Name: reviews, EDSServiceName: reviews, Hosts: []HostStatus{
				{Address: internal("connect_originate", "10.244.0.5:9080"), Health: corev3.HealthStatus_HEALTHY},
				{Address: socket("10.244.0.6", 9080), Health: corev3.HealthStatus_UNHEALTHY, Weight: 3}}}, {Name: "encap"}}
		},
		Gatherer: reg,
		Ready:    ready.Load,
		Server:   &ServerInfo{Version: "meshlab/test", Node: &corev3.Node{Id: "waypoint/default/waypoint"}, Started: time.Now().Add(-time.Minute)},
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
	if _, body := get("/server_info"); !strings.Contains(body, `"state": "PRE_INITIALIZING"`) {
		t.Errorf("/server_info before config = %s", body)
	}
	ready.Store(true)
	if code, body := get("/ready"); code != 200 || body != "LIVE\n" {
		t.Errorf("/ready after config = %d %q", code, body)
	}
	si := &adminv3.ServerInfo{}
	if _, body := get("/server_info"); protojson.Unmarshal([]byte(body), si) != nil || si.State != adminv3.ServerInfo_LIVE ||
		si.Node.GetId() != "waypoint/default/waypoint" || si.UptimeCurrentEpoch.AsDuration() < time.Minute {
		t.Errorf("/server_info = %s", body)
	}

	dump := func(path string) (int, *adminv3.ConfigDump, string) {
		code, body := get(path)
		cd := &adminv3.ConfigDump{}
		if code == 200 {
			if err := protojson.Unmarshal([]byte(body), cd); err != nil {
				t.Fatalf("%s: %v\n%s", path, err, body)
			}
		}
		return code, cd, body
	}
	types := func(cd *adminv3.ConfigDump) string {
		var out []string
		for _, a := range cd.Configs {
			out = append(out, strings.TrimPrefix(a.TypeUrl, "type.googleapis.com/envoy.admin.v3."))
		}
		return strings.Join(out, ",")
	}
	_, cd, body := dump("/config_dump")
	if got := types(cd); got != "BootstrapConfigDump,ClustersConfigDump,ListenersConfigDump,RoutesConfigDump,SecretsConfigDump" {
		t.Errorf("/config_dump sections = %s", got)
	}
	for _, want := range []string{`"version_info": "v3"`, `"last_updated": "1970-01-01T00:16:40Z"`, `"name": "main_internal"`, `"last_updated": "1970-01-01T00:33:20Z"`, `"version_info": "1f"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/config_dump lacks %s:\n%s", want, body)
		}
	}
	_, cd, body = dump("/config_dump?include_eds")
	if got := types(cd); !strings.Contains(got, "ClustersConfigDump,EndpointsConfigDump,ListenersConfigDump") {
		t.Errorf("include_eds sections = %s", got)
	}
	if !strings.Contains(body, `"cluster_name": "encap"`) || !strings.Contains(body, `"cluster_name": "`+reviews+`"`) {
		t.Errorf("include_eds lacks an assignment per cluster:\n%s", body)
	}
	_, cd, _ = dump("/config_dump?resource=dynamic_active_clusters")
	if got := types(cd); got != "ClustersConfigDump.DynamicCluster,ClustersConfigDump.DynamicCluster" {
		t.Errorf("resource=dynamic_active_clusters = %s", got)
	}
	_, cd, body = dump("/config_dump?resource=dynamic_active_clusters&mask=cluster.name&name_regex=inbound.*")
	if len(cd.Configs) != 1 || !strings.Contains(body, reviews) || strings.Contains(body, "EDS") || strings.Contains(body, "version_info") {
		t.Errorf("resource+mask+name_regex =\n%s", body)
	}
	_, cd, body = dump("/config_dump?mask=dynamic_listeners,static_listeners")
	lcd := &adminv3.ListenersConfigDump{}
	if types(cd) != "ListenersConfigDump" || cd.Configs[0].UnmarshalTo(lcd) != nil || lcd.VersionInfo != "" || len(lcd.DynamicListeners) != 2 {
		t.Errorf("mask=dynamic_listeners =\n%s", body)
	}
	_, cd, _ = dump("/config_dump?mask=bootstrap")
	if types(cd) != "BootstrapConfigDump" {
		t.Errorf("mask=bootstrap sections = %s", types(cd))
	}
	for path, want := range map[string]int{"/config_dump?mask=nope": 400, "/config_dump?resource=nope": 404,
		"/config_dump?resource=version_info": 400, "/config_dump?name_regex=(": 400} {
		if code, _, body := dump(path); code != want {
			t.Errorf("%s = %d %s, want %d", path, code, body, want)
		}
	}

	_, body = get("/clusters")
	for _, want := range []string{reviews + "::envoy://connect_originate/10.244.0.5:9080::health_flags::healthy\n",
		reviews + "::10.244.0.6:9080::health_flags::/failed_eds_health\n", reviews + "::10.244.0.6:9080::weight::3\n",
		reviews + "::eds_service_name::" + reviews + "\n", "encap::observability_name::encap\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("/clusters lacks %q:\n%s", want, body)
		}
	}
	if strings.Index(body, "encap::") > strings.Index(body, reviews) {
		t.Errorf("/clusters not sorted:\n%s", body)
	}
	_, body = get("/clusters?format=json")
	cl := &adminv3.Clusters{}
	if err := protojson.Unmarshal([]byte(body), cl); err != nil || len(cl.ClusterStatuses) != 2 {
		t.Fatalf("/clusters?format=json = %v\n%s", err, body)
	}
	hs := cl.ClusterStatuses[1].HostStatuses
	if len(hs) != 2 || hs[0].Address.GetEnvoyInternalAddress().GetEndpointId() != "10.244.0.5:9080" ||
		hs[0].HealthStatus.EdsHealthStatus != corev3.HealthStatus_HEALTHY || hs[1].HealthStatus.EdsHealthStatus != corev3.HealthStatus_UNHEALTHY ||
		hs[1].Weight != 3 || hs[1].Address.GetSocketAddress().GetPortValue() != 9080 {
		t.Errorf("/clusters?format=json hosts = %v", hs)
	}
	if !strings.Contains(body, `"cluster_statuses"`) || !strings.Contains(body, `"eds_health_status": "HEALTHY"`) {
		t.Errorf("/clusters?format=json is not in proto field names:\n%s", body)
	}

	if _, body := get("/listeners"); body != "main_internal::envoy://main_internal/\nconnect_terminate::0.0.0.0:15008\n" {
		t.Errorf("/listeners = %q", body)
	}
	ls := &adminv3.Listeners{}
	if _, body := get("/listeners?format=json"); protojson.Unmarshal([]byte(body), ls) != nil || len(ls.ListenerStatuses) != 2 ||
		ls.ListenerStatuses[1].LocalAddress.GetSocketAddress().GetPortValue() != 15008 {
		t.Errorf("/listeners?format=json = %s", body)
	}

	_, body = get("/stats")
	for _, want := range []string{"cluster." + reviews + ".upstream_rq_200: 3\n", "cluster." + reviews + ".upstream_rq_2xx: 3\n",
		"cluster." + reviews + ".upstream_rq_503: 1\n", "cluster." + reviews + ".upstream_rq_completed: 4\n",
		"cluster.encap.upstream_cx_total: 0\n", "http.inbound_0.0.0.0_9080.rbac.denied: 1\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("/stats lacks %q:\n%s", want, body)
		}
	}
	var js struct {
		Stats []Stat `json:"stats"`
	}
	if _, body := get("/stats?format=json&filter=rbac"); json.Unmarshal([]byte(body), &js) != nil || len(js.Stats) != 1 || js.Stats[0].Value != 1 {
		t.Errorf("/stats?format=json&filter=rbac = %s", body)
	}
	if _, body := get("/stats/prometheus"); !strings.Contains(body, `envoy_cluster_upstream_rq{envoy_cluster_name="`+reviews+`",envoy_response_code="200"} 3`) {
		t.Errorf("/stats/prometheus =\n%s", body)
	}
	if code, body := get("/help"); code != 200 || !strings.Contains(body, "/server_info: ") {
		t.Errorf("/help = %d %s", code, body)
	}
	rec := httptest.NewRecorder()
	HealthHandler(ready.Load).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz/ready", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("/healthz/ready = %d", rec.Code)
	}
}
