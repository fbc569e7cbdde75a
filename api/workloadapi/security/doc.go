// Package security holds meshlab's Authorization resource for ztunnel (type URL
// type.googleapis.com/istio.security.Authorization), generated from authorization.proto. It is a package of
// its own because istio.security and istio.workload both define a message named Address.
package security
