package tables_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/controlplane/render"
	"github.com/meshlab/meshlab/controlplane/render/tables"
)

// printAll prints every table proxy-config prints from d, unfiltered and filtered, into one buffer.
func printAll(t *testing.T, d *tables.Dump) []byte {
	var b bytes.Buffer
	for _, waypoint := range []bool{false, true} {
		tables.All(&b, d, waypoint)
		tables.Listeners(&b, d, waypoint)
	}
	tables.Routes(&b, d)
	tables.Clusters(&b, d)
	tables.Endpoints(&b, d)
	tables.BootstrapSummary(&b, d)
	tables.Secrets(&b, d, true)
	f := tables.Filter{
		Cluster:  tables.ClusterFilter{FQDN: "reviews.default.svc.cluster.local", Port: 9080, Direction: "inbound"},
		Listener: tables.ListenerFilter{Address: "0.0.0.0", Port: 15008, Type: "TCP"},
		Route:    tables.RouteFilter{Name: "9080"},
		Endpoint: tables.EndpointFilter{Address: "10.0.0.2", Port: 9080, Status: "HEALTHY", ByIP: true},
	}
	tables.All(&b, d.Filter(f), false)
	tables.Endpoints(&b, d.Filter(f))
	return b.Bytes()
}

// FuzzConfigDump feeds proxy-config's parser (a config dump file, JSON or YAML, as `meshlab proxy-config
// --file` and istioctl read it) arbitrary bytes, seeded with the generator's golden dumps. Parsing and
// every table must not panic; a dump that parses must print the same tables after a protojson round trip
// (what the tables show is what the dump says, not how it was spelled).
func FuzzConfigDump(f *testing.F) {
	goldens, _ := filepath.Glob("../../configgen/testdata/*.golden.json")
	for i, name := range goldens {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if i%2 == 1 { // half as YAML, as `meshlab render -o yaml` writes them
			if b, err = yaml.JSONToYAML(b); err != nil {
				f.Fatal(err)
			}
		}
		f.Add(b)
	}
	f.Add([]byte(`{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.UnknownDump"}, {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamicListeners": [{"activeState": {}}]}]}`))
	f.Add([]byte("configs:\n- '@type': type.googleapis.com/envoy.admin.v3.ClustersConfigDump\n  staticClusters:\n  - cluster: {'@type': type.googleapis.com/envoy.config.route.v3.RouteConfiguration}\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		cd, err := render.ParseConfigDump(data)
		if err != nil {
			return
		}
		d, err := tables.FromConfigDump(cd)
		if err != nil {
			return
		}
		first := printAll(t, d)
		js, err := protojson.Marshal(cd)
		if err != nil {
			return // a parsed dump holding values protojson cannot write back (e.g. invalid UTF-8): nothing to compare
		}
		cd2, err := render.ParseConfigDump(js)
		if err != nil {
			t.Fatalf("a dump that parsed does not parse after a round trip: %v\n%s", err, js)
		}
		d2, err := tables.FromConfigDump(cd2)
		if err != nil {
			t.Fatalf("a dump whose sections unpacked does not unpack after a round trip: %v", err)
		}
		if second := printAll(t, d2); !bytes.Equal(first, second) {
			t.Fatalf("tables differ after a round trip:\n%s\n---\n%s", first, second)
		}
	})
}
