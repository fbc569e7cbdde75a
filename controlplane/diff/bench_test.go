package diff_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"

	benchcp "github.com/meshlab/meshlab/bench/controlplane"
	"github.com/meshlab/meshlab/controlplane/diff"
	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
)

// scaleChange is the one-object change of the scale benchmark: a VirtualService giving svc-0 of ns-0 a
// timeout, which only ns-0's waypoint acts on.
const scaleChange = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc-0, namespace: ns-0}
spec:
  hosts: [svc-0]
  http:
  - timeout: 5s
    route:
    - destination: {host: svc-0}
`

// scaleWorlds returns the base store of a mesh of 1,000 services and 2,000 pods (bench/controlplane's
// synthetic mesh: 20 ambient namespaces of 50 services with 2 pods each, a 2-replica waypoint per
// namespace, 20 nodes) and the store of the change.
func scaleWorlds(tb testing.TB) (base, change *ingest.Store) {
	tb.Helper()
	base, err := benchcp.ScaleMesh(1000, 2000).Store()
	if err != nil {
		tb.Fatal(err)
	}
	objs, _, err := ingest.Decode("change", []byte(scaleChange))
	if err != nil {
		tb.Fatal(err)
	}
	change = ingest.NewStore()
	for _, o := range objs {
		if _, err := change.Add(o); err != nil {
			tb.Fatal(err)
		}
	}
	return base, change
}

// diffWorlds is what diff.Run does after loading: the new world, both snapshots, every proxy compared.
func diffWorlds(tb testing.TB, base, change *ingest.Store) *diff.Report {
	newStore, err := diff.NewWorld(base, change, diff.Overlay)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := diff.Compute(model.Build(base.Objects()), model.Build(newStore.Objects()), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// TestScaleOneObjectChange: on the benchmark's mesh the change reaches ns-0's waypoint (its RDS for
// svc-0) and nothing else, among 40 proxies.
func TestScaleOneObjectChange(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a mesh of 1,000 services twice")
	}
	base, change := scaleWorlds(t)
	r := diffWorlds(t, base, change)
	res, proxies := changed(r)
	if len(proxies) != 1 || proxies[0] != "waypoint/ns-0/waypoint" || len(r.Untouched) != 39 {
		t.Fatalf("changed %v, %d untouched; want only waypoint/ns-0/waypoint, 39 untouched", proxies, len(r.Untouched))
	}
	if len(res) != 1 || res[0] != "waypoint/ns-0/waypoint changed RDS inbound-vip|9080|http|svc-0.ns-0.svc.cluster.local" {
		t.Errorf("changes = %v", res)
	}
}

// BenchmarkScaleOneObjectChange is the figure: a one-object change on a mesh of 1,000 services
// and 2,000 pods (docs/diff.md has the numbers and the command).
func BenchmarkScaleOneObjectChange(b *testing.B) {
	base, change := scaleWorlds(b)
	b.ReportAllocs()
	for b.Loop() {
		if r := diffWorlds(b, base, change); len(r.Proxies) != 1 {
			b.Fatalf("%d proxies changed, want 1", len(r.Proxies))
		}
	}
}

// BenchmarkScaleOneObjectChangeFromYAML is the same diff from YAML files, as `meshlab diff` runs it:
// reading, strict decoding and validating 5,000 objects is most of the cost.
func BenchmarkScaleOneObjectChangeFromYAML(b *testing.B) {
	dir := b.TempDir()
	writeScaleMesh(b, dir)
	in := diff.Input{Base: diff.FileBase{Paths: []string{filepath.Join(dir, "base.yaml")}}, Files: []string{filepath.Join(dir, "change.yaml")}}
	b.ReportAllocs()
	for b.Loop() {
		res, err := diff.Run(context.Background(), in)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Report.Proxies) != 1 {
			b.Fatalf("%d proxies changed, want 1", len(res.Report.Proxies))
		}
	}
}

// TestWriteScaleMesh writes the benchmark's mesh and change as YAML into $MESHLAB_DIFF_SCALE_DIR
// (base.yaml, change.yaml), to measure the CLI itself: see docs/diff.md.
func TestWriteScaleMesh(t *testing.T) {
	dir := os.Getenv("MESHLAB_DIFF_SCALE_DIR")
	if dir == "" {
		t.Skip("set MESHLAB_DIFF_SCALE_DIR to write the scale mesh as YAML")
	}
	writeScaleMesh(t, dir)
}

func writeScaleMesh(tb testing.TB, dir string) {
	tb.Helper()
	objs, err := benchcp.ScaleMesh(1000, 2000).Objects()
	if err != nil {
		tb.Fatal(err)
	}
	var b bytes.Buffer
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			tb.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	if err := os.WriteFile(filepath.Join(dir, "base.yaml"), b.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "change.yaml"), []byte(scaleChange), 0o644); err != nil {
		tb.Fatal(err)
	}
}
