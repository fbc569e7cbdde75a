package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/meshlab/meshlab/controlplane/admission"
	"github.com/meshlab/meshlab/controlplane/inject"
	"github.com/meshlab/meshlab/identity/ca"
)

// Defaults of the injection webhook.
const (
	DefaultWebhookAddr = ":15017" // inject.ListenPort; the Service maps port 443 to it
	// WebhookCertTTL is the serving certificate's lifetime; it is renewed after half of it.
	WebhookCertTTL = 24 * time.Hour
	// WebhookResync is how often the MutatingWebhookConfiguration is checked and repaired.
	WebhookResync = time.Minute
)

// WebhookOptions configure ServeWebhook.
type WebhookOptions struct {
	// Addr is the HTTPS listener (default DefaultWebhookAddr).
	Addr string
	// Values fill the injection template; Values.ProxyImage (the control plane's own image) is required.
	Values inject.Values
	// Service is the control plane's Service in Options.Namespace that the API server calls on port 443
	// (default ServiceAccount, istiod).
	Service string
	// CertTTL is the serving certificate's lifetime (default WebhookCertTTL).
	CertTTL time.Duration
}

// WebhookDNSNames are the names the API server may verify the webhook's certificate against.
func WebhookDNSNames(service, namespace string) []string {
	return []string{service + "." + namespace + ".svc", service + "." + namespace + ".svc.cluster.local"}
}

// ServeWebhook serves the sidecar injection webhook (inject.Handler at inject.Path) and the validating
// webhook (admission.Handler at admission.Path) on one HTTPS listener, as istiod does, until ctx ends. The
// order matters because both configurations say failurePolicy Fail: a configuration pointing at a webhook
// that does not answer blocks pod creation in every selected namespace, or every write of Istio and
// Gateway API config. So ServeWebhook waits for the CA (Run loads it), creates the template ConfigMap if it is
// absent, starts the listener with a serving certificate from the CA (DNS names WebhookDNSNames, renewed
// after half its lifetime), checks its own answers with inject.Probe and admission.Probe (which must see an
// invalid VirtualService denied), and only then creates or updates the MutatingWebhookConfiguration and
// the ValidatingWebhookConfiguration with the CA root as caBundle. Both fail closed. Every WebhookResync
// it repairs them (deleted, edited or with a stale caBundle).
func (s *Server) ServeWebhook(ctx context.Context, o WebhookOptions) error {
	if o.Values.ProxyImage == "" {
		return errors.New("injection webhook: no proxy image (the control plane's --image)")
	}
	if o.Addr == "" {
		o.Addr = DefaultWebhookAddr
	}
	if o.Service == "" {
		o.Service = ServiceAccount
	}
	if o.CertTTL <= 0 {
		o.CertTTL = WebhookCertTTL
	}
	c, err := s.waitForCA(ctx)
	if err != nil {
		return err
	}
	kc := s.clients.Kube
	if err := retryUntil(ctx, func() error {
		err := ensureTemplateConfigMap(ctx, kc)
		if err != nil {
			s.opts.Logf("controlplane: %v (retrying)", err)
		}
		return err
	}); err != nil {
		return err
	}

	id, err := spiffeid.FromSegments(c.TrustDomain(), "ns", s.opts.Namespace, "sa", ServiceAccount)
	if err != nil {
		return err
	}
	dnsNames := WebhookDNSNames(o.Service, s.opts.Namespace)
	certs := &servingCert{ca: c, id: id, dnsNames: dnsNames, ttl: o.CertTTL}
	if _, err := certs.get(); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(inject.Path, inject.Handler(inject.Options{
		Values:          o.Values,
		Template:        inject.TemplateFromConfigMap(kc),
		NamespaceLabels: inject.NamespaceLabelsFromClient(kc),
		Logf:            s.opts.Logf,
	}))
	mux.Handle(admission.Path, admission.Handler(admission.Options{Logf: s.opts.Logf}))
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ready") })
	l, err := s.listen("webhook", o.Addr)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certs.get() },
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- serveErr("webhook", hs.ServeTLS(l, "", "")) }()
	defer hs.Close()

	// Only a webhook that answers as the API server will call it may be registered.
	self := net.JoinHostPort("127.0.0.1", portOf(l.Addr()))
	if err := retryUntil(ctx, func() error {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := inject.Probe(pctx, self, c.RootPEM(), dnsNames[0], s.opts.Namespace)
		if err == nil {
			err = admission.Probe(pctx, self, c.RootPEM(), dnsNames[0])
		}
		if err != nil {
			s.opts.Logf("controlplane: webhooks not answering yet: %v", err)
		}
		return err
	}); err != nil {
		return err
	}
	s.opts.Logf("controlplane: injection and validation webhooks serving on %s as %s", l.Addr(), dnsNames[0])

	register := func() {
		if err := EnsureWebhookConfiguration(ctx, kc, c.RootPEM(), o.Service, s.opts.Namespace); err != nil {
			s.opts.Logf("controlplane: %v", err)
		}
		if err := EnsureValidatingWebhookConfiguration(ctx, kc, c.RootPEM(), o.Service, s.opts.Namespace); err != nil {
			s.opts.Logf("controlplane: %v", err)
		}
	}
	register()
	t := time.NewTicker(WebhookResync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case <-t.C:
			register()
		}
	}
}

// waitForCA returns the CA once Run has loaded it.
func (s *Server) waitForCA(ctx context.Context) (*ca.CA, error) {
	for {
		if c := s.CA(); c != nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

// ensureTemplateConfigMap creates the injection template ConfigMap with the default template when it does
// not exist; an existing one (perhaps edited by the user) is left alone.
func ensureTemplateConfigMap(ctx context.Context, kc kubernetes.Interface) error {
	cms := kc.CoreV1().ConfigMaps(inject.ConfigMapNamespace)
	_, err := cms.Get(ctx, inject.ConfigMapName, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading ConfigMap %s/%s: %w", inject.ConfigMapNamespace, inject.ConfigMapName, err)
	}
	_, err = cms.Create(ctx, inject.TemplateConfigMap(""), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ConfigMap %s/%s: %w", inject.ConfigMapNamespace, inject.ConfigMapName, err)
	}
	return nil
}

// EnsureWebhookConfiguration creates the MutatingWebhookConfiguration (inject.WebhookConfiguration) or
// brings an existing one back to it; caPEM is every entry's caBundle, compared and repaired with the rest.
func EnsureWebhookConfiguration(ctx context.Context, kc kubernetes.Interface, caPEM []byte, service, namespace string) error {
	want := inject.WebhookConfiguration(caPEM, service, namespace)
	api := kc.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cur, err := api.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := api.Create(ctx, want, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating MutatingWebhookConfiguration %s: %w", want.Name, err)
		}
	case err != nil:
		return fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", want.Name, err)
	case !sameWebhooks(cur, want):
		cur.Labels, cur.Webhooks = want.Labels, want.Webhooks
		if _, err := api.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating MutatingWebhookConfiguration %s: %w", want.Name, err)
		}
	}
	return nil
}

// EnsureValidatingWebhookConfiguration creates the ValidatingWebhookConfiguration
// (admission.WebhookConfiguration) or brings an existing one back to it, caBundle included, as
// EnsureWebhookConfiguration does for injection.
func EnsureValidatingWebhookConfiguration(ctx context.Context, kc kubernetes.Interface, caPEM []byte, service, namespace string) error {
	want := admission.WebhookConfiguration(caPEM, service, namespace)
	api := kc.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	cur, err := api.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := api.Create(ctx, want, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating ValidatingWebhookConfiguration %s: %w", want.Name, err)
		}
	case err != nil:
		return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", want.Name, err)
	case !sameValidatingWebhooks(cur, want):
		cur.Labels, cur.Webhooks = want.Labels, want.Webhooks
		if _, err := api.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating ValidatingWebhookConfiguration %s: %w", want.Name, err)
		}
	}
	return nil
}

// sameValidatingWebhooks compares what the control plane sets, by value: the API server defaults the
// rest (selectors to {}, matchPolicy, rule scope), so those are not compared.
func sameValidatingWebhooks(cur, want *admissionregistrationv1.ValidatingWebhookConfiguration) bool {
	if len(cur.Webhooks) != len(want.Webhooks) {
		return false
	}
	svc := func(r *admissionregistrationv1.ServiceReference) string {
		if r == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%s/%s:%d%s", r.Namespace, r.Name, ptr.Deref(r.Port, 443), ptr.Deref(r.Path, ""))
	}
	rules := func(rs []admissionregistrationv1.RuleWithOperations) string {
		var b strings.Builder
		for _, r := range rs {
			fmt.Fprintf(&b, "%v %v %v %v;", r.Operations, r.APIGroups, r.APIVersions, r.Resources)
		}
		return b.String()
	}
	for i := range cur.Webhooks {
		a, b := cur.Webhooks[i], want.Webhooks[i]
		if a.Name != b.Name || !bytes.Equal(a.ClientConfig.CABundle, b.ClientConfig.CABundle) ||
			svc(a.ClientConfig.Service) != svc(b.ClientConfig.Service) || rules(a.Rules) != rules(b.Rules) ||
			ptr.Deref(a.FailurePolicy, "") != ptr.Deref(b.FailurePolicy, "") ||
			ptr.Deref(a.SideEffects, "") != ptr.Deref(b.SideEffects, "") ||
			!slices.Equal(a.AdmissionReviewVersions, b.AdmissionReviewVersions) {
			return false
		}
	}
	return true
}

// sameWebhooks compares what the control plane owns: names, selectors, rules, client config.
func sameWebhooks(cur, want *admissionregistrationv1.MutatingWebhookConfiguration) bool {
	if len(cur.Webhooks) != len(want.Webhooks) {
		return false
	}
	for i := range cur.Webhooks {
		a, b := cur.Webhooks[i], want.Webhooks[i]
		if a.Name != b.Name || string(a.ClientConfig.CABundle) != string(b.ClientConfig.CABundle) ||
			fmt.Sprint(a.ClientConfig.Service) != fmt.Sprint(b.ClientConfig.Service) ||
			a.NamespaceSelector.String() != b.NamespaceSelector.String() ||
			a.ObjectSelector.String() != b.ObjectSelector.String() ||
			fmt.Sprint(a.Rules) != fmt.Sprint(b.Rules) || *a.FailurePolicy != *b.FailurePolicy {
			return false
		}
	}
	return true
}

// servingCert is the webhook's certificate, reissued by the CA once half its lifetime has passed.
type servingCert struct {
	ca       *ca.CA
	id       spiffeid.ID
	dnsNames []string
	ttl      time.Duration

	mu      sync.Mutex
	cert    *tls.Certificate
	renewAt time.Time
}

func (c *servingCert) get() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert != nil && time.Now().Before(c.renewAt) {
		return c.cert, nil
	}
	svid, err := c.ca.IssueServing(c.id, c.dnsNames, c.ttl)
	if err != nil {
		if c.cert != nil && time.Now().Before(c.cert.Leaf.NotAfter) {
			return c.cert, nil // keep serving the old one while it is valid
		}
		return nil, fmt.Errorf("issuing the webhook serving certificate: %w", err)
	}
	leaf := svid.Certificates[0]
	cert := &tls.Certificate{PrivateKey: svid.PrivateKey, Leaf: leaf}
	for _, x := range svid.Certificates {
		cert.Certificate = append(cert.Certificate, x.Raw)
	}
	c.cert = cert
	c.renewAt = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
	return cert, nil
}
