package live_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/diff"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	cprender "github.com/meshlab/meshlab/controlplane/render"
	"github.com/meshlab/meshlab/controlplane/xdsgen"
	"github.com/meshlab/meshlab/dataplane/ztunnel/configdump"
	"github.com/meshlab/meshlab/explain"
	"github.com/meshlab/meshlab/explain/live"
)

const (
	productpage = "default/productpage-v1-6b746f74dc-9stvs"
	sidecarSrc  = "legacy/sleep-7d8b8f9c6-qz2lm"
	gatewayPod  = "default/bookinfo-gateway-istio-5d9c7b8f6d-x2k4p"
)

// load builds a snapshot from bookinfo and more files (modeltest fixtures, or this package's testdata).
func load(t *testing.T, files ...string) *model.Snapshot {
	t.Helper()
	return modeltest.LoadBookinfoWith(t, files...)
}

// rendered serves the dumps a proxy of snap would show: Envoy's /config_dump as `meshlab render` writes
// it, ztunnel's /config_dump as meshlab's ztunnel builds it from the workload API resources it received.
type rendered struct {
	snap  *model.Snapshot
	fail  map[string]bool // pods or nodes whose dump cannot be read
	reads []string
}

func (r *rendered) Envoy(_ context.Context, namespace, pod string) ([]byte, error) {
	r.reads = append(r.reads, namespace+"/"+pod)
	if r.fail[namespace+"/"+pod] {
		return nil, errors.New("connection refused")
	}
	for _, p := range diff.Proxies(r.snap) {
		if p.Kind == model.KindZtunnel {
			continue
		}
		resolved, err := r.snap.Resolve(p)
		if err != nil {
			return nil, err
		}
		if resolved.Namespace == namespace && (resolved.Pod == pod || p.Kind == model.KindSidecar && p.Name == pod) {
			out, err := cprender.Render(r.snap, p)
			if err != nil {
				return nil, err
			}
			return out.Marshal(cprender.FormatJSON)
		}
	}
	return nil, fmt.Errorf("no proxy in pod %s/%s", namespace, pod)
}

func (r *rendered) Ztunnel(_ context.Context, node string) ([]byte, error) {
	r.reads = append(r.reads, "ztunnel/"+node)
	if r.fail[node] {
		return nil, errors.New("connection refused")
	}
	addrs, authz := xdsgen.ZtunnelResources(r.snap, node)
	return json.Marshal(configdump.Build(configdump.Sources{Node: node, Addresses: addrs, Authorizations: authz}))
}

func reportJSON(t *testing.T, src explain.ConfigSource, req explain.Request) string {
	t.Helper()
	r, err := explain.Explain(src, req)
	if err != nil {
		t.Fatalf("Explain() = %v", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

// TestLiveReadsWhatProxiesHold: with every proxy's dump showing what the control plane generates, the
// live source predicts exactly what the offline one does, and it read each hop's dump to do so.
func TestLiveReadsWhatProxiesHold(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		req   explain.Request
		reads []string // dumps that must have been read
	}{
		{"vs-90-10", []string{modeltest.ReviewsVS}, explain.Request{From: productpage, URL: "http://reviews:9080/reviews/0"},
			[]string{"ztunnel/", "default/reviews-waypoint-"}},
		{"header-match", []string{"../testdata/header-match.yaml"}, explain.Request{From: productpage, URL: "http://reviews:9080/reviews/0", Headers: http.Header{"End-User": {"jason"}}},
			[]string{"default/reviews-waypoint-"}},
		{"l7-deny", []string{modeltest.ReviewsVS, "../testdata/l7-deny.yaml"}, explain.Request{From: productpage, URL: "http://reviews:9080/reviews/0"}, nil},
		{"l4-deny", []string{"../testdata/l4-deny.yaml"}, explain.Request{From: productpage, URL: "http://details:9080/details/0"}, []string{"ztunnel/"}},
		{"sidecar-source", []string{modeltest.ReviewsVS, "../testdata/sidecar-sleep.yaml"}, explain.Request{From: sidecarSrc, URL: "http://reviews.default:9080/reviews/0"},
			[]string{sidecarSrc}},
		{"ingress-source", []string{modeltest.BookinfoGateway}, explain.Request{From: gatewayPod, URL: "http://bookinfo.example.com/productpage"},
			[]string{gatewayPod}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := load(t, tc.files...)
			dumps := &rendered{snap: snap}
			src := live.New(context.Background(), snap, dumps)
			got := reportJSON(t, src, tc.req)
			want := reportJSON(t, explain.Offline{Snapshot: snap}, tc.req)
			if got != want {
				t.Errorf("live report differs from the offline one:\n got %s\nwant %s", got, want)
			}
			for _, r := range tc.reads {
				found := false
				for _, read := range dumps.reads {
					found = found || strings.HasPrefix(read, r)
				}
				if !found {
					t.Errorf("read %v, want a dump of %s...", dumps.reads, r)
				}
			}
			for _, o := range src.Origins() {
				if !strings.Contains(o, "/config_dump") {
					t.Errorf("origin %q: not read from a dump", o)
				}
			}
		})
	}
}

// TestLiveFollowsTheDump: when the waypoint still holds old config (the 90/10 VirtualService not yet
// pushed), the prediction follows what the waypoint holds, not the objects.
func TestLiveFollowsTheDump(t *testing.T) {
	objects := load(t, modeltest.ReviewsVS)
	held := load(t) // the waypoint's dump predates the VirtualService
	dumps := &rendered{snap: held}
	r, err := explain.Explain(live.New(context.Background(), objects, dumps), explain.Request{From: productpage, URL: "http://reviews:9080/reviews/0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Backends) != 1 || r.Backends[0].Subset != "" || len(r.Backends[0].Endpoints) != 3 {
		t.Errorf("backends = %+v, want the default route to all three reviews pods, as the waypoint holds", r.Backends)
	}
	offline, err := explain.Explain(explain.Offline{Snapshot: objects}, explain.Request{From: productpage, URL: "http://reviews:9080/reviews/0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(offline.Backends) != 2 {
		t.Fatalf("offline backends = %+v, want the 90/10 split", offline.Backends)
	}
}

// TestLiveFallsBack: a proxy whose dump cannot be read gets the config the control plane would generate,
// and the origin says so.
func TestLiveFallsBack(t *testing.T) {
	snap := load(t, modeltest.ReviewsVS)
	wp, err := snap.Resolve(model.Proxy{Kind: model.KindWaypoint, Namespace: "default", Name: "reviews-waypoint"})
	if err != nil {
		t.Fatal(err)
	}
	dumps := &rendered{snap: snap, fail: map[string]bool{"default/" + wp.Pod: true}}
	src := live.New(context.Background(), snap, dumps)
	req := explain.Request{From: productpage, URL: "http://reviews:9080/reviews/0"}
	if got, want := reportJSON(t, src, req), reportJSON(t, explain.Offline{Snapshot: snap}, req); got != want {
		t.Errorf("fallback report differs from the offline one:\n got %s\nwant %s", got, want)
	}
	var saw bool
	for _, o := range src.Origins() {
		if strings.HasPrefix(o, "waypoint/default/reviews-waypoint: generated from the lab's objects (its config dump could not be read: connection refused)") {
			saw = true
		}
	}
	if !saw {
		t.Errorf("origins = %q, want the waypoint's fallback named", src.Origins())
	}
}
