package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/controlplane/validation"
	"github.com/meshlab/meshlab/internal/yamldoc"
)

// Document is one YAML document of a manifest, or one item of a List document. Pod is set for the kinds
// whose pods may be injected (Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob): the pod
// itself or the pod template as a Pod, named after the object. Other documents are kept verbatim.
type Document struct {
	Raw                   []byte // the document's text; nil for an item of a List
	Kind, Namespace, Name string
	Pod                   *corev1.Pod
	// Labels of a Namespace document, so that a manifest can carry its namespaces' injection labels.
	Labels map[string]string
	// Items are the objects of a List document (`kubectl get -o yaml` prints one), in order; Lists nest.
	Items []*Document

	obj     any    // the typed object Pod was taken from
	json    []byte // the object as read, as JSON
	changed bool   // SetPod replaced the pod
}

// ReadManifest reads a multi-document YAML manifest (name is used in messages), expanding Lists, and decodes
// the documents it knows strictly: the kinds controlplane/validation has rules for (Pods, Namespaces,
// Services, Istio and Gateway API config) are validated, workloads are decoded rejecting unknown fields.
// Other kinds are kept as they are. It is all or nothing: every problem is returned, each a *yamldoc.Error
// naming document, object, line and field.
func ReadManifest(name string, data []byte) ([]*Document, error) {
	leaves, err := yamldoc.ReadFile(name, data)
	if err != nil {
		return nil, err
	}
	var (
		top  []*Document
		byYD = map[*yamldoc.Doc]*Document{}
		errs []error
	)
	// place returns the Document of yd, creating it (and the Lists holding it) in order.
	var place func(yd *yamldoc.Doc) *Document
	place = func(yd *yamldoc.Doc) *Document {
		if d, ok := byYD[yd]; ok {
			return d
		}
		d := &Document{Raw: yd.Raw, Kind: yd.Kind, Namespace: yd.Namespace, Name: yd.Name, json: yd.JSON}
		byYD[yd] = d
		if yd.List == nil {
			top = append(top, d)
		} else {
			l := place(yd.List)
			l.Items = append(l.Items, d)
		}
		return d
	}
	for _, yd := range leaves {
		d := place(yd)
		if err := d.decode(yd); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return top, nil
}

// Leaves returns the objects of docs, the items of Lists in their place.
func Leaves(docs []*Document) []*Document {
	var out []*Document
	for _, d := range docs {
		if d.Items != nil {
			out = append(out, Leaves(d.Items)...)
		} else {
			out = append(out, d)
		}
	}
	return out
}

// decode decodes and checks one object.
func (d *Document) decode(yd *yamldoc.Doc) error {
	group, _, _ := strings.Cut(yd.APIVersion, "/")
	if !strings.Contains(yd.APIVersion, "/") {
		group = ""
	}
	ro, _, err := validation.ValidateYAML(yd.JSON)
	var invalid *validation.Error
	switch {
	case errors.Is(err, validation.ErrUnsupported):
	case errors.As(err, &invalid):
		errs := make([]error, len(invalid.Errs))
		for i, fe := range invalid.Errs {
			errs[i] = &yamldoc.Error{Doc: yd, Line: yd.LineOf(fe.Field), Err: errors.New(validation.Message(fe))}
		}
		return errors.Join(errs...)
	case err != nil:
		return yd.DecodeError("decoding "+yd.APIVersion+" "+yd.Kind, err)
	default:
		switch o := ro.(type) {
		case *corev1.Namespace:
			d.Labels = o.Labels
		case *corev1.Pod:
			d.obj, d.Pod = o, o.DeepCopy()
		}
		return nil
	}
	var tmpl *corev1.PodTemplateSpec
	switch {
	case group == "apps" && yd.Kind == "Deployment":
		o := &appsv1.Deployment{}
		d.obj, tmpl = o, &o.Spec.Template
	case group == "apps" && yd.Kind == "ReplicaSet":
		o := &appsv1.ReplicaSet{}
		d.obj, tmpl = o, &o.Spec.Template
	case group == "apps" && yd.Kind == "StatefulSet":
		o := &appsv1.StatefulSet{}
		d.obj, tmpl = o, &o.Spec.Template
	case group == "apps" && yd.Kind == "DaemonSet":
		o := &appsv1.DaemonSet{}
		d.obj, tmpl = o, &o.Spec.Template
	case group == "batch" && yd.Kind == "Job":
		o := &batchv1.Job{}
		d.obj, tmpl = o, &o.Spec.Template
	case group == "batch" && yd.Kind == "CronJob":
		o := &batchv1.CronJob{}
		d.obj, tmpl = o, &o.Spec.JobTemplate.Spec.Template
	default:
		// A kind kube-inject passes through verbatim. A built-in Kubernetes kind (ConfigMap, Service...) is
		// still decoded strictly, so that a misspelt field is caught; custom resources have no schema here.
		gv, err := schema.ParseGroupVersion(yd.APIVersion)
		if err != nil {
			return nil
		}
		obj, err := scheme.Scheme.New(gv.WithKind(yd.Kind))
		if err != nil {
			return nil
		}
		return strictDecode(yd, obj)
	}
	if err := strictDecode(yd, d.obj); err != nil {
		return err
	}
	meta := *tmpl.ObjectMeta.DeepCopy()
	if meta.Name == "" {
		meta.Name = d.Name // what the pod's canonical name falls back to
	}
	if meta.Namespace == "" {
		meta.Namespace = d.Namespace
	}
	d.Pod = &corev1.Pod{ObjectMeta: meta, Spec: *tmpl.Spec.DeepCopy()}
	return nil
}

// strictDecode decodes yd into obj like the API server's strict field validation: a misspelt field is an
// error naming its path and line, not a silent drop.
func strictDecode(yd *yamldoc.Doc, obj any) error {
	strict, err := sigsjson.UnmarshalStrict(yd.JSON, obj, sigsjson.DisallowUnknownFields)
	if err != nil {
		return yd.DecodeError("decoding "+yd.APIVersion+" "+yd.Kind, err)
	}
	errs := make([]error, len(strict))
	for i, e := range strict {
		var fp interface{ FieldPath() string }
		if errors.As(e, &fp) {
			errs[i] = yd.Errorf(fp.FieldPath(), "%v", e)
		} else {
			errs[i] = &yamldoc.Error{Doc: yd, Line: yd.Line, Err: e}
		}
	}
	return errors.Join(errs...)
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
	d.Pod, d.changed = pod, true
	if d.Raw == nil {
		return nil // an item of a List: WriteManifest re-renders the List
	}
	raw, err := yaml.Marshal(d.obj)
	if err != nil {
		return fmt.Errorf("encoding %s %s: %w", d.Kind, d.Name, err)
	}
	d.Raw = raw
	return nil
}

// dirty reports whether d, or an item of it, was changed.
func (d *Document) dirty() bool {
	if d.changed {
		return true
	}
	for _, it := range d.Items {
		if it.dirty() {
			return true
		}
	}
	return false
}

// currentJSON is the object as it is now: as read, or re-encoded when it (or, for a List, an item) changed.
func (d *Document) currentJSON() ([]byte, error) {
	if !d.dirty() {
		return d.json, nil
	}
	if d.Items == nil {
		return json.Marshal(d.obj)
	}
	var list map[string]json.RawMessage
	if err := json.Unmarshal(d.json, &list); err != nil {
		return nil, fmt.Errorf("re-encoding %s: %w", d.Kind, err)
	}
	items := make([]json.RawMessage, len(d.Items))
	for i, it := range d.Items {
		js, err := it.currentJSON()
		if err != nil {
			return nil, err
		}
		items[i] = js
	}
	js, err := json.Marshal(items)
	if err != nil {
		return nil, err
	}
	list["items"] = js
	return json.Marshal(list)
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
		if d.Items != nil && d.dirty() {
			js, err := d.currentJSON()
			if err != nil {
				return err
			}
			if raw, err = yaml.JSONToYAML(js); err != nil {
				return fmt.Errorf("encoding %s: %w", d.Kind, err)
			}
		}
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
	for _, d := range Leaves(docs) {
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
	for _, d := range Leaves(docs) {
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
	for _, d := range Leaves(docs) {
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
