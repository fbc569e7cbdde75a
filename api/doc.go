// Package api is the wire API meshlab's two planes share, and nothing else: the control plane serves it,
// the proxies consume it, and neither imports the other (Istio keeps its workload API in pkg/workloadapi,
// ztunnel keeps proto/ at its root, for the same reason).
//
//   - workloadapi, workloadapi/security: the workload API ztunnel receives over Delta ADS (Address,
//     Authorization), with Istio's proto packages, names and field numbers.
//   - cav1: the certificate API proxies call to get their SVIDs (Istio's IstioCertificateService shape).
//   - xdstype: every xDS type URL meshlab serves or asks for, and their short names (CDS, LDS, ...).
//   - mesh: the names both planes agree on: where the control plane lives, its identity, the root
//     certificate's ConfigMap, the proxies' ports and runtime settings.
package api

//go:generate ./gen.sh
