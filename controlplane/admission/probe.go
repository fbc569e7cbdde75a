package admission

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// probeObject is a VirtualService every Istio rejects (a negative weight).
const probeObject = `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"meshlab-probe","namespace":"default"},` +
	`"spec":{"hosts":["probe"],"http":[{"route":[{"destination":{"host":"probe"},"weight":-1}]}]}}`

// Probe calls the webhook at addr (host:port) as the API server does — TLS verified against caBundle for
// serverName — with a dry-run create of an invalid VirtualService, and succeeds only when it is denied:
// like istiod, which fails closed only once its webhook is seen rejecting bad config, the control plane
// registers the webhook only after this passes.
func Probe(ctx context.Context, addr string, caBundle []byte, serverName string) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caBundle) {
		return errors.New("probing the validating webhook: the caBundle holds no PEM certificate")
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12},
	}}
	uid := types.UID("meshlab-validation-probe")
	dryRun := true
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:      uid,
			Kind:     metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"},
			Resource: metav1.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"},
			Name:     "meshlab-probe", Namespace: "default", Operation: admissionv1.Create, DryRun: &dryRun,
			Object: runtime.RawExtension{Raw: []byte(probeObject)},
		},
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+Path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probing the validating webhook at %s as %s: %w", addr, serverName, err)
	}
	defer resp.Body.Close()
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil || ar.Response == nil {
		return fmt.Errorf("probing the validating webhook at %s: %s, not an AdmissionReview answer (%v)", addr, resp.Status, err)
	}
	if ar.Response.UID != uid {
		return fmt.Errorf("probing the validating webhook at %s: answered for UID %q, not %q", addr, ar.Response.UID, uid)
	}
	if ar.Response.Allowed {
		return fmt.Errorf("probing the validating webhook at %s: an invalid VirtualService was admitted", addr)
	}
	return nil
}
