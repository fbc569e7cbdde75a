// Package xds is meshlab's xDS server: it serves Envoy configuration (to waypoints and sidecars) and the
// workload API (to ztunnel) over aggregated discovery streams, state-of-the-world and delta, and decides when
// and what to push.
//
// A config change travels through it like this:
//
//	ConfigUpdate(PushRequest) -> debounce (quiet/max window, requests merge) -> cache invalidation
//	-> Preparer (e.g. a new model snapshot) -> Generator.Affects per proxy -> push queue (one pending push
//	per proxy, later requests merge into it) -> concurrency limit -> per-proxy Generate per type
//	-> diff against what the proxy has -> send -> ACK or NACK recorded (syncz, metrics).
//
// Alongside config, the streams answer the debug questions istioctl asks istiod (istio.io/debug/syncz and
// config_dump, debugxds.go) from the same per-type state that /debug/syncz shows (debug.go).
//
// What to generate is not this package's business: a Generator builds the resources of one type for one
// Proxy, and reports which proxies a change affects. The Cache of encoded resources is offered to
// generators; the server invalidates it by the configs each change names.
//
// Why not go-control-plane's server and snapshot cache: its cache holds one precomputed snapshot per node
// and pushes whenever a snapshot is set. meshlab instead generates per proxy at push time, from the
// latest model, only for proxies a change affects, with at most one pending push per proxy, a shared
// cache invalidated by dependency, partial EDS, and per-type ACK/NACK state for syncz. Those decisions
// live in the stream handling, so this package writes its own streams on go-control-plane's protocol
// types (discovery.v3), and its tests use go-control-plane's real ADS client.
package xds
