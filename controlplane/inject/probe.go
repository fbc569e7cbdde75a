package inject

import (
	"context"

	"github.com/meshlab/meshlab/controlplane/webhook"

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
	pod := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"meshlab-probe-"},"spec":{"containers":[{"name":"probe","image":"probe"}]}}`)
	dryRun := true
	_, err := webhook.Ask(ctx, "the injection webhook", addr, Path, caBundle, serverName, &admissionv1.AdmissionRequest{
		UID: types.UID("meshlab-probe"), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: namespace, Operation: admissionv1.Create, DryRun: &dryRun,
		Object: runtime.RawExtension{Raw: pod},
	})
	return err
}
