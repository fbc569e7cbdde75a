// Package manifests has every Kubernetes object `meshlab up` applies, in apply order, as typed objects
// that carry their TypeMeta so that they can be server-side applied as they are:
//
//   - ControlPlane: namespace meshlab-system, the CRDs the control plane reads, its ServiceAccount and RBAC,
//     its Deployment (one replica of `meshlab controlplane`) and Service (gRPC 15012 TLS, 15010 plaintext,
//     HTTP 15014, and port 443 to the injection webhook on 15017);
//   - Ztunnel: its ServiceAccount, RBAC and the DaemonSet running `meshlab ztunnel` on every node;
//   - Bookinfo: bookinfo and the sleep client, shaped like Istio's samples/bookinfo/platform/kube/bookinfo.yaml
//     and samples/sleep/sleep.yaml (the same names, labels, ports and service accounts, so identities read
//     spiffe://cluster.local/ns/<ns>/sa/bookinfo-reviews as upstream's do), every container running
//     `meshlab bookinfo <service>` or `meshlab sleep` as a non-root user with a read-only root.
//
// The manifests read the ports, paths and names the components define (controlplane/server,
// dataplane/ztunnel/app, bookinfo); no component imports this package.
package manifests
