package diagnose

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8sfake "k8s.io/client-go/kubernetes/fake"

	"github.com/meshlab/meshlab/api/mesh"
	"github.com/meshlab/meshlab/controlplane/admission"
	"github.com/meshlab/meshlab/controlplane/inject"
	"github.com/meshlab/meshlab/identity/ca"
)

// lab is a cluster as the control plane leaves it, with a real TLS webhook on loopback standing in for
// the control plane pod's 15017.
type lab struct {
	kube      *k8sfake.Clientset
	root      []byte
	webhook   string
	dnsNames  []string
	authority *ca.CA
	// permissive makes the validating webhook admit everything (a webhook that answers but does not validate).
	permissive atomic.Bool
}

func newLab(t *testing.T, dnsNames ...string) *lab {
	t.Helper()
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	root := authority.RootPEM()
	objs := []runtime.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: Deployment, Namespace: Namespace}, Status: appsv1.DeploymentStatus{ReadyReplicas: 1}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "istiod-abc", Namespace: Namespace, Labels: map[string]string{"app": Deployment}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: rootCM, Namespace: Namespace}, Data: map[string]string{rootKey: string(root)}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: rootCM, Namespace: "default"}, Data: map[string]string{rootKey: string(root)}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		inject.TemplateConfigMap(""),
		inject.WebhookConfiguration(root, Service, Namespace),
		admission.WebhookConfiguration(root, Service, Namespace),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: Service, Namespace: Namespace}, Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{Name: "https-webhook", Port: 443, TargetPort: intstr.FromInt32(inject.ListenPort)}}}},
	}
	l := &lab{kube: k8sfake.NewSimpleClientset(objs...), root: root, authority: authority}
	if len(dnsNames) == 0 {
		dnsNames = []string{ServerName}
	}
	svid, err := authority.IssueServing(mesh.ControlPlaneID, dnsNames, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{svid.Certificates[0].Raw}, PrivateKey: svid.PrivateKey}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(inject.Path, inject.Handler(inject.Options{Values: inject.Values{ProxyImage: "meshlab:test"}, NamespaceLabels: inject.NamespaceLabelsFromClient(l.kube)}))
	validate := admission.Handler(admission.Options{})
	mux.HandleFunc(admission.Path, func(w http.ResponseWriter, r *http.Request) {
		if !l.permissive.Load() {
			validate.ServeHTTP(w, r)
			return
		}
		var ar admissionv1.AdmissionReview
		_ = json.NewDecoder(r.Body).Decode(&ar)
		_ = json.NewEncoder(w).Encode(admissionv1.AdmissionReview{TypeMeta: ar.TypeMeta,
			Response: &admissionv1.AdmissionResponse{UID: ar.Request.UID, Allowed: true}})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	l.webhook = ln.Addr().String()
	return l
}

func (l *lab) checker() *Checker {
	return &Checker{Kube: l.kube, Forward: func(_ context.Context, ns, pod string, port int) (string, func(), error) {
		if ns != Namespace || port != inject.ListenPort {
			return "", nil, &net.AddrError{Err: "unexpected forward", Addr: ns + "/" + pod}
		}
		return l.webhook, func() {}, nil
	}}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		dnsNames []string
		breakIt  func(l *lab)
		failing  []string // names of the checks that must fail; all others must pass
		detail   string
	}{
		{name: "healthy lab"},
		{name: "control plane not ready", breakIt: func(l *lab) {
			l.kube.AppsV1().Deployments(Namespace).Delete(ctx, Deployment, metav1.DeleteOptions{})
		}, failing: []string{"control plane ready", "webhook reachable, certificate valid", "validating webhook"}, detail: "not found"},
		{name: "webhook certificate without the Service's DNS name", dnsNames: []string{"elsewhere.example"},
			failing: []string{"webhook reachable, certificate valid", "validating webhook"}, detail: "certificate is valid for elsewhere.example"},
		{name: "stale caBundle", breakIt: func(l *lab) {
			other, _ := ca.New()
			l.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, inject.WebhookConfiguration(other.RootPEM(), Service, Namespace), metav1.UpdateOptions{})
		}, failing: []string{"webhook configuration", "webhook reachable, certificate valid"}, detail: "caBundle is not the CA root"},
		{name: "no webhook configuration", breakIt: func(l *lab) {
			l.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, inject.WebhookConfigurationName, metav1.DeleteOptions{})
		}, failing: []string{"webhook configuration", "webhook reachable, certificate valid"}},
		{name: "no validating webhook configuration", breakIt: func(l *lab) {
			l.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, admission.ConfigurationName(Namespace), metav1.DeleteOptions{})
		}, failing: []string{"validating webhook"}, detail: admission.ConfigurationName(Namespace)},
		{name: "stale validating caBundle", breakIt: func(l *lab) {
			other, _ := ca.New()
			l.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, admission.WebhookConfiguration(other.RootPEM(), Service, Namespace), metav1.UpdateOptions{})
		}, failing: []string{"validating webhook"}, detail: "caBundle is not the CA root"},
		{name: "validating webhook admits everything", breakIt: func(l *lab) {
			l.permissive.Store(true)
		}, failing: []string{"validating webhook"}, detail: "an invalid VirtualService was admitted"},
		{name: "broken template", breakIt: func(l *lab) {
			cm := inject.TemplateConfigMap("{{ .Nope ")
			l.kube.CoreV1().ConfigMaps(Namespace).Update(ctx, cm, metav1.UpdateOptions{})
		}, failing: []string{"injection template"}},
		{name: "root not published in default", breakIt: func(l *lab) {
			l.kube.CoreV1().ConfigMaps("default").Delete(ctx, rootCM, metav1.DeleteOptions{})
		}, failing: []string{"CA root published"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, tc.dnsNames...)
			if tc.breakIt != nil {
				tc.breakIt(l)
			}
			results := l.checker().Run(ctx)
			var out bytes.Buffer
			problems := 0
			for _, r := range results {
				fmt.Fprintf(&out, "%s ok=%v: %s\n", r.Name, r.OK, r.Detail)
				if !r.OK {
					problems++
				}
			}
			if problems != len(tc.failing) {
				t.Errorf("%d problems, want %d:\n%s", problems, len(tc.failing), out.String())
			}
			for _, r := range results {
				want := true
				for _, f := range tc.failing {
					if r.Name == f {
						want = false
					}
				}
				if r.OK != want {
					t.Errorf("check %q OK = %v, want %v (%s)", r.Name, r.OK, want, r.Detail)
				}
				if !r.OK && r.Fix == "" {
					t.Errorf("check %q failed without saying what to do", r.Name)
				}
			}
			if tc.detail != "" && !strings.Contains(out.String(), tc.detail) {
				t.Errorf("output lacks %q:\n%s", tc.detail, out.String())
			}
		})
	}
}
