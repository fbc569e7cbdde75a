// Package integration holds meshlab's cross-plane tests: the real control plane (the ingest store,
// generators, xDS server and CA service of controlplane/server/servertest) with real proxies, so that
// what the control plane generates is checked by executing it rather than by reading it.
//
//   - mesh_test.go: ambient. Nodes and pods are network namespaces (dataplane/netnstest); every proxy is
//     a separate process (the test binary re-executed): one ztunnel per node namespace running
//     dataplane/ztunnel/app (fed by a fake API server holding the pods' YAML) and one waypoint running
//     waypoint.Run, as `meshlab ztunnel` and `meshlab waypoint run` do. Real HTTP between pod namespaces
//     checks capture, mTLS identities, a weighted split, retries and authorization at both layers.
//   - sidecar_test.go: sidecars on loopback addresses, outbound and inbound paths.
//   - generated_test.go: the generated waypoint config executed by the L7 engine.
//   - gateway_test.go: an ingress gateway (Gateway of class istio) routing by HTTPRoute to an injected pod
//     over HBONE and to a pod outside the mesh in plain text.
//
// The package holds only tests; those that need root skip otherwise.
package integration
