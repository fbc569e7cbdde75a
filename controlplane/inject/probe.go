package inject

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

// ListenPort is where the control plane serves the webhook (istiod's 15017); the Service maps port 443 to it.
const ListenPort = 15017

// Probe calls the webhook at addr (host:port) the way the API server does: TLS verified against caBundle for
// serverName (service.namespace.svc; a certificate without that DNS name fails here as it would there), then
// an AdmissionReview for a throwaway pod in namespace, which must come back answered with the same UID.
// `meshlab check` can use it to report a webhook that is unreachable or has the wrong certificate before pod
// creation fails on it.
func Probe(ctx context.Context, addr string, caBundle []byte, serverName, namespace string) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caBundle) {
		return errors.New("probing the injection webhook: the caBundle holds no PEM certificate")
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12},
	}}
	pod := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"meshlab-probe-"},"spec":{"containers":[{"name":"probe","image":"probe"}]}}`)
	uid := types.UID("meshlab-probe")
	dryRun := true
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: uid, Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: namespace, Operation: admissionv1.Create, DryRun: &dryRun,
			Object: runtime.RawExtension{Raw: pod},
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
		return fmt.Errorf("probing the injection webhook at %s as %s: %w", addr, serverName, err)
	}
	defer resp.Body.Close()
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil || ar.Response == nil {
		return fmt.Errorf("probing the injection webhook at %s: %s, not an AdmissionReview answer (%v)", addr, resp.Status, err)
	}
	if ar.Response.UID != uid {
		return fmt.Errorf("probing the injection webhook at %s: answered for UID %q, not %q", addr, ar.Response.UID, uid)
	}
	return nil
}
