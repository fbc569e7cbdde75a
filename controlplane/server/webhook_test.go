package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/meshlab/meshlab/controlplane/admission"
	"github.com/meshlab/meshlab/controlplane/inject"
)

// TestServeWebhook runs the control plane with its webhook over fake clientsets and checks the order of
// things the API server depends on: the configuration appears only once the HTTPS listener answers, its
// caBundle verifies the serving certificate by the Service's DNS name, and a pod in an injected namespace
// comes back with the sidecar.
func TestServeWebhook(t *testing.T) {
	f := newFakeCluster(t, `
apiVersion: v1
kind: Namespace
metadata: {name: injected, labels: {istio-injection: enabled}}
`, "bookinfo.yaml")
	s := startServer(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.ServeWebhook(ctx, WebhookOptions{Addr: "127.0.0.1:0", Values: inject.Values{ProxyImage: "meshlab:test"}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeWebhook() = %v", err)
		}
	})

	api := f.kube.AdmissionregistrationV1().MutatingWebhookConfigurations()
	waitFor(t, "the MutatingWebhookConfiguration", 10*time.Second, func() bool {
		_, err := api.Get(ctx, inject.WebhookConfigurationName, metav1.GetOptions{})
		return err == nil
	})
	// When the configuration exists, the listener has answered a probe: its address is set.
	addr := s.Addr("webhook")
	if addr == nil {
		t.Fatal("webhook configuration created before the listener was bound")
	}
	cfg, _ := api.Get(ctx, inject.WebhookConfigurationName, metav1.GetOptions{})
	if len(cfg.Webhooks) != 4 {
		t.Fatalf("webhooks = %d, want Istio's 4", len(cfg.Webhooks))
	}
	root := s.CA().RootPEM()
	for _, w := range cfg.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, root) {
			t.Errorf("webhook %s caBundle is not the CA root", w.Name)
		}
		if svc := w.ClientConfig.Service; svc == nil || svc.Name != "istiod" || svc.Namespace != DefaultNamespace || *svc.Port != 443 {
			t.Errorf("webhook %s service = %+v, want istiod.istio-system:443", w.Name, svc)
		}
	}
	if _, err := f.kube.CoreV1().ConfigMaps(inject.ConfigMapNamespace).Get(ctx, inject.ConfigMapName, metav1.GetOptions{}); err != nil {
		t.Errorf("template ConfigMap: %v", err)
	}

	hostPort := "127.0.0.1:" + portOf(addr)
	for _, tc := range []struct {
		name, serverName string
		wantErr          string
	}{
		{"by the Service's DNS name", "istiod.istio-system.svc", ""},
		{"by the long DNS name", "istiod.istio-system.svc.cluster.local", ""},
		{"by a name the certificate lacks", "other.istio-system.svc", "certificate is valid for"},
	} {
		err := inject.Probe(ctx, hostPort, root, tc.serverName, "default")
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("Probe(%s) = %v, want error containing %q", tc.name, err, tc.wantErr)
		}
	}

	// A pod in the injected namespace gets the init container and the proxy, with the control plane's image.
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"app","namespace":"injected"},"spec":{"containers":[{"name":"app","image":"app"}]}}`
	resp := review(t, hostPort, root, "injected", pod)
	if !resp.Allowed || resp.PatchType == nil {
		t.Fatalf("response = %+v, want allowed with a patch", resp)
	}
	patch := string(resp.Patch)
	for _, want := range []string{`"name":"istio-proxy"`, `"name":"istio-init"`, `"image":"meshlab:test"`} {
		if !strings.Contains(patch, want) {
			t.Errorf("patch lacks %s:\n%s", want, patch)
		}
	}

	// The validating webhook: registered as Istio's istio-validator-<namespace>, trusting the same root, and
	// rejecting a negative weight on the same listener.
	vapi := f.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	vname := admission.ConfigurationName(DefaultNamespace)
	waitFor(t, "the ValidatingWebhookConfiguration", 10*time.Second, func() bool {
		_, err := vapi.Get(ctx, vname, metav1.GetOptions{})
		return err == nil
	})
	vcfg, _ := vapi.Get(ctx, vname, metav1.GetOptions{})
	if len(vcfg.Webhooks) != 1 || !bytes.Equal(vcfg.Webhooks[0].ClientConfig.CABundle, root) ||
		*vcfg.Webhooks[0].ClientConfig.Service.Path != admission.Path || vcfg.Webhooks[0].ClientConfig.Service.Namespace != DefaultNamespace {
		t.Errorf("ValidatingWebhookConfiguration = %+v", vcfg.Webhooks)
	}
	if err := admission.Probe(ctx, hostPort, root, WebhookDNSNames(ServiceAccount, DefaultNamespace)[0]); err != nil {
		t.Errorf("the validating webhook on the injector's listener: %v", err)
	}
	vcfg.Webhooks[0].ClientConfig.CABundle = []byte("stale")
	if _, err := vapi.Update(ctx, vcfg, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureValidatingWebhookConfiguration(ctx, f.kube, root, ServiceAccount, DefaultNamespace); err != nil {
		t.Fatal(err)
	}
	if vcfg, _ = vapi.Get(ctx, vname, metav1.GetOptions{}); !bytes.Equal(vcfg.Webhooks[0].ClientConfig.CABundle, root) {
		t.Error("stale validating caBundle not repaired")
	}
	if err := vapi.Delete(ctx, vname, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureValidatingWebhookConfiguration(ctx, f.kube, root, ServiceAccount, DefaultNamespace); err != nil {
		t.Fatal(err)
	}
	if _, err := vapi.Get(ctx, vname, metav1.GetOptions{}); err != nil {
		t.Errorf("deleted ValidatingWebhookConfiguration not recreated: %v", err)
	}

	// A deleted configuration comes back, and a stale caBundle is repaired.
	if err := api.Delete(ctx, inject.WebhookConfigurationName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureWebhookConfiguration(ctx, f.kube, root, "istiod", DefaultNamespace); err != nil {
		t.Fatalf("EnsureWebhookConfiguration() = %v", err)
	}
	cfg, err := api.Get(ctx, inject.WebhookConfigurationName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		t.Fatal("configuration not recreated")
	}
	cfg.Webhooks[2].ClientConfig.CABundle = []byte("stale")
	if _, err := api.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureWebhookConfiguration(ctx, f.kube, root, "istiod", DefaultNamespace); err != nil {
		t.Fatal(err)
	}
	cfg, _ = api.Get(ctx, inject.WebhookConfigurationName, metav1.GetOptions{})
	if !bytes.Equal(cfg.Webhooks[2].ClientConfig.CABundle, root) {
		t.Error("stale caBundle not repaired")
	}
}

func review(t *testing.T, addr string, rootPEM []byte, ns, pod string) *admissionv1.AdmissionResponse {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rootPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, ServerName: "istiod.istio-system.svc"}}}
	body, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "u1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: ns, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(pod)},
		},
	})
	resp, err := hc.Post("https://"+addr+inject.Path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil || ar.Response == nil {
		t.Fatalf("decoding AdmissionReview: %v (%s)", err, resp.Status)
	}
	return ar.Response
}
