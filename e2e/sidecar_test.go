package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/bookinfo"
	"github.com/meshlab/meshlab/cluster"
	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/controlplane/inject"
	"github.com/meshlab/meshlab/log"
	"github.com/meshlab/meshlab/manifests"
	"github.com/meshlab/meshlab/scenarios"
)

// sidecarNamespace holds bookinfo with sidecars (the ambient bookinfo stays in default).
const sidecarNamespace = "bookinfo-sidecar"

// kc runs kubectl against the lab and returns stdout.
func kc(t *testing.T, ctx context.Context, stdin []byte, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, kubectl(t), append([]string{"--context", "kind-" + clusterName}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

func mustKC(t *testing.T, ctx context.Context, stdin []byte, args ...string) string {
	t.Helper()
	out, err := kc(t, ctx, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func toYAML(t *testing.T, objs ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes()
}

// TestSidecar checks sidecar mode on the lab: `meshlab check`, bookinfo in an injected namespace serving
// /productpage through sidecars, the sidecar's own config dump, and the injection matrix through the real
// API server (one namespace and pod per row of inject.Matrix).
func TestSidecar(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	image := strings.TrimSpace(mustKC(t, ctx, nil, "-n", "istio-system", "get", "deploy", "istiod",
		"-o", "jsonpath={.spec.template.spec.containers[0].image}"))
	if image == "" {
		t.Fatal("no control plane image")
	}

	t.Run("meshlab check", func(t *testing.T) {
		// The control plane registers its webhook shortly after it is ready; give it a minute.
		var out string
		var err error
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(3 * time.Second) {
			if out, err = meshlab(t, ctx, "check"); err == nil || time.Now().After(deadline) {
				break
			}
		}
		t.Logf("meshlab check:\n%s", out)
		if err != nil {
			t.Fatalf("meshlab check: %v", err)
		}
	})

	t.Run("bookinfo through sidecars", func(t *testing.T) {
		t.Cleanup(func() { kc(t, context.Background(), nil, "delete", "namespace", sidecarNamespace, "--wait=false") })
		ns := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: sidecarNamespace, Labels: map[string]string{inject.LabelInjection: "enabled"}}}
		objs := []any{ns}
		for _, o := range manifests.Bookinfo(image, sidecarNamespace) {
			objs = append(objs, o)
		}
		mustKC(t, ctx, toYAML(t, objs...), "apply", "-f", "-")
		for _, d := range bookinfo.DeploymentNames() {
			mustKC(t, ctx, nil, "-n", sidecarNamespace, "rollout", "status", "deploy/"+d, "--timeout=5m")
		}

		var pods corev1.PodList
		if err := json.Unmarshal([]byte(mustKC(t, ctx, nil, "-n", sidecarNamespace, "get", "pods", "-o", "json")), &pods); err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			var names, inits []string
			for _, c := range p.Spec.Containers {
				names = append(names, c.Name)
			}
			for _, c := range p.Spec.InitContainers {
				inits = append(inits, c.Name)
			}
			if len(names) != 2 || names[1] != "istio-proxy" || len(inits) == 0 || inits[0] != "istio-init" {
				t.Errorf("pod %s: containers %v, init containers %v; want [app istio-proxy] and istio-init", p.Name, names, inits)
			}
		}

		// sleep -> productpage -> details, reviews (-> ratings), every hop through two sidecars.
		seen := map[string]int{}
		for i := 0; i < 15; i++ {
			page, err := kc(t, ctx, nil, "-n", sidecarNamespace, "exec", "deploy/sleep", "-c", "sleep", "--",
				"meshlab", "curl", "-s", "--max-time", "10", "http://productpage:9080/productpage")
			if err != nil {
				t.Fatal(err)
			}
			seen[reviewsVersion(t, page)]++
		}
		t.Logf("reviews versions over 15 requests: %v", seen)

		// The productpage sidecar's own config, read from its admin port through a port-forward.
		env, err := scenarios.Connect(ctx, cluster.Target{Name: clusterName}, log.Noop)
		if err != nil {
			t.Fatal(err)
		}
		pp, err := labclient.RunningPods(ctx, env.Kube, sidecarNamespace, "app=productpage")
		if err != nil || len(pp) == 0 {
			t.Fatalf("productpage pod: %v", err)
		}
		dump, err := labclient.PodDumpRaw(ctx, env.Config, env.Kube, sidecarNamespace, pp[0].Name)
		if err != nil {
			t.Fatal(err)
		}
		// Ports are checked through proxy-config below: protojson's spacing is deliberately unstable.
		for _, want := range []string{`"virtualOutbound"`, `"virtualInbound"`, "outbound|9080||reviews." + sidecarNamespace + ".svc.cluster.local"} {
			if !strings.Contains(string(dump), want) {
				t.Errorf("productpage /config_dump lacks %s", want)
			}
		}
		file := filepath.Join(t.TempDir(), "dump.json")
		if err := os.WriteFile(file, dump, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ table, want string }{
			{"listeners", "15001"}, {"listeners", "15006"},
			{"clusters", "reviews." + sidecarNamespace + ".svc.cluster.local"},
		} {
			out, err := meshlab(t, ctx, "proxy-config", c.table, "--file", file)
			if err != nil || !strings.Contains(out, c.want) {
				t.Errorf("meshlab proxy-config %s: %v, want %s in:\n%s", c.table, err, c.want, out)
			}
		}
		t.Run("istioctl proxy-config on the sidecar", func(t *testing.T) { checkIstioctlSidecar(t, ctx, sidecarNamespace, pp[0].Name) })
		clusters, err := labclient.PodGet(ctx, env.Config, env.Kube, sidecarNamespace, pp[0].Name, labclient.AdminPort, "/clusters")
		if err != nil || !strings.Contains(string(clusters), "outbound|9080||reviews."+sidecarNamespace+".svc.cluster.local::envoy://connect_originate/") {
			t.Errorf("productpage /clusters: %v, want reviews endpoints through connect_originate (HBONE):\n%.2000s", err, clusters)
		}
	})

	t.Run("sidecar and ambient workloads call each other over HBONE", func(t *testing.T) {
		// default is ambient (ztunnel); bookinfo-sidecar is injected. Both directions must work and be
		// carried over HBONE with each side's identity, which ztunnel logs on the ambient end.
		since := time.Now().UTC().Add(-time.Second).Format(time.RFC3339)
		for _, c := range []struct{ from, to, identity string }{
			{from: sidecarNamespace, to: "http://productpage.default:9080/productpage", identity: "spiffe://cluster.local/ns/" + sidecarNamespace + "/sa/sleep"},
			{from: "default", to: "http://productpage." + sidecarNamespace + ":9080/productpage", identity: "spiffe://cluster.local/ns/default/sa/sleep"},
		} {
			code, err := kc(t, ctx, nil, "-n", c.from, "exec", "deploy/sleep", "-c", "sleep", "--",
				"meshlab", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", c.to)
			if err != nil || strings.TrimSpace(code) != "200" {
				t.Errorf("%s sleep -> %s: %q, %v; want 200", c.from, c.to, code, err)
				// What each proxy on the way saw, for the failure's cause.
				for _, args := range [][]string{
					{"-n", "istio-system", "logs", "ds/ztunnel", "--tail", "40"},
					{"-n", sidecarNamespace, "logs", "deploy/productpage-v1", "-c", "istio-proxy", "--tail", "40"},
					{"-n", sidecarNamespace, "logs", "deploy/sleep", "-c", "istio-proxy", "--tail", "40"},
				} {
					logs, lerr := kc(t, ctx, nil, args...)
					t.Logf("kubectl %s (%v):\n%s", strings.Join(args, " "), lerr, logs)
				}
			}
		}
		// ztunnel logs a connection when it closes; the sidecar keeps its upstream connection open for
		// reuse until it idles out, so poll the log (bounded) rather than read it once.
		var fromSidecar, toSidecar bool
		deadline := time.Now().Add(90 * time.Second)
		for !(fromSidecar && toSidecar) && time.Now().Before(deadline) {
			logs := mustKC(t, ctx, nil, "-n", "istio-system", "logs", "ds/ztunnel", "--since-time", since)
			for _, line := range strings.Split(logs, "\n") {
				if !strings.Contains(line, `protocol="HBONE"`) {
					continue
				}
				fromSidecar = fromSidecar || (strings.Contains(line, `src.identity="spiffe://cluster.local/ns/`+sidecarNamespace+`/sa/sleep"`) &&
					strings.Contains(line, `dst.workload="default/productpage`) && strings.Contains(line, `direction="inbound"`))
				toSidecar = toSidecar || (strings.Contains(line, `src.identity="spiffe://cluster.local/ns/default/sa/sleep"`) &&
					strings.Contains(line, `dst.workload="`+sidecarNamespace+`/productpage`) && strings.Contains(line, `direction="outbound"`))
			}
			if !(fromSidecar && toSidecar) {
				time.Sleep(2 * time.Second)
			}
		}
		if !fromSidecar || !toSidecar {
			t.Errorf("ztunnel HBONE log lines: sidecar -> ambient %v, ambient -> sidecar %v; want both", fromSidecar, toSidecar)
		}
	})

	t.Run("injection matrix through the API server", func(t *testing.T) {
		rows := inject.Matrix()
		var objs []any
		for i, row := range rows {
			name := fmt.Sprintf("meshlab-matrix-%02d", i)
			labels := map[string]string{"meshlab-e2e": "matrix"}
			for k, v := range row.NamespaceLabels {
				labels[k] = v
			}
			podLabels := map[string]string{"meshlab-e2e": "matrix"}
			for k, v := range row.PodLabels {
				podLabels[k] = v
			}
			objs = append(objs,
				&corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}},
				&corev1.Pod{
					TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
					ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: name, Labels: podLabels, Annotations: row.PodAnnotations},
					// Never scheduled: only admission matters here.
					Spec: corev1.PodSpec{NodeSelector: map[string]string{"meshlab-e2e": "nowhere"},
						Containers: []corev1.Container{{Name: "app", Image: image, Args: []string{"sleep"}}}},
				})
		}
		t.Cleanup(func() {
			kc(t, context.Background(), nil, "delete", "namespace", "-l", "meshlab-e2e=matrix", "--wait=false")
		})
		mustKC(t, ctx, toYAML(t, objs...), "apply", "-f", "-")
		var pods corev1.PodList
		if err := json.Unmarshal([]byte(mustKC(t, ctx, nil, "get", "pods", "-A", "-l", "meshlab-e2e=matrix", "-o", "json")), &pods); err != nil {
			t.Fatal(err)
		}
		injected := map[string]bool{}
		for _, p := range pods.Items {
			for _, c := range p.Spec.Containers {
				if c.Name == "istio-proxy" {
					injected[p.Namespace] = true
				}
			}
		}
		if len(pods.Items) != len(rows) {
			t.Fatalf("%d matrix pods, want %d", len(pods.Items), len(rows))
		}
		for i, row := range rows {
			name := fmt.Sprintf("meshlab-matrix-%02d", i)
			if injected[name] != row.Injected {
				t.Errorf("namespace %v, pod labels %v, annotations %v: injected = %v, want %v (%s)",
					row.NamespaceLabels, row.PodLabels, row.PodAnnotations, injected[name], row.Injected, row.Reason)
			}
		}
		t.Logf("%d rows checked, %d injected", len(rows), len(injected))
	})
}
