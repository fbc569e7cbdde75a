package suite

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/meshlab/meshlab/controlplane/inject"
	"github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/scenarios"
)

func TestRegistry(t *testing.T) {
	var names []string
	for _, s := range Registry().All() {
		names = append(names, s.Name)
		if s.Description == "" || s.Check == nil || s.Requires == nil {
			t.Errorf("scenario %s lacks a description, a Check or a Requires", s.Name)
		}
	}
	want := "routing-90-10 waypoint-scoping fault-injection authz-deny hbone-capture injection-matrix control-plane-restart"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("scenarios = %s, want %s", got, want)
	}
}

// Against a lab without the mesh (a fake API server holding only bookinfo's sleep), every scenario must
// skip with a "requires" reason: never pass, never fail.
func TestSkipWithoutMesh(t *testing.T) {
	kc := fake.NewClientset(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "sleep", Namespace: "default"}})
	env := &scenarios.Env{Cluster: "fake", Namespace: "default", Kube: kc}
	for _, r := range []*scenarios.Runner{{Env: env}, {}} {
		r.BundleDir = t.TempDir()
		rep := r.Run(context.Background(), Registry().All())
		for _, res := range rep.Results {
			if res.Status != scenarios.StatusSkipped || !strings.HasPrefix(res.SkipReason, "requires ") {
				t.Errorf("env %v: %s = %s (%q, %v), want skipped with a requires reason", r.Env != nil, res.Name, res.Status, res.SkipReason, res.Failures)
			}
		}
		if r.Env != nil && !strings.Contains(rep.Results[0].SkipReason, "istio-system/istiod") {
			t.Errorf("skip reason %q does not name the control plane Deployment", rep.Results[0].SkipReason)
		}
		if rep.ExitCode(false) != scenarios.ExitPassed || rep.ExitCode(true) != scenarios.ExitFailed {
			t.Errorf("exit codes %d/%d for an all-skipped run", rep.ExitCode(false), rep.ExitCode(true))
		}
	}
}

func TestReconnectMissing(t *testing.T) {
	restart := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	synced := []xds.TypeStatus{{Type: "WDS", SentNonce: "2", AckedNonce: "2"}}
	stale := []xds.TypeStatus{{Type: "WDS", SentNonce: "3", AckedNonce: "2"}}
	before := xds.SyncStatus{Proxies: []xds.ProxyStatus{{ID: "ztunnel/a"}, {ID: "ztunnel/b"}, {ID: "waypoint/default/w"}}}
	now := xds.SyncStatus{Proxies: []xds.ProxyStatus{
		{ID: "ztunnel/a", ConnectedAt: restart.Add(time.Second), Types: synced},
		{ID: "ztunnel/b", ConnectedAt: restart.Add(-time.Minute), Types: synced},
		{ID: "waypoint/default/w", ConnectedAt: restart.Add(time.Second), Types: stale},
	}}
	got := strings.Join(reconnectMissing(before, now, restart), "; ")
	if got != "ztunnel/b still on the old connection; waypoint/default/w WDS not in sync" {
		t.Errorf("reconnectMissing = %s", got)
	}
	now.Proxies = now.Proxies[:1]
	if got := strings.Join(reconnectMissing(before, now, restart), "; "); !strings.Contains(got, "ztunnel/b not connected") {
		t.Errorf("reconnectMissing = %s", got)
	}
}

func TestMatrixLayout(t *testing.T) {
	rows := inject.Matrix()
	nss := matrixNamespaces(rows)
	if len(nss) != len(inject.MatrixNamespaceLabels()) || len(rows) != len(nss)*len(inject.MatrixPodSettings()) {
		t.Errorf("%d namespaces for %d rows", len(nss), len(rows))
	}
	p := matrixPod(3, "img", rows[3])
	if p.Labels["app"] != "matrix" || p.Name != "row-3" || p.Spec.Containers[0].Image != "img" {
		t.Errorf("matrixPod = %+v", p)
	}
	if rows[3].PodLabels["app"] != "" {
		t.Errorf("matrixPod changed the matrix row's labels")
	}
	line := describeRow(inject.MatrixRow{NamespaceLabels: map[string]string{"istio-injection": "enabled"}, PodLabels: map[string]string{"sidecar.istio.io/inject": "false"}}, false)
	if line != "ns{istio-injection=enabled} pod labels{sidecar.istio.io/inject=false} annotations{}: not injected" {
		t.Errorf("describeRow = %q", line)
	}
	if !strings.Contains(namespaceYAML("x", map[string]string{"istio.io/rev": "default"}), "istio.io/rev: default") {
		t.Errorf("namespaceYAML lacks the label")
	}
}

func TestScenarioYAMLDecodes(t *testing.T) {
	for name, doc := range map[string]string{
		"waypoint": reviewsWaypointYAML, "version services": reviewsVersionServicesYAML, "virtualservice": reviewsVirtualServiceYAML,
		"httproute": reviewsHTTPRouteYAML, "faults": reviewsFaultsYAML, "deny l4": denySleepToProductpageYAML, "deny l7": denyReviewsPathYAML,
		"plain client": fmt.Sprintf(plainClientYAML, "meshlab:test"),
	} {
		objs, err := scenarios.DecodeYAML(doc)
		if err != nil || len(objs) == 0 {
			t.Errorf("%s: %v (%d objects)", name, err, len(objs))
		}
		for _, o := range objs {
			if o.GetNamespace() == "" && o.GetKind() != "Namespace" {
				t.Errorf("%s: %s %s has no namespace", name, o.GetKind(), o.GetName())
			}
		}
	}
}
