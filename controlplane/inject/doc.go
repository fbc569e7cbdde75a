// Package inject is meshlab's sidecar injector: the injection decision (Decide, Istio's rules), the
// injection template (a Go text/template rendering a partial Pod, kept in ConfigMap
// istio-system/istio-sidecar-injector key "template" so that it can be overridden), the mutating
// admission webhook for Pods (Handler, served by the control plane at /inject over TLS) and its
// MutatingWebhookConfiguration (WebhookConfiguration; the control plane keeps it, caBundle included). `meshlab kube-inject`,
// `meshlab inject check` and `meshlab inject matrix` use the same Decide and Template.
//
// What the webhook answers:
//   - a pod that Decide does not inject (including an unknown istio.io/rev revision, hostNetwork, an
//     opt-out, a pod already injected): admitted unmodified, the reason in the response's message; an
//     unknown revision also gets an admission warning (kubectl prints it). Istio also admits such pods.
//   - a malformed pod (the object does not decode as a Pod): rejected with HTTP 400 and the decode error.
//   - a broken template (does not parse, fails to execute, or does not render a partial Pod) or an
//     injection that cannot apply (a container or volume name already taken): denied, the message naming
//     the ConfigMap. With failurePolicy Fail the pod is not created; Istio rejects in the same cases.
//   - a failure to read the namespace's labels: rejected with HTTP 500 (the API server then fails the
//     request, as failurePolicy Fail says).
//   - a panic anywhere in the handler: recovered, answered with HTTP 500 "internal error"; the server keeps
//     serving.
//
// Application probes are not rewritten (Istio's rewriteAppHTTPProbers is off here): kubelet's HTTP and TCP
// probes reach the app through the sidecar's inbound capture on 15006 as plaintext, which the sidecar
// accepts in meshlab's default PERMISSIVE mode. That needs nothing from the proxy beyond its inbound
// listener, where Istio's rewrite needs an agent on 15020 serving /app-health/<container>/readyz. A pod
// that must be probed under STRICT mTLS should exclude its probe port with the annotation
// traffic.sidecar.istio.io/excludeInboundPorts.
package inject
