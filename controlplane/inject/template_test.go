package inject

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/internal/golden"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

var testValues = Values{ProxyImage: "meshlab.local/meshlab:sha-test"}

func reviewsPod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "reviews-v1-5d8f7c9b6-", Namespace: "bookinfo",
			Labels: map[string]string{"app": "reviews", "version": "v1", "pod-template-hash": "5d8f7c9b6"},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: "bookinfo-reviews",
			InitContainers:     []corev1.Container{{Name: "setup", Image: "busybox"}},
			Containers: []corev1.Container{{
				Name: "reviews", Image: "meshlab.local/meshlab:sha-test", Args: []string{"bookinfo", "reviews"},
				Ports: []corev1.ContainerPort{{ContainerPort: 9080}},
			}},
		},
	}
}

func TestInjectGolden(t *testing.T) {
	tmpl, err := ParseTemplate(DefaultTemplate)
	if err != nil {
		t.Fatal(err)
	}
	pod := reviewsPod()
	before := pod.DeepCopy()
	got, err := tmpl.Inject(pod, DefaultRevision, testValues)
	if err != nil {
		t.Fatalf("Inject() = %v", err)
	}
	if pod.String() != before.String() {
		t.Error("Inject() changed its input")
	}
	out, err := yaml.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "reviews-injected.golden.yaml"), out)

	// The parts the spec insists on, checked directly too.
	if n := got.Spec.InitContainers[0].Name; n != "istio-init" {
		t.Errorf("first init container = %s, want istio-init", n)
	}
	init := got.Spec.InitContainers[0]
	if a := strings.Join(init.Args, " "); a != "iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i * -x  -b * -d 15090,15021,15020" {
		t.Errorf("istio-init args = %q", a)
	}
	if c := init.SecurityContext.Capabilities; len(c.Add) != 2 || c.Add[0] != "NET_ADMIN" || c.Add[1] != "NET_RAW" || *init.SecurityContext.RunAsUser != 0 || *init.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("istio-init security context = %+v", init.SecurityContext)
	}
	proxy := got.Spec.Containers[len(got.Spec.Containers)-1]
	sc := proxy.SecurityContext
	if proxy.Name != "istio-proxy" || *sc.RunAsUser != 1337 || *sc.RunAsGroup != 1337 || !*sc.ReadOnlyRootFilesystem || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("istio-proxy = %s, security context %+v", proxy.Name, sc)
	}
	if p := proxy.ReadinessProbe.HTTPGet; p.Path != "/healthz/ready" || p.Port.IntValue() != 15021 {
		t.Errorf("readiness probe = %+v", p)
	}
	if got.Labels[LabelTLSMode] != "istio" || got.Labels[LabelCanonicalName] != "reviews" || got.Labels[LabelCanonicalRevision] != "v1" {
		t.Errorf("labels = %v", got.Labels)
	}
	var st Status
	if err := json.Unmarshal([]byte(got.Annotations[AnnotationStatus]), &st); err != nil {
		t.Fatalf("status annotation: %v", err)
	}
	if strings.Join(st.InitContainers, ",") != "istio-init" || strings.Join(st.Containers, ",") != "istio-proxy" || st.Revision != "default" || len(st.Volumes) != 4 {
		t.Errorf("status = %+v", st)
	}
	// Once injected, the decision says so.
	if d := Decide(Input{Namespace: "bookinfo", NamespaceLabels: map[string]string{LabelInjection: "enabled"}, PodAnnotations: got.Annotations}); d.Injected || d.Rule != RuleAlreadyInjected {
		t.Errorf("Decide(injected pod) = %+v", d)
	}
}

func TestInjectAnnotations(t *testing.T) {
	tmpl, err := ParseTemplate(DefaultTemplate)
	if err != nil {
		t.Fatal(err)
	}
	pod := reviewsPod()
	pod.Annotations = map[string]string{
		"traffic.sidecar.istio.io/excludeInboundPorts":     "9443",
		"traffic.sidecar.istio.io/excludeOutboundPorts":    "5432,6379",
		"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.96.0.0/12",
	}
	fsGroup := int64(2000)
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: &fsGroup}
	got, err := tmpl.Inject(pod, DefaultRevision, testValues)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(got.Spec.InitContainers[0].Args, " ")
	for _, want := range []string{"-i 10.96.0.0/12", "-d 15090,15021,15020,9443", "-o 5432,6379"} {
		if !strings.Contains(args, want) {
			t.Errorf("istio-init args %q lack %q", args, want)
		}
	}
	if *got.Spec.SecurityContext.FSGroup != 2000 {
		t.Errorf("the pod's own fsGroup was replaced: %d", *got.Spec.SecurityContext.FSGroup)
	}
}

func TestTemplateErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"does not parse", "metadata: {{ .Pod", "parsing injection template"},
		{"unknown field in values", "metadata: {{ .Values.Nope }}", "executing injection template"},
		{"not a pod", "spec: [1, 2]", "did not render a valid partial Pod"},
		{"unknown pod field", "spec:\n  containerz: []", "did not render a valid partial Pod"},
		{"taken container name", "spec:\n  containers:\n  - name: reviews", "already has a container named reviews"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := ParseTemplate(tc.text)
			if err == nil {
				_, err = tmpl.Inject(reviewsPod(), DefaultRevision, testValues)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCanonicalName(t *testing.T) {
	for _, tc := range []struct {
		meta metav1.ObjectMeta
		want string
	}{
		{metav1.ObjectMeta{Labels: map[string]string{"app": "a", "app.kubernetes.io/name": "b"}}, "b"},
		{metav1.ObjectMeta{Labels: map[string]string{"app": "a", LabelCanonicalName: "c"}}, "c"},
		{metav1.ObjectMeta{Name: "web-7d9f-x2x4z", Labels: map[string]string{"pod-template-hash": "7d9f"}}, "web"},
		{metav1.ObjectMeta{GenerateName: "job-"}, "job"},
		{metav1.ObjectMeta{Name: "standalone"}, "standalone"},
	} {
		if got := CanonicalName(&corev1.Pod{ObjectMeta: tc.meta}); got != tc.want {
			t.Errorf("CanonicalName(%+v) = %q, want %q", tc.meta, got, tc.want)
		}
	}
}
