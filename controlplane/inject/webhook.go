package inject

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Path is where the control plane serves the webhook (on its HTTPS port, behind Service port 443).
const Path = "/inject"

// Options configure the webhook handler.
type Options struct {
	// Values fill the template; ProxyImage is required.
	Values Values
	// Revisions the control plane serves (default: DefaultRevision only).
	Revisions []string
	// Template returns the current template text; nil means DefaultTemplate. TemplateFromConfigMap reads
	// the override from the cluster.
	Template func(ctx context.Context) (string, error)
	// NamespaceLabels returns a namespace's labels; the admission request does not carry them but the
	// decision needs them. NamespaceLabelsFromClient reads them from the API server. Required.
	NamespaceLabels func(ctx context.Context, namespace string) (map[string]string, error)
	// Logf logs one line per decision (nil: silent).
	Logf func(format string, args ...any)
}

// Handler returns the mutating admission webhook for Pods, to be served at Path over TLS.
func Handler(opts Options) http.Handler {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return &admission.Webhook{
		Handler:        &injector{opts: opts},
		LogConstructor: func(logr.Logger, *admission.Request) logr.Logger { return logr.Discard() },
	}
}

// NamespaceLabelsFromClient looks namespaces up with one GET each.
func NamespaceLabelsFromClient(c kubernetes.Interface) func(context.Context, string) (map[string]string, error) {
	return func(ctx context.Context, name string) (map[string]string, error) {
		ns, err := c.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return ns.Labels, nil
	}
}

// TemplateFromConfigMap reads the template from ConfigMap ConfigMapNamespace/ConfigMapName, key ConfigMapKey,
// at each call, falling back to DefaultTemplate when the ConfigMap or the key does not exist.
func TemplateFromConfigMap(c kubernetes.Interface) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		cm, err := c.CoreV1().ConfigMaps(ConfigMapNamespace).Get(ctx, ConfigMapName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return DefaultTemplate, nil
		}
		if err != nil {
			return "", fmt.Errorf("reading ConfigMap %s/%s: %w", ConfigMapNamespace, ConfigMapName, err)
		}
		if t, ok := cm.Data[ConfigMapKey]; ok {
			return t, nil
		}
		return DefaultTemplate, nil
	}
}

type injector struct {
	opts Options

	mu       sync.Mutex
	lastText string
	last     *Template
}

// template parses the current template text, reusing the last parse while the text is unchanged.
func (i *injector) template(ctx context.Context) (*Template, error) {
	text := DefaultTemplate
	if i.opts.Template != nil {
		var err error
		if text, err = i.opts.Template(ctx); err != nil {
			return nil, err
		}
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.last != nil && text == i.lastText {
		return i.last, nil
	}
	t, err := ParseTemplate(text)
	if err != nil {
		return nil, err
	}
	i.lastText, i.last = text, t
	return t, nil
}

func (i *injector) Handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	defer func() {
		if r := recover(); r != nil {
			i.opts.Logf("inject: internal error on %s/%s: %v", req.Namespace, req.Name, r)
			resp = admission.Errored(http.StatusInternalServerError,
				fmt.Errorf("meshlab sidecar injector: internal error, pod not admitted: %v", r))
		}
	}()
	if req.Kind.Kind != "Pod" || req.Kind.Group != "" {
		return admission.Allowed(fmt.Sprintf("meshlab sidecar injector only handles Pods, not %s; admitted unchanged", req.Kind.Kind))
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(req.Object.Raw, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("meshlab sidecar injector: malformed pod: %w", err))
	}
	ns := req.Namespace
	if ns == "" {
		ns = pod.Namespace
	}
	if i.opts.NamespaceLabels == nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("meshlab sidecar injector: no namespace lookup configured"))
	}
	nsLabels, err := i.opts.NamespaceLabels(ctx, ns)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("meshlab sidecar injector: reading namespace %s: %w", ns, err))
	}
	d := Decide(Input{
		Namespace: ns, NamespaceLabels: nsLabels, PodLabels: pod.Labels, PodAnnotations: pod.Annotations,
		HostNetwork: pod.Spec.HostNetwork, Revisions: i.opts.Revisions,
	})
	name := pod.Name
	if name == "" {
		name = pod.GenerateName + "*"
	}
	i.opts.Logf("inject: %s/%s injected=%v (%s: %s)", ns, name, d.Injected, d.Rule, d.Reason)
	if !d.Injected {
		resp = admission.Allowed("not injected: " + d.Reason)
		if d.Rule == RuleUnknownRevision {
			resp = resp.WithWarnings("meshlab: sidecar not injected: " + d.Reason)
		}
		return resp
	}
	t, err := i.template(ctx)
	if err != nil {
		return admission.Denied(fmt.Sprintf("meshlab sidecar injector: injection template (ConfigMap %s/%s, key %s) is broken: %v",
			ConfigMapNamespace, ConfigMapName, ConfigMapKey, err))
	}
	injected, err := t.Inject(pod, d.Revision, i.opts.Values)
	if err != nil {
		return admission.Denied(fmt.Sprintf("meshlab sidecar injector: cannot inject (template ConfigMap %s/%s): %v",
			ConfigMapNamespace, ConfigMapName, err))
	}
	raw, err := json.Marshal(injected)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("meshlab sidecar injector: encoding pod: %w", err))
	}
	resp = admission.PatchResponseFromRaw(req.Object.Raw, raw)
	resp.Result = &metav1.Status{Message: "injected: " + d.Reason}
	return resp
}
