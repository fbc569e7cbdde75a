// Package admission is the control plane's validating admission webhook, istiod's
// (pkg/webhooks/validation/server): the API server sends it every create and update of Istio and Gateway
// API config, and it rejects what Istio rejects, before the object is stored — so a negative weight fails
// `kubectl apply` instead of becoming a status condition later.
//
//   - networking.istio.io and security.istio.io kinds are checked with controlplane/validation's rules
//     (istiod's webhook rules); kinds it has no rules for (Sidecar, EnvoyFilter...) are admitted.
//   - Every kind is then checked against what meshlab implements (validation.CheckCoverage, issue #12):
//     a field whose being ignored would mislead (an AuthorizationPolicy condition it cannot enforce, a
//     redirect...) is denied with "meshlab does not implement <Kind> <field>"; one that degrades gracefully
//     is admitted with that warning; a kind meshlab does not act on at all (ServiceEntry, Sidecar,
//     PeerAuthentication, GRPCRoute...) is admitted with "meshlab does not implement <Kind>; it is stored
//     but has no effect".
//   - gateway.networking.k8s.io kinds are checked with the OpenAPI and CEL rules of the Gateway API CRDs
//     meshlab installs (controlplane/crds), by the API server's own validators. The API server already
//     applied the installed CRD's schema before calling the webhook, so this only matters where the
//     installed CRDs are older or looser than meshlab's; unknown fields are left to the installed CRD
//     (an experimental-channel CRD has fields the standard one lacks). Istio itself has no webhook rules
//     for Gateway API: its status conditions report what the CRD admits but the controller refuses.
//
// Handler serves the webhook at Path on the control plane's HTTPS listener (the injector's, port 15017);
// WebhookConfiguration is the ValidatingWebhookConfiguration the control plane registers for it.
package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"

	"github.com/meshlab/meshlab/controlplane/crds"
	"github.com/meshlab/meshlab/controlplane/validation"
)

// Path is where the control plane serves the webhook, Istio's.
const Path = "/validate"

// maxBody bounds a review: the API server's own limit on an object is 3 MiB.
const maxBody = 6 << 20

// Options configure the handler.
type Options struct {
	// Logf logs one line per rejection and per malformed review (nil: silent).
	Logf func(format string, args ...any)
}

// Handler returns the validating webhook, to be served at Path over TLS.
func Handler(opts Options) http.Handler {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return &handler{opts: opts}
}

type handler struct{ opts Options }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "the validating webhook only takes POSTed AdmissionReviews", http.StatusMethodNotAllowed)
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		http.Error(w, fmt.Sprintf("content type %q, want application/json", r.Header.Get("Content-Type")), http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		http.Error(w, "reading the AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxBody {
		http.Error(w, "AdmissionReview too large", http.StatusRequestEntityTooLarge)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil ||
		review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" {
		if err == nil {
			err = errors.New("want an admission.k8s.io/v1 AdmissionReview with a request")
		}
		h.opts.Logf("validation: malformed AdmissionReview: %v", err)
		http.Error(w, "malformed AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	resp := h.admit(r.Context(), review.Request)
	resp.UID = review.Request.UID
	out, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// admit decides on one request.
func (h *handler) admit(ctx context.Context, req *admissionv1.AdmissionRequest) (resp *admissionv1.AdmissionResponse) {
	defer func() {
		if r := recover(); r != nil {
			h.opts.Logf("validation: internal error on %s %s/%s: %v", req.Kind.Kind, req.Namespace, req.Name, r)
			resp = deny(http.StatusInternalServerError, fmt.Sprintf("internal error in the validating webhook: %v", r))
		}
	}()
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update:
	default:
		return allow()
	}
	var (
		errs  field.ErrorList
		warns []string
	)
	switch req.Kind.Group {
	case crds.NetworkingGroup, crds.SecurityGroup:
		_, ws, err := validation.ValidateYAML(req.Object.Raw)
		var invalid *validation.Error
		switch {
		case errors.Is(err, validation.ErrUnsupported):
			return allowUnimplemented(req)
		case errors.As(err, &invalid):
			errs = invalid.Errs
		case err != nil:
			return deny(http.StatusBadRequest, "error decoding configuration: "+err.Error())
		}
		warns = ws.Strings()
	case crds.GatewayGroup:
		s, err := crds.SchemaFor(req.Kind.Group, req.Kind.Kind, req.Kind.Version)
		if err != nil {
			return allowUnimplemented(req) // a kind or version meshlab does not install
		}
		var obj map[string]any
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, &obj); err != nil || obj == nil {
			return deny(http.StatusBadRequest, fmt.Sprintf("error decoding configuration: %v", err))
		}
		for _, e := range s.Check(ctx, obj) {
			if !strings.HasPrefix(e.Detail, "unknown field ") {
				errs = append(errs, e)
			}
		}
	default:
		return allow()
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	// What meshlab does not implement: rejected where ignoring it would mislead, else a warning.
	findings, err := validation.CheckCoverageJSON(req.Object.Raw)
	if err != nil {
		return deny(http.StatusBadRequest, "error decoding configuration: "+err.Error())
	}
	rejected, warned := validation.SplitFindings(findings)
	for _, f := range warned {
		warns = append(warns, f.String())
	}
	for _, f := range rejected {
		msgs = append(msgs, f.String())
	}
	if len(msgs) == 0 {
		r := allow()
		r.Warnings = warns
		return r
	}
	msg := "configuration is invalid: " + strings.Join(msgs, "; ")
	h.opts.Logf("validation: denied %s %s/%s: %s", req.Kind.Kind, req.Namespace, req.Name, msg)
	r := deny(http.StatusUnprocessableEntity, msg)
	r.Warnings = warns
	return r
}

func allow() *admissionv1.AdmissionResponse { return &admissionv1.AdmissionResponse{Allowed: true} }

// allowUnimplemented admits an object of a kind meshlab has no rules for, with a warning when it is a kind
// meshlab does not act on (Sidecar, EnvoyFilter, GRPCRoute...).
func allowUnimplemented(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	r := allow()
	if validation.UnimplementedKinds[schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}] {
		r.Warnings = []string{validation.UnimplementedKindMessage(req.Kind.Kind)}
	}
	return r
}

func deny(code int32, msg string) *admissionv1.AdmissionResponse {
	reason := metav1.StatusReasonInvalid
	switch code {
	case http.StatusBadRequest:
		reason = metav1.StatusReasonBadRequest
	case http.StatusInternalServerError:
		reason = metav1.StatusReasonInternalError
	}
	return &admissionv1.AdmissionResponse{Result: &metav1.Status{Status: metav1.StatusFailure, Code: code, Message: msg, Reason: reason}}
}
