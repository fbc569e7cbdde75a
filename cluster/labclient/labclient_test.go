package labclient

import (
	"encoding/json"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshlab/meshlab/controlplane/xds"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		wantErr bool
	}{
		{"deploy/reviews-waypoint", Target{"deploy", "reviews-waypoint", "default"}, false},
		{"deploy/ztunnel.istio-system", Target{"deploy", "ztunnel", "istio-system"}, false},
		{"deployment/x.y", Target{"deploy", "x", "y"}, false},
		{"productpage-v1-abc.default", Target{"pod", "productpage-v1-abc", "default"}, false},
		{"pod/sleep-1", Target{"pod", "sleep-1", "default"}, false},
		{"svc/reviews", Target{}, true},
		{"deploy/", Target{}, true},
		{"a.b.c", Target{}, true},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in, "default")
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// resource encodes a message the way the control plane's /debug/config_dump does.
func resource(t *testing.T, name string, m proto.Message) json.RawMessage {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	body, err := protojson.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"name": name, "version": "h1", "resource": json.RawMessage(body)})
	return b
}

func TestDumpFromSyncz(t *testing.T) {
	cd := xds.ConfigDump{Proxy: "waypoint/default/reviews-waypoint", Types: []xds.TypeConfigDump{
		{TypeStatus: xds.TypeStatus{Type: "CDS"}, Resources: []json.RawMessage{resource(t, "c1", &clusterv3.Cluster{Name: "c1"})}},
		{TypeStatus: xds.TypeStatus{Type: "RDS"}, Resources: []json.RawMessage{resource(t, "r1", &routev3.RouteConfiguration{Name: "r1"})}},
		{TypeStatus: xds.TypeStatus{Type: "WDS"}, Resources: []json.RawMessage{json.RawMessage(`{"name":"uid","version":"x"}`)}},
	}}
	body, _ := json.Marshal(cd)
	d, err := DumpFromSyncz(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Clusters) != 1 || d.Clusters[0].Name != "c1" || len(d.Routes) != 1 || d.Routes[0].Name != "r1" || len(d.Listeners) != 0 {
		t.Errorf("DumpFromSyncz = %+v", d)
	}
	if _, err := DumpFromSyncz([]byte("not json")); err == nil {
		t.Errorf("garbage accepted")
	}
}

// TestLocalURL: a query in the admin path reaches the proxy as a query, not as an escaped part of the path
// (which the admin answered with 404).
func TestLocalURL(t *testing.T) {
	for path, want := range map[string]string{
		"/config_dump":                      "http://127.0.0.1:15000/config_dump",
		"/clusters?format=json":             "http://127.0.0.1:15000/clusters?format=json",
		"/config_dump?include_eds&mask=a,b": "http://127.0.0.1:15000/config_dump?include_eds&mask=a,b",
	} {
		if got := localURL(15000, path); got != want {
			t.Errorf("localURL(%q) = %q, want %q", path, got, want)
		}
	}
}
