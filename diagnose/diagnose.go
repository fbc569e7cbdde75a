// Package diagnose looks at the pieces sidecar injection and the mesh depend on and
// says what is wrong before a pod creation fails on it — the control plane is ready, the CA root is
// published, the injection template parses, the MutatingWebhookConfiguration exists with the CA root as
// caBundle, and the webhook answers over TLS for the Service's DNS name (inject.Probe through a
// port-forward to the control plane pod, the same TLS check the API server makes); and the validating
// webhook's ValidatingWebhookConfiguration calls the control plane with the CA root as caBundle and its
// webhook denies an invalid VirtualService (admission.Probe). Each problem comes with what to do;
// `meshlab check` prints them.
package diagnose

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/admission"
	"github.com/meshlab/meshlab/controlplane/inject"
	"github.com/meshlab/meshlab/identity"
)

// Where the control plane lives.
const (
	Namespace  = mesh.Namespace
	Deployment = mesh.ServiceName
	Service    = mesh.ServiceName
	// ServerName is what the API server verifies the webhook's certificate against.
	ServerName = mesh.ServerName
	rootCM     = "istio-ca-root-cert"
	rootKey    = mesh.RootConfigMapKey
)

// Result is one check.
type Result struct {
	Name string
	OK   bool
	// Detail says what was found; Fix, for a problem, what to do.
	Detail, Fix string
}

// Forward opens a port-forward to a pod's port and returns the local address and a stop function.
type Forward func(ctx context.Context, namespace, pod string, port int) (addr string, stop func(), err error)

// Checker runs the checks against one cluster.
type Checker struct {
	Kube    kubernetes.Interface
	Forward Forward
	// ProbeNamespace is the namespace of the throwaway pod sent to the webhook (default "default").
	ProbeNamespace string
}

// Run runs every check in order; later checks use what earlier ones found, and say so when they cannot run.
func (c *Checker) Run(ctx context.Context) []Result {
	if c.ProbeNamespace == "" {
		c.ProbeNamespace = "default"
	}
	var out []Result
	add := func(r Result) { out = append(out, r) }

	pod, r := c.controlPlane(ctx)
	add(r)
	root, r := c.root(ctx)
	add(r)
	add(c.template(ctx))
	caBundle, r := c.webhookConfiguration(ctx, root)
	add(r)
	add(c.service(ctx))
	add(c.probe(ctx, pod, caBundle))
	add(c.validation(ctx, pod, root))
	return out
}

// validation checks the ValidatingWebhookConfiguration and, through a port-forward, that the webhook it
// names denies an invalid VirtualService over TLS verified with its caBundle, as the API server calls it.
func (c *Checker) validation(ctx context.Context, pod string, root []byte) Result {
	r := Result{Name: "validating webhook"}
	name := admission.ConfigurationName(Namespace)
	cfg, err := c.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		r.Detail = err.Error()
		r.Fix = "the control plane creates ValidatingWebhookConfiguration " + name + " once its webhook answers; check its logs for \"webhook\""
		return r
	}
	var problems []string
	if len(cfg.Webhooks) != 1 {
		problems = append(problems, fmt.Sprintf("%d entries, want 1", len(cfg.Webhooks)))
	}
	for _, w := range cfg.Webhooks {
		if s := w.ClientConfig.Service; s == nil || s.Name != Service || s.Namespace != Namespace || s.Port == nil || *s.Port != 443 || s.Path == nil || *s.Path != admission.Path {
			problems = append(problems, fmt.Sprintf("entry %s does not call %s.%s:443%s", w.Name, Service, Namespace, admission.Path))
		}
		if root != nil && !bytes.Equal(w.ClientConfig.CABundle, root) {
			problems = append(problems, fmt.Sprintf("entry %s: caBundle is not the CA root", w.Name))
		}
	}
	if len(problems) > 0 {
		r.Detail = strings.Join(problems, "; ")
		r.Fix = "restart the control plane (`kubectl -n " + Namespace + " rollout restart deploy/" + Deployment + "`): it rewrites the configuration at start and every minute"
		return r
	}
	if pod == "" {
		r.Detail, r.Fix = name+" is as the control plane writes it; its webhook was not called: no ready control plane pod", "fix the control plane first"
		return r
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	addr, stop, err := c.Forward(pctx, Namespace, pod, inject.ListenPort)
	if err != nil {
		r.Detail, r.Fix = err.Error(), fmt.Sprintf("the control plane pod does not listen on %d; check its logs for \"webhook\"", inject.ListenPort)
		return r
	}
	defer stop()
	if err := admission.Probe(pctx, addr, cfg.Webhooks[0].ClientConfig.CABundle, ServerName); err != nil {
		r.Detail = err.Error()
		r.Fix = "the API server would fail the same way and, with failurePolicy Fail, refuse every Istio and Gateway API object: restart the control plane"
		return r
	}
	r.OK, r.Detail = true, fmt.Sprintf("%s: %s%s denied an invalid VirtualService over TLS verified for %s", name, pod, admission.Path, ServerName)
	return r
}

func (c *Checker) controlPlane(ctx context.Context) (string, Result) {
	r := Result{Name: "control plane ready"}
	dep, err := c.Kube.AppsV1().Deployments(Namespace).Get(ctx, Deployment, metav1.GetOptions{})
	if err != nil {
		r.Detail, r.Fix = err.Error(), "run `meshlab up` (the control plane is deployed with the lab)"
		return "", r
	}
	if dep.Status.ReadyReplicas < 1 {
		r.Detail = fmt.Sprintf("deployment %s/%s has %d ready replicas", Namespace, Deployment, dep.Status.ReadyReplicas)
		r.Fix = fmt.Sprintf("look at `kubectl -n %s logs deploy/%s` and `kubectl -n %s describe deploy/%s`", Namespace, Deployment, Namespace, Deployment)
		return "", r
	}
	pods, err := c.Kube.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + Deployment})
	if err != nil {
		r.Detail, r.Fix = err.Error(), "check that you may list pods in "+Namespace
		return "", r
	}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && podReady(&p) {
			r.OK, r.Detail = true, "pod "+p.Name+" is ready (/ready on 15014: informers synced, first snapshot built)"
			return p.Name, r
		}
	}
	r.Detail, r.Fix = "no ready control plane pod", fmt.Sprintf("`kubectl -n %s get pods -l app=%s`", Namespace, Deployment)
	return "", r
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (c *Checker) root(ctx context.Context) ([]byte, Result) {
	r := Result{Name: "CA root published"}
	cm, err := c.Kube.CoreV1().ConfigMaps(Namespace).Get(ctx, rootCM, metav1.GetOptions{})
	if err != nil {
		r.Detail = err.Error()
		r.Fix = "the control plane publishes ConfigMap " + rootCM + " in every namespace once its CA is loaded; check its logs"
		return nil, r
	}
	root := []byte(cm.Data[rootKey])
	if _, err := identity.ParseCertificates(root); err != nil || !bytes.Contains(root, []byte("BEGIN CERTIFICATE")) {
		r.Detail, r.Fix = fmt.Sprintf("%s/%s key %s holds no certificate", Namespace, rootCM, rootKey), "delete the ConfigMap; the control plane writes it again within a minute"
		return nil, r
	}
	other, err := c.Kube.CoreV1().ConfigMaps(c.ProbeNamespace).Get(ctx, rootCM, metav1.GetOptions{})
	if err != nil || other.Data[rootKey] != string(root) {
		r.Detail = fmt.Sprintf("%s/%s is missing or differs from %s's", c.ProbeNamespace, rootCM, Namespace)
		r.Fix = "wait a minute (the control plane republishes the root every minute), then look at its logs"
		return root, r
	}
	r.OK, r.Detail = true, fmt.Sprintf("%s in %s and %s", rootCM, Namespace, c.ProbeNamespace)
	return root, r
}

func (c *Checker) template(ctx context.Context) Result {
	r := Result{Name: "injection template"}
	text, err := inject.TemplateFromConfigMap(c.Kube)(ctx)
	if err == nil {
		_, err = inject.ParseTemplate(text)
	}
	if err != nil {
		r.Detail = err.Error()
		r.Fix = fmt.Sprintf("fix ConfigMap %s/%s key %s, or delete it to get the default back (the webhook denies injection while it is broken)", inject.ConfigMapNamespace, inject.ConfigMapName, inject.ConfigMapKey)
		return r
	}
	r.OK, r.Detail = true, fmt.Sprintf("ConfigMap %s/%s parses", inject.ConfigMapNamespace, inject.ConfigMapName)
	return r
}

func (c *Checker) webhookConfiguration(ctx context.Context, root []byte) ([]byte, Result) {
	r := Result{Name: "webhook configuration"}
	cfg, err := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, inject.WebhookConfigurationName, metav1.GetOptions{})
	if err != nil {
		r.Detail = err.Error()
		r.Fix = "the control plane creates MutatingWebhookConfiguration " + inject.WebhookConfigurationName + " once its webhook answers; check its logs for \"webhook\""
		return nil, r
	}
	var problems []string
	var caBundle []byte
	for _, w := range cfg.Webhooks {
		if caBundle == nil {
			caBundle = w.ClientConfig.CABundle
		}
		if s := w.ClientConfig.Service; s == nil || s.Name != Service || s.Namespace != Namespace || s.Port == nil || *s.Port != 443 || s.Path == nil || *s.Path != inject.Path {
			problems = append(problems, fmt.Sprintf("entry %s does not call %s.%s:443%s", w.Name, Service, Namespace, inject.Path))
		}
		if root != nil && !bytes.Equal(w.ClientConfig.CABundle, root) {
			problems = append(problems, fmt.Sprintf("entry %s: caBundle is not the CA root", w.Name))
		}
	}
	if len(cfg.Webhooks) != 4 {
		problems = append(problems, fmt.Sprintf("%d entries, want 4", len(cfg.Webhooks)))
	}
	if len(problems) > 0 {
		r.Detail = strings.Join(problems, "; ")
		r.Fix = "restart the control plane (`kubectl -n " + Namespace + " rollout restart deploy/" + Deployment + "`): it rewrites the configuration at start and every minute"
		return caBundle, r
	}
	r.OK, r.Detail = true, fmt.Sprintf("%s: %d entries, caBundle is the CA root, failurePolicy Fail", cfg.Name, len(cfg.Webhooks))
	return caBundle, r
}

func (c *Checker) service(ctx context.Context) Result {
	r := Result{Name: "webhook service"}
	svc, err := c.Kube.CoreV1().Services(Namespace).Get(ctx, Service, metav1.GetOptions{})
	if err != nil {
		r.Detail, r.Fix = err.Error(), "run `meshlab up` again: it applies the control plane's Service"
		return r
	}
	for _, p := range svc.Spec.Ports {
		if p.Port == 443 && p.TargetPort.IntValue() == inject.ListenPort {
			r.OK, r.Detail = true, fmt.Sprintf("%s/%s port 443 -> %d", Namespace, Service, inject.ListenPort)
			return r
		}
	}
	r.Detail, r.Fix = fmt.Sprintf("%s/%s has no port 443 -> %d", Namespace, Service, inject.ListenPort), "run `meshlab up` again with this meshlab version"
	return r
}

func (c *Checker) probe(ctx context.Context, pod string, caBundle []byte) Result {
	r := Result{Name: "webhook reachable, certificate valid"}
	switch {
	case pod == "":
		r.Detail, r.Fix = "skipped: no ready control plane pod", "fix the control plane first"
		return r
	case caBundle == nil:
		r.Detail, r.Fix = "skipped: no caBundle to verify with", "fix the webhook configuration first"
		return r
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	addr, stop, err := c.Forward(pctx, Namespace, pod, inject.ListenPort)
	if err != nil {
		r.Detail, r.Fix = err.Error(), fmt.Sprintf("the control plane pod does not listen on %d; check its logs for \"webhook\"", inject.ListenPort)
		return r
	}
	defer stop()
	if err := inject.Probe(pctx, addr, caBundle, ServerName, c.ProbeNamespace); err != nil {
		r.Detail = err.Error()
		r.Fix = "the API server would fail the same way and, with failurePolicy Fail, refuse pods in injected namespaces: restart the control plane (it reissues its serving certificate and rewrites the caBundle)"
		return r
	}
	r.OK, r.Detail = true, fmt.Sprintf("%s%s answered an AdmissionReview over TLS verified for %s", pod, inject.Path, ServerName)
	return r
}

// PortForward forwards a local port to a pod's port through the API server.
func PortForward(cfg *rest.Config, kc kubernetes.Interface) Forward {
	return func(ctx context.Context, namespace, pod string, port int) (string, func(), error) {
		req := kc.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward")
		transport, upgrader, err := spdy.RoundTripperFor(cfg)
		if err != nil {
			return "", nil, fmt.Errorf("port-forward transport: %w", err)
		}
		var dialer httpstream.Dialer = spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, req.URL())
		if ws, err := portforward.NewSPDYOverWebsocketDialer(req.URL(), cfg); err == nil {
			dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool {
				return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
			})
		}
		stopCh, ready := make(chan struct{}), make(chan struct{})
		var errOut bytes.Buffer
		fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stopCh, ready, io.Discard, &errOut)
		if err != nil {
			return "", nil, fmt.Errorf("port-forward to %s/%s:%d: %w", namespace, pod, port, err)
		}
		done := make(chan error, 1)
		go func() { done <- fw.ForwardPorts() }()
		stop := func() { close(stopCh) }
		select {
		case <-ready:
		case err := <-done:
			return "", nil, fmt.Errorf("port-forward to %s/%s:%d: %v %s", namespace, pod, port, err, strings.TrimSpace(errOut.String()))
		case <-ctx.Done():
			stop()
			return "", nil, fmt.Errorf("port-forward to %s/%s:%d: %w", namespace, pod, port, ctx.Err())
		}
		ports, err := fw.GetPorts()
		if err != nil || len(ports) == 0 {
			stop()
			return "", nil, fmt.Errorf("port-forward to %s/%s:%d: no local port: %v", namespace, pod, port, err)
		}
		return fmt.Sprintf("127.0.0.1:%d", ports[0].Local), stop, nil
	}
}
