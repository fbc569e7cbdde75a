// Package integration is meshlab's ambient data-plane integration test: nodes and pods are network
// namespaces (dataplane/netnstest), the control plane is the real store, generators, xDS server and CA
// service over a model built from YAML describing those pods (dataplane/sidecar/sidecartest), and every
// proxy is a separate process: one ztunnel per node namespace (the test binary re-executed, running
// ztunnel, its workload-API client and its enrolment agent fed by a fake API server holding the same
// YAML) and one waypoint (`meshlab waypoint run`'s command, re-executed the same way) in its pod
// namespace. Real HTTP traffic between pod namespaces then checks capture, mTLS identities, a weighted
// split, retries and authorization at both layers. The package holds only tests; they need root and skip
// otherwise.
package integration
