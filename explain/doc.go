// Package explain predicts the path one HTTP request takes through the mesh, hop by hop, from the config
// each proxy on the way holds: how the source pod is captured and why, where its ztunnel sends the
// connection and why (waypoint or not), what the waypoint, sidecar or ingress gateway does with the request
// (filter chain, route configuration, virtual host, the route that matched and why earlier ones did not,
// its VirtualService or HTTPRoute rule, weighted clusters, endpoints, retries, timeout, fault, RBAC), and
// what the destination's ztunnel decides (L4 authorization).
//
// It never models routing a second time: the config comes from a ConfigSource (Offline generates it with
// the control plane's own generators, as `meshlab render` does; explain/live reads it from the running
// lab's proxies' config dumps) and the decisions are made by the data plane's own code, l7.Table.Explain
// and ztunnel.Predictor, on that config. `meshlab explain` prints the Report as a tree or as JSON.
//
// Compare sets a Report beside what a request sent on the lab did (Observed, read from the access logs)
// and flags every fact that differs: `meshlab explain --observe`.
package explain
