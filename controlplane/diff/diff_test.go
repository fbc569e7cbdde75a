package diff_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/diff"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

var update = flag.Bool("update", false, "rewrite the golden reports in testdata/golden")

// Worlds the cases start from: bookinfo with its reviews waypoint and 90/10 VirtualService, Istio's
// bookinfo ingress gateway, and (sidecarWorld) a sidecar client in another namespace.
var (
	ambientWorld = []string{modeltest.Path(modeltest.Bookinfo), modeltest.Path(modeltest.ReviewsVS), modeltest.Path(modeltest.BookinfoGateway)}
	sidecarWorld = append(append([]string(nil), ambientWorld...), testdata("base"))
)

func testdata(name string) string { return filepath.Join("testdata", name) }

func run(t *testing.T, base, files []string, mode diff.Mode, only ...string) *diff.Report {
	t.Helper()
	in := diff.Input{Base: diff.FileBase{Paths: base}, Files: files, Mode: mode}
	for _, id := range only {
		p, err := model.ProxyFromID(id)
		if err != nil {
			t.Fatal(err)
		}
		in.Proxies = append(in.Proxies, p)
	}
	res, err := diff.Run(context.Background(), in)
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	return res.Report
}

// golden compares the text report with testdata/golden/NAME.txt (-update rewrites it).
func golden(t *testing.T, name string, r *diff.Report) {
	t.Helper()
	var b bytes.Buffer
	if err := diff.WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	path := testdata(filepath.Join("golden", name+".txt"))
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./controlplane/diff -update)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("report differs from %s (go test ./controlplane/diff -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// changed returns "proxy TYPE name" for every resource change of the report, and the changed proxies.
func changed(r *diff.Report) (resources []string, proxies []string) {
	for _, p := range r.Proxies {
		proxies = append(proxies, p.Proxy)
		for _, res := range p.Resources {
			resources = append(resources, p.Proxy+" "+string(res.Change)+" "+res.Type+" "+res.Name)
		}
	}
	return resources, proxies
}

func TestWeightChangeTouchesOnlyTheWaypointRDS(t *testing.T) {
	r := run(t, ambientWorld, []string{testdata("change/reviews-weight-50-50.yaml")}, diff.Overlay)
	golden(t, "weight-change", r)

	const route = "inbound-vip|9080|http|reviews.default.svc.cluster.local"
	res, _ := changed(r)
	if want := []string{"waypoint/default/reviews-waypoint changed RDS " + route}; strings.Join(res, "\n") != strings.Join(want, "\n") {
		t.Fatalf("changes = %q, want %q", res, want)
	}
	if want := "gateway/default/bookinfo-gateway ztunnel/meshlab-worker ztunnel/meshlab-worker2"; strings.Join(r.Untouched, " ") != want {
		t.Errorf("untouched = %v, want %s", r.Untouched, want)
	}
	fields := r.Proxies[0].Resources[0].Fields
	got := map[string]string{}
	for _, f := range fields {
		got[f.Path] = textOf(f.Old) + " -> " + textOf(f.New)
	}
	const prefix = "virtualHosts[name=inbound|http|9080].routes[name=reviews.default.0].route.weightedClusters.clusters[name=inbound-vip|9080|http/"
	want := map[string]string{
		prefix + "v1|reviews.default.svc.cluster.local].weight": "90 -> 50",
		prefix + "v2|reviews.default.svc.cluster.local].weight": "10 -> 50",
	}
	if len(got) != len(want) {
		t.Errorf("fields = %v, want %v", got, want)
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("field %s = %q, want %q", p, got[p], w)
		}
	}
}

func textOf(v any) string {
	if v == nil {
		return "(none)"
	}
	return strings.Trim(strings.TrimSpace(toJSON(v)), `"`)
}

// A sidecar client applies the VirtualService itself (its outbound route to reviews), so it sees the
// weights change too; the ztunnels and the gateway (which routes only to productpage) do not.
func TestWeightChangeWithASidecarClient(t *testing.T) {
	r := run(t, sidecarWorld, []string{testdata("change/reviews-weight-50-50.yaml")}, diff.Overlay)
	golden(t, "weight-change-sidecar", r)
	_, proxies := changed(r)
	if want := "sidecar/legacy/sleep-7b9f5c8d4-abcde waypoint/default/reviews-waypoint"; strings.Join(proxies, " ") != want {
		t.Errorf("changed proxies = %v, want %s", proxies, want)
	}
}

func TestNewDestinationRuleSubset(t *testing.T) {
	r := run(t, sidecarWorld, []string{testdata("change/reviews-subset-v4.yaml")}, diff.Overlay)
	golden(t, "new-subset", r)
	res, _ := changed(r)
	want := []string{
		"gateway/default/bookinfo-gateway added CDS outbound|9080|v4|reviews.default.svc.cluster.local",
		"gateway/default/bookinfo-gateway added EDS outbound|9080|v4|reviews.default.svc.cluster.local",
		"sidecar/legacy/sleep-7b9f5c8d4-abcde added CDS outbound|9080|v4|reviews.default.svc.cluster.local",
		"sidecar/legacy/sleep-7b9f5c8d4-abcde added EDS outbound|9080|v4|reviews.default.svc.cluster.local",
		"waypoint/default/reviews-waypoint added CDS inbound-vip|9080|http/v4|reviews.default.svc.cluster.local",
		"waypoint/default/reviews-waypoint added EDS inbound-vip|9080|http/v4|reviews.default.svc.cluster.local",
	}
	if strings.Join(res, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes =\n%s\nwant\n%s", strings.Join(res, "\n"), strings.Join(want, "\n"))
	}
}

func TestNewService(t *testing.T) {
	r := run(t, sidecarWorld, []string{testdata("change/new-service.yaml")}, diff.Overlay)
	golden(t, "new-service", r)
	res, _ := changed(r)
	all := strings.Join(res, "\n")
	for _, want := range []string{
		"sidecar/legacy/sleep-7b9f5c8d4-abcde added CDS outbound|27017||mongodb.default.svc.cluster.local",
		"sidecar/legacy/sleep-7b9f5c8d4-abcde added EDS outbound|27017||mongodb.default.svc.cluster.local",
		"sidecar/legacy/sleep-7b9f5c8d4-abcde changed LDS virtualOutbound",
		"ztunnel/meshlab-worker added workload default/mongodb-v1-5d9b7c6f8-zx8wq",
		"ztunnel/meshlab-worker added service default/mongodb.default.svc.cluster.local",
		"ztunnel/meshlab-worker2 added workload default/mongodb-v1-5d9b7c6f8-zx8wq",
		"ztunnel/meshlab-worker2 added service default/mongodb.default.svc.cluster.local",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("changes lack %q:\n%s", want, all)
		}
	}
	// Destination-oriented: the reviews waypoint holds nothing of a service that does not use it.
	if want := []string{"waypoint/default/reviews-waypoint"}; strings.Join(r.Untouched, " ") != want[0] {
		t.Errorf("untouched = %v, want %v", r.Untouched, want)
	}
}

func TestNamespaceMovesOntoAWaypoint(t *testing.T) {
	base := []string{modeltest.Path(modeltest.Bookinfo), modeltest.Path(modeltest.ReviewsVS), testdata("base-idle-waypoint")}
	r := run(t, base, []string{testdata("change/namespace-waypoint.yaml")}, diff.Overlay)
	golden(t, "namespace-waypoint", r)
	var workloads int
	for _, p := range r.Proxies {
		if !strings.HasPrefix(p.Proxy, "ztunnel/") {
			continue
		}
		for _, res := range p.Resources {
			if res.Type != diff.TypeWorkload {
				continue
			}
			workloads++
			if len(res.Fields) != 1 || res.Fields[0].Path != "waypoint" || res.Fields[0].Old != nil ||
				toJSON(res.Fields[0].New) != `{"address":"10.96.20.21","hboneMtlsPort":15008}` {
				t.Errorf("%s %s: fields %+v, want only waypoint: (none) -> default-waypoint's VIP", p.Proxy, res.Name, res.Fields)
			}
		}
	}
	if workloads != 12 { // the 6 bookinfo pods, on each of the two ztunnels
		t.Errorf("%d ztunnel workload changes, want 12", workloads)
	}
	if strings.Join(r.Untouched, " ") != "waypoint/default/reviews-waypoint" {
		t.Errorf("untouched = %v (reviews keeps its own waypoint: a service label wins over the namespace's)", r.Untouched)
	}
}

// With Replace the -f files are the whole new world: leaving the VirtualService out deletes it.
func TestReplaceDeletes(t *testing.T) {
	base := []string{modeltest.Path(modeltest.Bookinfo), modeltest.Path(modeltest.ReviewsVS)}
	r := run(t, base, []string{modeltest.Path(modeltest.Bookinfo)}, diff.Replace, "waypoint/default/reviews-waypoint")
	golden(t, "replace-delete-vs", r)
	res, _ := changed(r)
	all := strings.Join(res, "\n")
	for _, want := range []string{
		"waypoint/default/reviews-waypoint changed RDS inbound-vip|9080|http|reviews.default.svc.cluster.local",
		"waypoint/default/reviews-waypoint removed CDS inbound-vip|9080|http/v1|reviews.default.svc.cluster.local",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("changes lack %q:\n%s", want, all)
		}
	}
	if len(r.Untouched) != 0 || len(r.Proxies) != 1 {
		t.Errorf("--proxy narrowing: %d proxies, untouched %v; want only the waypoint", len(r.Proxies), r.Untouched)
	}
}

func TestNoChange(t *testing.T) {
	r := run(t, ambientWorld, []string{modeltest.Path(modeltest.ReviewsVS)}, diff.Overlay)
	if r.Changed() || len(r.Untouched) != 4 {
		t.Errorf("re-applying the base's own VirtualService: changed %v, untouched %v", r.Proxies, r.Untouched)
	}
}

func TestUnknownProxy(t *testing.T) {
	in := diff.Input{Base: diff.FileBase{Paths: ambientWorld}, Files: []string{testdata("change/reviews-weight-50-50.yaml")},
		Proxies: []model.Proxy{{Kind: model.KindWaypoint, Namespace: "default", Name: "nope"}}}
	_, err := diff.Run(context.Background(), in)
	if err == nil || !strings.Contains(err.Error(), "no proxy waypoint/default/nope") {
		t.Errorf("Run() = %v, want no proxy waypoint/default/nope", err)
	}
}
