// Package workloadapi holds meshlab's workload API, the xDS resources the control plane serves to ztunnel over
// Delta ADS: Address (a Workload or a Service) here, and Authorization in package security. The messages are
// generated from meshlab's own .proto files, which keep the proto packages, names and field numbers of
// Istio's workload API so the type URLs are the same.
package workloadapi
