package tables_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/meshlab/meshlab/internal/golden"

	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/controlplane/render"
	"github.com/meshlab/meshlab/controlplane/render/tables"
)

func dump(t *testing.T, id string, files ...string) *tables.Dump {
	t.Helper()
	p, err := model.ProxyFromID(id)
	if err != nil {
		t.Fatal(err)
	}
	out, err := render.Render(modeltest.Load(t, files...), p)
	if err != nil {
		t.Fatal(err)
	}
	// Through YAML and back, as proxy-config reads a file.
	y, err := out.Marshal(render.FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	cd, err := render.ParseConfigDump(y)
	if err != nil {
		t.Fatal(err)
	}
	d, err := tables.FromConfigDump(cd)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTables(t *testing.T) {
	wp := dump(t, "waypoint/default/reviews-waypoint", modeltest.Bookinfo, modeltest.ReviewsVS)
	sc := dump(t, "sidecar/default/productpage-v1-6b746f74dc-9stvs", modeltest.Bookinfo, modeltest.ReviewsVS)
	for _, tc := range []struct {
		golden string
		print  func(*bytes.Buffer) error
	}{
		{"waypoint-listeners-waypoint-view.txt", func(b *bytes.Buffer) error { return tables.Listeners(b, wp, true) }},
		{"waypoint-listeners.txt", func(b *bytes.Buffer) error { return tables.Listeners(b, wp, false) }},
		{"waypoint-routes.txt", func(b *bytes.Buffer) error { return tables.Routes(b, wp) }},
		{"waypoint-clusters.txt", func(b *bytes.Buffer) error { return tables.Clusters(b, wp) }},
		{"waypoint-endpoints.txt", func(b *bytes.Buffer) error { return tables.Endpoints(b, wp) }},
		{"sidecar-all.txt", func(b *bytes.Buffer) error { return tables.All(b, sc, false) }},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.print(&b); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", tc.golden), b.Bytes())
		})
	}
}

func TestClusterNameParsing(t *testing.T) {
	dir, port, subset, host, ok := tables.ParseClusterName("inbound-vip|9080|http/v1|reviews.default.svc.cluster.local")
	if !ok || dir != "inbound-vip" || port != "9080" || subset != "http/v1" || host != "reviews.default.svc.cluster.local" {
		t.Errorf("ParseClusterName() = %q %q %q %q %v", dir, port, subset, host, ok)
	}
	if _, _, _, _, ok := tables.ParseClusterName("encap"); ok {
		t.Error("ParseClusterName(encap) ok")
	}
}
