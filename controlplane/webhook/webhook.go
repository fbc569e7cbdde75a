// Package webhook holds what the control plane's admission webhooks (sidecar injection in
// controlplane/inject, validation in controlplane/admission) share: asking one of them a question the way
// the API server does, to check it before registering it and in `meshlab check`.
package webhook

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
)

// Ask posts an AdmissionReview holding req to https://addr+path, verifying the server's certificate
// against caBundle for serverName (service.namespace.svc: a certificate without that DNS name fails here
// as it would for the API server), and returns the answer, checked to be for req's UID. what names the
// webhook in errors ("the injection webhook").
func Ask(ctx context.Context, what, addr, path string, caBundle []byte, serverName string, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caBundle) {
		return nil, fmt.Errorf("probing %s: the caBundle holds no PEM certificate", what)
	}
	if req == nil || req.UID == "" {
		return nil, errors.New("webhook.Ask: a request with a UID is required")
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12},
	}}
	defer client.CloseIdleConnections()
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("probing %s at %s as %s: %w", what, addr, serverName, err)
	}
	defer resp.Body.Close()
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil || ar.Response == nil {
		return nil, fmt.Errorf("probing %s at %s: %s, not an AdmissionReview answer (%v)", what, addr, resp.Status, err)
	}
	if ar.Response.UID != req.UID {
		return nil, fmt.Errorf("probing %s at %s: answered for UID %q, not %q", what, addr, ar.Response.UID, req.UID)
	}
	return ar.Response, nil
}
