package inject

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Document is one YAML document of a manifest. Pod is set for the kinds whose pods may be injected (Pod,
// Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob): the pod itself or the pod template as a
// Pod, named after the object. Other documents are kept verbatim.
type Document struct {
	Raw                   []byte
	Kind, Namespace, Name string
	Pod                   *corev1.Pod
	// Labels of a Namespace document, so that a manifest can carry its namespaces' injection labels.
	Labels map[string]string

	obj any // the typed object Pod was taken from
}

// ReadManifest splits a multi-document YAML manifest and decodes the documents it knows.
func ReadManifest(data []byte) ([]*Document, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []*Document
	for i := 1; ; i++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		d, err := decodeDocument(raw)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		docs = append(docs, d)
	}
}

func stripComments(raw []byte) []byte {
	var out bytes.Buffer
	for _, l := range bytes.Split(raw, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out.Write(l)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

func decodeDocument(raw []byte) (*Document, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string            `json:"name"`
			Namespace string            `json:"namespace"`
			Labels    map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	d := &Document{Raw: raw, Kind: head.Kind, Namespace: head.Metadata.Namespace, Name: head.Metadata.Name}
	group, _, _ := strings.Cut(head.APIVersion, "/")
	if !strings.Contains(head.APIVersion, "/") {
		group = ""
	}
	var tmpl *corev1.PodTemplateSpec
	switch {
	case group == "" && head.Kind == "Namespace":
		d.Labels = head.Metadata.Labels
		return d, nil
	case group == "" && head.Kind == "Pod":
		pod := &corev1.Pod{}
		if err := yaml.Unmarshal(raw, pod); err != nil {
			return nil, fmt.Errorf("decoding Pod %s: %w", d.Name, err)
		}
		d.obj, d.Pod = pod, pod.DeepCopy()
		return d, nil
	case group == "apps" && head.Kind == "Deployment":
		o := &appsv1.Deployment{}
		d.obj, tmpl = o, &o.Spec.Template
	case group == "apps" && head.Kind == "ReplicaSet":
		o := &appsv1.ReplicaSet{}
		d.obj, tmpl = o, &o.Spec.Template
	case group == "apps" && head.Kind == "StatefulSet":
		o := &appsv1.StatefulSet{}
		d.obj, tmpl = o, &o.Spec.Template
	case group == "apps" && head.Kind == "DaemonSet":
		o := &appsv1.DaemonSet{}
		d.obj, tmpl = o, &o.Spec.Template
	case group == "batch" && head.Kind == "Job":
		o := &batchv1.Job{}
		d.obj, tmpl = o, &o.Spec.Template
	case group == "batch" && head.Kind == "CronJob":
		o := &batchv1.CronJob{}
		d.obj, tmpl = o, &o.Spec.JobTemplate.Spec.Template
	default:
		return d, nil
	}
	if err := yaml.Unmarshal(raw, d.obj); err != nil {
		return nil, fmt.Errorf("decoding %s %s: %w", head.Kind, d.Name, err)
	}
	meta := *tmpl.ObjectMeta.DeepCopy()
	if meta.Name == "" {
		meta.Name = d.Name // what the pod's canonical name falls back to
	}
	if meta.Namespace == "" {
		meta.Namespace = d.Namespace
	}
	d.Pod = &corev1.Pod{ObjectMeta: meta, Spec: *tmpl.Spec.DeepCopy()}
	return d, nil
}

// SetPod replaces the document's pod (or pod template) with pod and re-renders Raw.
func (d *Document) SetPod(pod *corev1.Pod) error {
	switch o := d.obj.(type) {
	case *corev1.Pod:
		*o = *pod
	case nil:
		return fmt.Errorf("%s %s has no pod template", d.Kind, d.Name)
	default:
		var tmpl *corev1.PodTemplateSpec
		switch o := o.(type) {
		case *appsv1.Deployment:
			tmpl = &o.Spec.Template
		case *appsv1.ReplicaSet:
			tmpl = &o.Spec.Template
		case *appsv1.StatefulSet:
			tmpl = &o.Spec.Template
		case *appsv1.DaemonSet:
			tmpl = &o.Spec.Template
		case *batchv1.Job:
			tmpl = &o.Spec.Template
		case *batchv1.CronJob:
			tmpl = &o.Spec.JobTemplate.Spec.Template
		}
		meta := *pod.ObjectMeta.DeepCopy()
		meta.Name, meta.Namespace = tmpl.Name, tmpl.Namespace // drop what decoding filled in
		tmpl.ObjectMeta, tmpl.Spec = meta, pod.Spec
	}
	raw, err := yaml.Marshal(d.obj)
	if err != nil {
		return fmt.Errorf("encoding %s %s: %w", d.Kind, d.Name, err)
	}
	d.Raw, d.Pod = raw, pod
	return nil
}

// WriteManifest joins documents back into one manifest.
func WriteManifest(w io.Writer, docs []*Document) error {
	for i, d := range docs {
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		raw := d.Raw
		if len(raw) > 0 && raw[len(raw)-1] != '\n' {
			raw = append(raw, '\n')
		}
		if _, err := w.Write(raw); err != nil {
			return err
		}
	}
	return nil
}

// ManifestOptions steer DecideManifest and InjectManifest.
type ManifestOptions struct {
	// Namespace is used for objects that name none (default "default").
	Namespace string
	// NamespaceLabels returns the labels of a namespace; nil means none.
	NamespaceLabels func(namespace string) map[string]string
	Revisions       []string
	// Template and Values are needed by InjectManifest only.
	Template *Template
	Values   Values
}

// ManifestDecision is the decision for one document with a pod.
type ManifestDecision struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Decision
}

// DecideManifest decides every document that has a pod.
func DecideManifest(docs []*Document, opts ManifestOptions) []ManifestDecision {
	var out []ManifestDecision
	for _, d := range docs {
		if d.Pod == nil {
			continue
		}
		ns := d.Namespace
		if ns == "" {
			ns = opts.Namespace
		}
		if ns == "" {
			ns = "default"
		}
		var nsLabels map[string]string
		if opts.NamespaceLabels != nil {
			nsLabels = opts.NamespaceLabels(ns)
		}
		dec := Decide(Input{
			Namespace: ns, NamespaceLabels: nsLabels, PodLabels: d.Pod.Labels, PodAnnotations: d.Pod.Annotations,
			HostNetwork: d.Pod.Spec.HostNetwork, Revisions: opts.Revisions,
		})
		out = append(out, ManifestDecision{Kind: d.Kind, Namespace: ns, Name: d.Name, Decision: dec})
	}
	return out
}

// InjectManifest injects, in place, the pods of docs that Decide injects (like istioctl kube-inject) and
// returns the decisions. Documents without pods, and pods not injected, keep their exact text.
func InjectManifest(docs []*Document, opts ManifestOptions) ([]ManifestDecision, error) {
	decisions := DecideManifest(docs, opts)
	i := 0
	for _, d := range docs {
		if d.Pod == nil {
			continue
		}
		dec := decisions[i]
		i++
		if !dec.Injected {
			continue
		}
		injected, err := opts.Template.Inject(d.Pod, dec.Revision, opts.Values)
		if err != nil {
			return nil, fmt.Errorf("injecting %s %s: %w", d.Kind, d.Name, err)
		}
		if err := d.SetPod(injected); err != nil {
			return nil, err
		}
	}
	return decisions, nil
}

// LabelsFromManifest returns a namespace-label lookup from the Namespace documents of docs, falling back to
// fallback for namespaces the manifest does not define.
func LabelsFromManifest(docs []*Document, fallback map[string]string) func(string) map[string]string {
	defined := map[string]map[string]string{}
	for _, d := range docs {
		if d.Kind == "Namespace" {
			defined[d.Name] = d.Labels
		}
	}
	return func(ns string) map[string]string {
		if l, ok := defined[ns]; ok {
			return l
		}
		return fallback
	}
}
