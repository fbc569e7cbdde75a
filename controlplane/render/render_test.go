package render_test

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/controlplane/render"
	"github.com/meshlab/meshlab/controlplane/render/tables"
)

// renderDump goes the whole way: YAML files -> store -> snapshot -> generators -> config dump JSON -> parsed
// back, as a reader of `meshlab render` output would.
func renderDump(t *testing.T, id string, files ...string) (*tables.Dump, string) {
	t.Helper()
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = modeltest.Path(f)
	}
	store, _, err := ingest.LoadFiles(paths...)
	if err != nil {
		t.Fatal(err)
	}
	snap := model.Build(store.Objects())
	if len(snap.Problems) > 0 {
		t.Fatalf("Problems = %v", snap.Problems)
	}
	p, err := model.ProxyFromID(id)
	if err != nil {
		t.Fatal(err)
	}
	out, err := render.Render(snap, p)
	if err != nil {
		t.Fatalf("Render() = %v", err)
	}
	js, err := out.Marshal(render.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	cd, err := render.ParseConfigDump(js)
	if err != nil {
		t.Fatalf("ParseConfigDump() = %v", err)
	}
	d, err := tables.FromConfigDump(cd)
	if err != nil {
		t.Fatal(err)
	}
	return d, string(js)
}

func TestReviews9010EndToEnd(t *testing.T) {
	const fqdn = "reviews.default.svc.cluster.local"
	for _, tc := range []struct {
		file         string
		wantWeighted map[string]uint32
		wantClusters []string
	}{
		{
			file: modeltest.ReviewsVS,
			wantWeighted: map[string]uint32{
				"inbound-vip|9080|http/v1|" + fqdn: 90,
				"inbound-vip|9080|http/v2|" + fqdn: 10,
			},
			wantClusters: []string{"connect_originate", "encap", "inbound-vip|9080|http/v1|" + fqdn, "inbound-vip|9080|http/v2|" + fqdn,
				"inbound-vip|9080|http/v3|" + fqdn, "inbound-vip|9080|http|" + fqdn, "main_internal"},
		},
		{
			file: modeltest.ReviewsHTTPRoute,
			wantWeighted: map[string]uint32{
				"inbound-vip|9080|http|reviews-v1.default.svc.cluster.local": 90,
				"inbound-vip|9080|http|reviews-v2.default.svc.cluster.local": 10,
			},
			wantClusters: []string{"connect_originate", "encap", "inbound-vip|9080|http|reviews-v1.default.svc.cluster.local",
				"inbound-vip|9080|http|reviews-v2.default.svc.cluster.local", "inbound-vip|9080|http|" + fqdn, "main_internal"},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			d, js := renderDump(t, "waypoint/default/reviews-waypoint", modeltest.Bookinfo, tc.file)

			if len(d.Routes) != 1 || d.Routes[0].Name != "inbound-vip|9080|http|"+fqdn {
				t.Fatalf("routes = %v", d.Routes)
			}
			vh := d.Routes[0].VirtualHosts[0]
			if vh.Name != "inbound|http|9080" || !reflect.DeepEqual(vh.Domains, []string{"*"}) {
				t.Errorf("virtual host = %s %v", vh.Name, vh.Domains)
			}
			got := map[string]uint32{}
			for _, c := range vh.Routes[0].GetRoute().GetWeightedClusters().GetClusters() {
				got[c.Name] = c.Weight.GetValue()
			}
			if !reflect.DeepEqual(got, tc.wantWeighted) {
				t.Errorf("weighted clusters = %v, want %v", got, tc.wantWeighted)
			}

			var clusters []string
			for _, c := range d.Clusters {
				clusters = append(clusters, c.Name)
			}
			if !reflect.DeepEqual(clusters, tc.wantClusters) {
				t.Errorf("clusters = %v\nwant %v", clusters, tc.wantClusters)
			}

			// Endpoints are exactly the reviews pods, as internal addresses through connect_originate.
			want := []string{"envoy://connect_originate/10.244.1.13:9080", "envoy://connect_originate/10.244.2.14:9080", "envoy://connect_originate/10.244.2.15:9080"}
			var all []string
			perCluster := map[string][]string{}
			for _, cla := range d.Endpoints {
				for _, loc := range cla.Endpoints {
					for _, lb := range loc.LbEndpoints {
						a := tables.Address(lb.GetEndpoint().GetAddress())
						perCluster[cla.ClusterName] = append(perCluster[cla.ClusterName], a)
						all = append(all, a)
					}
				}
			}
			sort.Strings(all)
			all = dedupe(all)
			if !reflect.DeepEqual(all, want) {
				t.Errorf("endpoints = %v, want %v", all, want)
			}
			if tc.file == modeltest.ReviewsVS {
				if got := perCluster["inbound-vip|9080|http/v1|"+fqdn]; !reflect.DeepEqual(got, want[:1]) {
					t.Errorf("v1 subset endpoints = %v, want %v", got, want[:1])
				}
				if got := perCluster["inbound-vip|9080|http/v2|"+fqdn]; !reflect.DeepEqual(got, want[1:2]) {
					t.Errorf("v2 subset endpoints = %v, want %v", got, want[1:2])
				}
			}

			// Nothing for the services that do not use this waypoint, and no outbound clusters.
			for _, bad := range []string{"productpage", "details", "ratings", "outbound|", "10.244.1.10", "10.244.1.11", "10.244.2.12"} {
				if strings.Contains(js, bad) {
					t.Errorf("rendered waypoint config mentions %q", bad)
				}
			}
		})
	}
}

func dedupe(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func TestRenderZtunnelAndErrors(t *testing.T) {
	snap := modeltest.Load(t, modeltest.Bookinfo)
	out, err := render.Render(snap, model.Proxy{Kind: model.KindZtunnel, Name: "meshlab-worker2", Node: "meshlab-worker2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Ztunnel.Workloads) != 7 || len(out.Ztunnel.Services) != 5 {
		t.Errorf("ztunnel: %d workloads, %d services; want 7, 5", len(out.Ztunnel.Workloads), len(out.Ztunnel.Services))
	}
	if y, err := out.Marshal(render.FormatYAML); err != nil || !strings.Contains(string(y), "tunnelProtocol: HBONE") {
		t.Errorf("Marshal(yaml) = %v", err)
	}
	for _, p := range []model.Proxy{
		{Kind: model.KindZtunnel, Name: "nowhere", Node: "nowhere"},
		{Kind: model.KindSidecar, Namespace: "default", Name: "nope"},
		{Kind: model.KindWaypoint, Namespace: "other", Name: "reviews-waypoint"},
	} {
		_, err := render.Render(snap, p)
		if _, ok := err.(*model.NotFoundError); !ok {
			t.Errorf("Render(%s) = %v, want NotFoundError", p.ID(), err)
		}
	}
	if _, err := out.Marshal("xml"); err == nil {
		t.Error("Marshal(xml) succeeded")
	}
}
