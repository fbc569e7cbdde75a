// Package conformance runs the upstream Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance,
// the version of the gateway-api module meshlab uses), profile MESH-HTTP, against a meshlab lab on kind,
// offline. It is its own Go module so that the suite and its dependencies stay out of meshlab's.
//
// The test (TestMeshConformance, run by `make conformance`) drives the built meshlab binary: it brings
// up the lab (`meshlab up --offline`, cluster MESHLAB_CONFORMANCE_CLUSTER, default meshlab-conf), builds
// the stand-in for every echo image the suite's mesh manifests name (`meshlab image build --echo-as`) and
// imports it into the kind nodes, gives the suite's mesh namespaces a waypoint (they are enrolled in
// ambient through the suite's NamespaceLabels), runs the suite and writes its ConformanceReport YAML. It
// deletes the cluster afterwards if it created it.
package conformance
