// Package l7 is meshlab's L7 engine: it executes the subset of Envoy configuration (listeners, routes,
// clusters, endpoints as go-control-plane protos) that meshlab's control plane generates for waypoints and
// sidecars. Build validates a config and compiles it into an immutable Table, rejecting anything it cannot
// execute with an error naming the resource and the field (that error is what an xDS NACK carries). An
// Engine holds the current Table behind an atomic pointer and serves downstream connections with it:
// filter-chain selection by destination IP and port, HTTP/1.1 and h2c through the HTTP connection manager
// (x-request-id, RBAC, fault injection, routing, weighted clusters, retries, timeouts, redirects, path and
// host rewrites, request and response header mutation at route and weighted-cluster level) or a TCP proxy.
// Clusters balance as their lb_policy says (round robin, random, least request as Envoy's power of two
// choices, ring hash and maglev on the route's hash_policy), enforce their circuit breakers (overflow is
// Envoy's 503 with x-envoy-overloaded) and eject failing hosts (outlier_detection, consecutive errors).
// Upstream connections are opened by the caller's Dial function, so the waypoint can tunnel them over HBONE.
package l7
