package configgen_test

import (
	"os"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/controlplane/configgen"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

// TestSidecarPartsMakeTheWhole: the shared outbound part and the pod's inbound part together are exactly
// what Resources generates for the sidecar, for every pod and type (the live control plane caches the two
// parts separately and serves their union).
func TestSidecarPartsMakeTheWhole(t *testing.T) {
	snap := modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsVS)
	types := []string{xdstype.Listener, xdstype.Cluster, xdstype.Route, xdstype.Endpoint}
	for _, wl := range snap.Workloads() {
		p := model.Proxy{Kind: model.KindSidecar, Namespace: wl.Namespace, Name: wl.Name}
		for _, typeURL := range types {
			want, err := configgen.Resources(snap, p, typeURL)
			if err != nil {
				t.Fatalf("Resources(%s, %s) = %v", p.ID(), typeURL, err)
			}
			out, err := configgen.SidecarOutbound(snap, p.Namespace, typeURL)
			if err != nil {
				t.Fatalf("SidecarOutbound(%s, %s) = %v", p.Namespace, typeURL, err)
			}
			in, err := configgen.SidecarInbound(snap, p, typeURL)
			if err != nil {
				t.Fatalf("SidecarInbound(%s, %s) = %v", p.ID(), typeURL, err)
			}
			got := append(slices.Clone(out), in...)
			if len(got) != len(want) {
				t.Fatalf("%s %s: %d resources from the parts, want %d", p.ID(), typeURL, len(got), len(want))
			}
			for _, w := range want {
				if !slices.ContainsFunc(got, func(g proto.Message) bool { return proto.Equal(g, w) }) {
					t.Errorf("%s %s: the parts lack %v", p.ID(), typeURL, w)
				}
			}
		}
	}
}

// TestSidecarInboundKey: pods with equal keys get equal inbound config; a policy that applies to a pod
// changes its key and names itself; a sidecar that is not in the snapshot is an error.
func TestSidecarInboundKey(t *testing.T) {
	bookinfo, err := os.ReadFile(modeltest.Path(modeltest.Bookinfo))
	if err != nil {
		t.Fatal(err)
	}
	snap := modeltest.FromYAML(t, string(bookinfo), `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules: [{to: [{operation: {methods: [GET]}}]}]
`)
	byKey := map[string][]proto.Message{}
	keys := map[string]string{}
	for _, wl := range snap.Workloads() {
		p := model.Proxy{Kind: model.KindSidecar, Namespace: wl.Namespace, Name: wl.Name}
		k, policies, err := configgen.SidecarInboundKey(snap, p)
		if err != nil {
			t.Fatalf("SidecarInboundKey(%s) = %v", p.ID(), err)
		}
		keys[wl.Labels["app"]] = k
		if wl.Labels["app"] == "reviews" && (len(policies) != 1 || policies[0].Name != "reviews-viewer") {
			t.Errorf("%s: policies = %v, want reviews-viewer", p.ID(), policies)
		}
		lds, err := configgen.SidecarInbound(snap, p, xdstype.Listener)
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := byKey[k]; ok && !proto.Equal(prev[0], lds[0]) {
			t.Errorf("%s: same inbound key %q as another pod, different listener", p.ID(), k)
		}
		byKey[k] = lds
	}
	if keys["reviews"] == keys["ratings"] {
		t.Errorf("reviews (with a policy) and ratings share inbound key %q", keys["reviews"])
	}
	if _, _, err := configgen.SidecarInboundKey(snap, model.Proxy{Kind: model.KindSidecar, Namespace: "default", Name: "ghost"}); err == nil {
		t.Error("SidecarInboundKey(ghost) = nil error")
	}
}
