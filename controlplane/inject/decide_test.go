package inject

import (
	"strings"
	"testing"
)

func labelsOf(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestIstioTable checks the rows of Istio's injection table (istio-shapes.md, "Injection decision"). The
// pod column is the label; the legacy annotation is covered by TestMatrix.
func TestIstioTable(t *testing.T) {
	for _, tc := range []struct {
		ns, pod []string
		want    bool
	}{
		{[]string{LabelInjection, "enabled"}, nil, true},
		{nil, []string{LabelSidecarInject, "true"}, true},
		{[]string{LabelInjection, "enabled"}, []string{LabelSidecarInject, "true"}, true},
		{[]string{LabelInjection, "enabled"}, []string{LabelSidecarInject, "false"}, false},
		{[]string{LabelInjection, "disabled"}, []string{LabelSidecarInject, "true"}, false},
		{[]string{LabelInjection, "disabled"}, []string{LabelSidecarInject, "false"}, false},
		{nil, nil, false},
	} {
		d := Decide(Input{Namespace: "demo", NamespaceLabels: labelsOf(tc.ns...), PodLabels: labelsOf(tc.pod...)})
		if d.Injected != tc.want {
			t.Errorf("ns %v pod %v: Decide() = %+v, want injected=%v", tc.ns, tc.pod, d, tc.want)
		}
		if d.Reason == "" || d.Rule == "" {
			t.Errorf("ns %v pod %v: Decide() gives no rule or reason: %+v", tc.ns, tc.pod, d)
		}
	}
}

func TestDecideRules(t *testing.T) {
	enabled := labelsOf(LabelInjection, "enabled")
	for _, tc := range []struct {
		name     string
		in       Input
		want     bool
		rule     Rule
		rev      string
		contains string
	}{
		{"hostNetwork is never injected", Input{Namespace: "demo", NamespaceLabels: enabled, HostNetwork: true}, false, RuleHostNetwork, "", "hostNetwork"},
		{"kube-system is never injected", Input{Namespace: "kube-system", NamespaceLabels: enabled, PodLabels: labelsOf(LabelSidecarInject, "true")}, false, RuleExcludedNamespace, "", "kube-system"},
		{"local-path-storage is never injected", Input{Namespace: "local-path-storage", NamespaceLabels: enabled}, false, RuleExcludedNamespace, "", "local-path-storage"},
		{"already injected", Input{Namespace: "demo", NamespaceLabels: enabled, PodAnnotations: labelsOf(AnnotationStatus, "{}")}, false, RuleAlreadyInjected, "", "already"},
		{"namespace label other than enabled turns it off", Input{Namespace: "demo", NamespaceLabels: labelsOf(LabelInjection, "yes")}, false, RuleNamespaceLabel, "", "istio-injection=yes"},
		{"istio-injection wins over istio.io/rev", Input{Namespace: "demo", NamespaceLabels: labelsOf(LabelInjection, "disabled", LabelRevision, "default")}, false, RuleNamespaceLabel, "", "disabled"},
		{"known namespace revision", Input{Namespace: "demo", NamespaceLabels: labelsOf(LabelRevision, "canary"), Revisions: []string{"default", "canary"}}, true, RuleNamespaceRevision, "canary", "canary"},
		{"unknown namespace revision", Input{Namespace: "demo", NamespaceLabels: labelsOf(LabelRevision, "canary")}, false, RuleUnknownRevision, "", "known: default"},
		{"pod revision label opts in", Input{Namespace: "demo", PodLabels: labelsOf(LabelRevision, "default")}, true, RulePodRevision, "default", "istio.io/rev=default"},
		{"pod revision label with inject=false", Input{Namespace: "demo", PodLabels: labelsOf(LabelRevision, "default", LabelSidecarInject, "false")}, false, RulePodLabel, "", "opts out"},
		{"unknown pod revision", Input{Namespace: "demo", PodLabels: labelsOf(LabelRevision, "old")}, false, RuleUnknownRevision, "", "old"},
		{"pod label yes in an enabled namespace injects (Istio's truthy values)", Input{Namespace: "demo", NamespaceLabels: enabled, PodLabels: labelsOf(LabelSidecarInject, "yes")}, true, RulePodLabel, "default", "yes"},
		{"pod label no in an enabled namespace opts out", Input{Namespace: "demo", NamespaceLabels: enabled, PodLabels: labelsOf(LabelSidecarInject, "no")}, false, RulePodLabel, "", "opts out"},
		{"pod label yes without a namespace label does not opt in (selector wants true)", Input{Namespace: "demo", PodLabels: labelsOf(LabelSidecarInject, "yes")}, false, RulePodLabel, "", "not \"true\""},
		{"annotation cannot opt in", Input{Namespace: "demo", PodAnnotations: labelsOf(LabelSidecarInject, "true")}, false, RulePodAnnotation, "", "set the label"},
		{"label wins over annotation", Input{Namespace: "demo", NamespaceLabels: enabled, PodLabels: labelsOf(LabelSidecarInject, "true"), PodAnnotations: labelsOf(LabelSidecarInject, "false")}, true, RulePodLabel, "default", "wins over the legacy annotation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.in)
			if d.Injected != tc.want || d.Rule != tc.rule || d.Revision != tc.rev || !strings.Contains(d.Reason, tc.contains) {
				t.Errorf("Decide() = %+v, want injected=%v rule=%s revision=%q reason containing %q", d, tc.want, tc.rule, tc.rev, tc.contains)
			}
		})
	}
}

// TestMatrix pins the whole matrix `meshlab inject matrix` prints: 5 namespace settings x 7 pod settings.
func TestMatrix(t *testing.T) {
	// Per namespace setting, the expected outcome for: none, label true, label false, annotation true,
	// annotation false, label true + annotation false, label false + annotation true.
	want := map[string][7]bool{
		"{}":                       {false, true, false, false, false, true, false},
		"istio-injection=enabled":  {true, true, false, true, false, true, false},
		"istio-injection=disabled": {false, false, false, false, false, false, false},
		"istio.io/rev=default":     {true, true, false, true, false, true, false},
		"istio.io/rev=unknown":     {false, false, false, false, false, false, false},
	}
	rows := Matrix()
	if len(rows) != 35 {
		t.Fatalf("Matrix() has %d rows, want 35", len(rows))
	}
	for i, row := range rows {
		key := "{}"
		for k, v := range row.NamespaceLabels {
			key = k + "=" + v
		}
		w, ok := want[key]
		if !ok {
			t.Fatalf("row %d: unexpected namespace labels %v", i, row.NamespaceLabels)
		}
		if got := row.Injected; got != w[i%7] {
			t.Errorf("row %d: ns %v pod labels %v annotations %v: injected=%v (%s), want %v",
				i, row.NamespaceLabels, row.PodLabels, row.PodAnnotations, got, row.Reason, w[i%7])
		}
		if key == "istio.io/rev=unknown" && row.Rule != RuleUnknownRevision {
			t.Errorf("row %d: unknown revision decided by %s (%s)", i, row.Rule, row.Reason)
		}
	}
}
