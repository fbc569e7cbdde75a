package admission

import (
	"context"
	"fmt"

	"github.com/meshlab/meshlab/controlplane/webhook"

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
	dryRun := true
	resp, err := webhook.Ask(ctx, "the validating webhook", addr, Path, caBundle, serverName, &admissionv1.AdmissionRequest{
		UID:      types.UID("meshlab-validation-probe"),
		Kind:     metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"},
		Resource: metav1.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"},
		Name:     "meshlab-probe", Namespace: "default", Operation: admissionv1.Create, DryRun: &dryRun,
		Object: runtime.RawExtension{Raw: []byte(probeObject)},
	})
	if err != nil {
		return err
	}
	if resp.Allowed {
		return fmt.Errorf("probing the validating webhook at %s: an invalid VirtualService was admitted", addr)
	}
	return nil
}
