package proxyconfig

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/controlplane/render"
)

func TestLiveTarget(t *testing.T) {
	p, _ := model.ProxyFromID("waypoint/default/reviews-waypoint")
	out, err := render.Render(modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsVS), p)
	if err != nil {
		t.Fatal(err)
	}
	dump, err := out.Marshal(render.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	// The proxy's /clusters?format=json: every EDS host, as Envoy lists them.
	ep := func(ip string, port uint32) *adminv3.HostStatus {
		return &adminv3.HostStatus{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}},
			HealthStatus: &adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_HEALTHY}}
	}
	internal := &adminv3.HostStatus{Address: &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
		AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: "connect_originate"}, EndpointId: "10.244.2.14:9080"}}},
		HealthStatus: &adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_UNHEALTHY, FailedOutlierCheck: true}}
	clustersJSON, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(&adminv3.Clusters{ClusterStatuses: []*adminv3.ClusterStatus{
		{Name: "outbound|9080||reviews.default.svc.cluster.local", HostStatuses: []*adminv3.HostStatus{ep("10.244.1.13", 9080), internal}},
		{Name: "outbound|9080||details.default.svc.cluster.local", HostStatuses: []*adminv3.HostStatus{ep("10.244.1.11", 9080), ep("10.244.1.11", 15008)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var asked labclient.Target
	var paths []string
	old := liveGet
	t.Cleanup(func() { liveGet = old })
	liveGet = func(_ context.Context, _ cliutil.Env, target labclient.Target, path string) ([]byte, error) {
		asked = target
		paths = append(paths, path)
		if path == "/clusters?format=json" {
			return clustersJSON, nil
		}
		return dump, nil
	}
	file := filepath.Join(t.TempDir(), "dump.json")
	if err := os.WriteFile(file, dump, 0o644); err != nil {
		t.Fatal(err)
	}

	exec := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		env := cliutil.Env{Logger: ui.NewLogger(&stderr, 0, false), Streams: ui.Streams{Out: &stdout, ErrOut: &stderr}, Globals: &cliutil.Globals{}}
		cmd := NewCommand(env)
		cmd.SetArgs(args)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		return stdout.String(), err
	}

	live, err := exec("listeners", "deploy/reviews-waypoint")
	if err != nil {
		t.Fatal(err)
	}
	if asked != (labclient.Target{Kind: "deploy", Name: "reviews-waypoint", Namespace: "default"}) {
		t.Errorf("asked for %+v", asked)
	}
	// A waypoint pod gets istioctl's default table, as istioctl prints it, and the waypoint view only with
	// --waypoint: the same tables as --file gives.
	for _, flags := range [][]string{nil, {"--waypoint"}} {
		live, err := exec(append([]string{"listeners", "deploy/reviews-waypoint"}, flags...)...)
		if err != nil {
			t.Fatal(err)
		}
		fromFile, err := exec(append([]string{"listeners", "--file", file}, flags...)...)
		if err != nil {
			t.Fatal(err)
		}
		if header := map[bool]string{false: "ADDRESSES", true: "LISTENER"}[flags != nil]; live != fromFile || !strings.HasPrefix(live, header) {
			t.Errorf("live output with %v differs from --file's or does not start with %s:\n%s\nvs\n%s", flags, header, live, fromFile)
		}
	}

	// Endpoints come from /clusters?format=json, like istioctl's: every host, in its columns and order.
	live, err = exec("endpoints", "deploy/reviews-waypoint")
	if err != nil {
		t.Fatal(err)
	}
	want := `ENDPOINT                                       STATUS        OUTLIER CHECK     CLUSTER
10.244.1.11:9080                               HEALTHY       OK                outbound|9080||details.default.svc.cluster.local
10.244.1.11:15008                              HEALTHY       OK                outbound|9080||details.default.svc.cluster.local
10.244.1.13:9080                               HEALTHY       OK                outbound|9080||reviews.default.svc.cluster.local
envoy://connect_originate/10.244.2.14:9080     UNHEALTHY     FAILED            outbound|9080||reviews.default.svc.cluster.local
`
	if live != want || paths[len(paths)-1] != "/clusters?format=json" {
		t.Errorf("live endpoints (from %s):\n%s\nwant:\n%s", paths[len(paths)-1], live, want)
	}
	// The same from a saved /clusters?format=json file, as `istioctl proxy-config endpoints --file`.
	cfile := filepath.Join(t.TempDir(), "clusters.json")
	if err := os.WriteFile(cfile, clustersJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	if fromFile, err := exec("endpoints", "--file", cfile); err != nil || fromFile != want {
		t.Errorf("endpoints --file clusters.json = %v\n%s", err, fromFile)
	}
	if _, err := exec("all", "deploy/reviews-waypoint"); err != nil || paths[len(paths)-1] != "/config_dump?include_eds" {
		t.Errorf("all: %v, read %s; want /config_dump?include_eds", err, paths[len(paths)-1])
	}

	for _, args := range [][]string{{"routes"}, {"routes", "a", "b"}, {"routes", "svc/x"}, {"routes", "deploy/x", "--file", file}} {
		if _, err := exec(args...); !cliutil.IsUsage(err) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}
