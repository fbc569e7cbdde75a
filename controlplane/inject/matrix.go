package inject

// MatrixRow is one combination of namespace label and pod setting with its decision; the JSON field names
// are those `meshlab inject matrix -o json` prints.
type MatrixRow struct {
	NamespaceLabels map[string]string `json:"namespaceLabels"`
	PodLabels       map[string]string `json:"podLabels"`
	PodAnnotations  map[string]string `json:"podAnnotations"`
	Injected        bool              `json:"injected"`
	Reason          string            `json:"reason"`
	Rule            Rule              `json:"-"` // in the table, not in the JSON the issue specifies
}

// MatrixNamespace is the namespace name the matrix rows use (an ordinary one, not excluded).
const MatrixNamespace = "demo"

// MatrixNamespaceLabels are the namespace settings of the matrix, in order.
func MatrixNamespaceLabels() []map[string]string {
	return []map[string]string{
		{},
		{LabelInjection: "enabled"},
		{LabelInjection: "disabled"},
		{LabelRevision: DefaultRevision},
		{LabelRevision: "unknown"},
	}
}

// PodSetting is one way a pod can say something about injection.
type PodSetting struct {
	Labels      map[string]string
	Annotations map[string]string
}

// MatrixPodSettings are the pod settings of the matrix, in order: none, label true/false, annotation
// true/false, and label and annotation disagreeing both ways.
func MatrixPodSettings() []PodSetting {
	l := func(v string) map[string]string { return map[string]string{LabelSidecarInject: v} }
	return []PodSetting{
		{Labels: map[string]string{}, Annotations: map[string]string{}},
		{Labels: l("true"), Annotations: map[string]string{}},
		{Labels: l("false"), Annotations: map[string]string{}},
		{Labels: map[string]string{}, Annotations: l("true")},
		{Labels: map[string]string{}, Annotations: l("false")},
		{Labels: l("true"), Annotations: l("false")},
		{Labels: l("false"), Annotations: l("true")},
	}
}

// Matrix decides every combination of MatrixNamespaceLabels and MatrixPodSettings with Decide, namespace-major.
func Matrix() []MatrixRow {
	var rows []MatrixRow
	for _, ns := range MatrixNamespaceLabels() {
		for _, pod := range MatrixPodSettings() {
			d := Decide(Input{Namespace: MatrixNamespace, NamespaceLabels: ns, PodLabels: pod.Labels, PodAnnotations: pod.Annotations})
			rows = append(rows, MatrixRow{
				NamespaceLabels: ns, PodLabels: pod.Labels, PodAnnotations: pod.Annotations,
				Injected: d.Injected, Reason: d.Reason, Rule: d.Rule,
			})
		}
	}
	return rows
}
