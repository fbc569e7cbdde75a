package inject

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/template"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/image"
)

// Where the injection template lives in the cluster; the control plane reads it from there so that it can be
// overridden without a rebuild.
const (
	ConfigMapName      = "istio-sidecar-injector"
	ConfigMapNamespace = mesh.Namespace
	ConfigMapKey       = "template"
)

// Labels the template adds (Istio's).
const (
	LabelTLSMode           = "security.istio.io/tlsMode"
	LabelCanonicalName     = "service.istio.io/canonical-name"
	LabelCanonicalRevision = "service.istio.io/canonical-revision"
)

// DefaultTemplate is the built-in injection template.
//
//go:embed sidecar.tmpl.yaml
var DefaultTemplate string

// Values are the template's inputs besides the pod. Revision, CanonicalName and CanonicalRevision are
// filled per pod by Inject.
type Values struct {
	// ProxyImage runs `meshlab proxy sidecar`; InitImage runs `meshlab iptables` (default: ProxyImage).
	ProxyImage      string
	InitImage       string
	ImagePullPolicy corev1.PullPolicy // default IfNotPresent: meshlab images are loaded, never pulled
	ProxyUID        int64             // default image.ProxyUID
	ProxyGID        int64             // default ProxyUID
	// DiscoveryAddress is the control plane's xDS and CA address (default mesh.XDSAddress).
	DiscoveryAddress string

	Revision          string
	CanonicalName     string
	CanonicalRevision string
	// ProxyGODEBUG is the sidecar's GODEBUG (default mesh.ProxyGODEBUG).
	ProxyGODEBUG string
}

func (v Values) withDefaults() Values {
	if v.InitImage == "" {
		v.InitImage = v.ProxyImage
	}
	if v.ProxyGODEBUG == "" {
		v.ProxyGODEBUG = mesh.ProxyGODEBUG
	}
	if v.ImagePullPolicy == "" {
		v.ImagePullPolicy = corev1.PullIfNotPresent
	}
	if v.ProxyUID == 0 {
		v.ProxyUID = image.ProxyUID
	}
	if v.ProxyGID == 0 {
		v.ProxyGID = v.ProxyUID
	}
	if v.DiscoveryAddress == "" {
		v.DiscoveryAddress = mesh.XDSAddress
	}
	if v.Revision == "" {
		v.Revision = DefaultRevision
	}
	return v
}

// Status is the value of the sidecar.istio.io/status annotation: what injection added.
type Status struct {
	InitContainers   []string `json:"initContainers"`
	Containers       []string `json:"containers"`
	Volumes          []string `json:"volumes"`
	ImagePullSecrets []string `json:"imagePullSecrets"`
	Revision         string   `json:"revision"`
}

// Template is a parsed injection template.
type Template struct{ t *template.Template }

// ParseTemplate parses an injection template (DefaultTemplate or an override).
func ParseTemplate(text string) (*Template, error) {
	t, err := template.New("sidecar").Option("missingkey=error").Funcs(template.FuncMap{
		"toJSON": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"annotation": func(pod *corev1.Pod, key, def string) string {
			if v, ok := pod.Annotations[key]; ok {
				return v
			}
			return def
		},
		"commaJoin": func(parts ...string) string {
			return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), ",")
		},
	}).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parsing injection template: %w", err)
	}
	return &Template{t: t}, nil
}

// Render executes the template for pod and returns the partial pod it describes.
func (t *Template) Render(pod *corev1.Pod, v Values) (*corev1.Pod, error) {
	var buf bytes.Buffer
	if err := t.t.Execute(&buf, struct {
		Pod    *corev1.Pod
		Values Values
	}{pod, v}); err != nil {
		return nil, fmt.Errorf("executing injection template: %w", err)
	}
	overlay := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(buf.Bytes(), overlay); err != nil {
		return nil, fmt.Errorf("injection template did not render a valid partial Pod: %w", err)
	}
	return overlay, nil
}

// Inject returns a copy of pod with the sidecar added as t describes, for revision rev. pod is not changed.
func (t *Template) Inject(pod *corev1.Pod, rev string, v Values) (*corev1.Pod, error) {
	v.Revision = rev
	v = v.withDefaults()
	if v.ProxyImage == "" {
		return nil, fmt.Errorf("no proxy image configured for injection")
	}
	v.CanonicalName, v.CanonicalRevision = CanonicalName(pod), CanonicalRevision(pod)
	overlay, err := t.Render(pod, v)
	if err != nil {
		return nil, err
	}
	out := pod.DeepCopy()
	if err := merge(out, overlay); err != nil {
		return nil, err
	}
	st := Status{Revision: v.Revision}
	for _, c := range overlay.Spec.InitContainers {
		st.InitContainers = append(st.InitContainers, c.Name)
	}
	for _, c := range overlay.Spec.Containers {
		st.Containers = append(st.Containers, c.Name)
	}
	for _, vol := range overlay.Spec.Volumes {
		st.Volumes = append(st.Volumes, vol.Name)
	}
	for _, s := range overlay.Spec.ImagePullSecrets {
		st.ImagePullSecrets = append(st.ImagePullSecrets, s.Name)
	}
	b, _ := json.Marshal(st) // a struct of strings always marshals
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[AnnotationStatus] = string(b)
	return out, nil
}

// merge adds overlay to pod: init containers first (capture must be in place before the app's own init
// containers run, as in Istio), containers and volumes last, labels and annotations set, and pod security
// context fields only where the pod has none. A name that is already taken is an error, not a silent merge.
func merge(pod, overlay *corev1.Pod) error {
	for k, v := range overlay.Labels {
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		pod.Labels[k] = v
	}
	for k, v := range overlay.Annotations {
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[k] = v
	}
	taken := map[string]bool{}
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		taken[c.Name] = true
	}
	for _, c := range slices.Concat(overlay.Spec.InitContainers, overlay.Spec.Containers) {
		if taken[c.Name] {
			return fmt.Errorf("pod already has a container named %s", c.Name)
		}
	}
	for _, vol := range overlay.Spec.Volumes {
		if slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == vol.Name }) {
			return fmt.Errorf("pod already has a volume named %s", vol.Name)
		}
	}
	pod.Spec.InitContainers = slices.Concat(overlay.Spec.InitContainers, pod.Spec.InitContainers)
	pod.Spec.Containers = slices.Concat(pod.Spec.Containers, overlay.Spec.Containers)
	pod.Spec.Volumes = slices.Concat(pod.Spec.Volumes, overlay.Spec.Volumes)
	pod.Spec.ImagePullSecrets = slices.Concat(pod.Spec.ImagePullSecrets, overlay.Spec.ImagePullSecrets)
	if osc := overlay.Spec.SecurityContext; osc != nil {
		if pod.Spec.SecurityContext == nil {
			pod.Spec.SecurityContext = &corev1.PodSecurityContext{}
		}
		if pod.Spec.SecurityContext.FSGroup == nil {
			pod.Spec.SecurityContext.FSGroup = osc.FSGroup
		}
	}
	return nil
}

// CanonicalName is the workload's service name for telemetry, as Istio derives it: the
// service.istio.io/canonical-name label, app.kubernetes.io/name, app, or the workload name.
func CanonicalName(pod *corev1.Pod) string {
	for _, k := range []string{LabelCanonicalName, "app.kubernetes.io/name", "app"} {
		if v := pod.Labels[k]; v != "" {
			return v
		}
	}
	return workloadName(pod)
}

// CanonicalRevision is the workload's version: service.istio.io/canonical-revision,
// app.kubernetes.io/version, version, or "latest".
func CanonicalRevision(pod *corev1.Pod) string {
	for _, k := range []string{LabelCanonicalRevision, "app.kubernetes.io/version", "version"} {
		if v := pod.Labels[k]; v != "" {
			return v
		}
	}
	return "latest"
}

// workloadName strips what controllers append to pod names: "reviews-v1-5d8f7c9b6-" with
// pod-template-hash 5d8f7c9b6 gives reviews-v1.
func workloadName(pod *corev1.Pod) string {
	name := pod.Name
	if name == "" {
		name = pod.GenerateName
	}
	if h := pod.Labels["pod-template-hash"]; h != "" {
		if i := strings.Index(name, "-"+h); i > 0 {
			name = name[:i]
		}
	}
	name = strings.TrimSuffix(name, "-")
	if name == "" {
		return "unknown"
	}
	return name
}
