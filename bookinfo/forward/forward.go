// Package forward lists the headers bookinfo services copy from an incoming request to the requests they
// make, so that the mesh can stitch spans into one trace and route on the caller's identity (end-user,
// cookie, authorization). The list is the union of what upstream's productpage, details and reviews keep
// "in sync", plus the single-header b3 form.
package forward

import "net/http"

// Headers are the propagated headers, lower-case as upstream spells them.
var Headers = []string{
	// Istio's request id, used in access logs and for consistent sampling.
	"x-request-id",
	// Zipkin B3, multi-header and single-header forms.
	"x-b3-traceid",
	"x-b3-spanid",
	"x-b3-parentspanid",
	"x-b3-sampled",
	"x-b3-flags",
	"b3",
	// W3C trace context.
	"traceparent",
	"tracestate",
	// Other tracers upstream forwards: Lightstep, Datadog, Cloud Trace, gRPC binary, SkyWalking.
	"x-ot-span-context",
	"x-datadog-trace-id",
	"x-datadog-parent-id",
	"x-datadog-sampling-priority",
	"x-cloud-trace-context",
	"grpc-trace-bin",
	"sw8",
	// Application and session headers that routing and policy match on.
	"end-user",
	"user-agent",
	"cookie",
	"authorization",
	"jwt",
}

// Copy sets on dst every propagated header present in src, keeping all of its values.
func Copy(dst, src http.Header) {
	for _, name := range Headers {
		key := http.CanonicalHeaderKey(name)
		if vals, ok := src[key]; ok && len(vals) > 0 {
			dst[key] = append([]string(nil), vals...)
		}
	}
}
