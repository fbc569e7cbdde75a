// Package smoke is the smoke test of meshlab's own image in the Docker engine (testcontainers-go): the
// image is packed from the binary under test exactly as `meshlab up` packs it, loaded into Docker from
// its tarball (nothing is pulled), and every component's container is started from the same Kubernetes
// objects meshlab deploys (manifests, the waypoint and gateway controller's Deployments, the sidecar
// injection template, the CNI DaemonSet): the same args, environment, user, capabilities, read-only root
// and probe. Each component is then checked as far as it can go without a cluster; the table in
// smoke_test.go says, per component, what is checked and why no more.
//
// It is a separate module (like conformance/ and fidelity/) so that meshlab's own module does not depend
// on testcontainers-go and Docker's client. It runs only with MESHLAB_SMOKE=1 and MESHLAB_BIN set
// (`make smoke`, which `make test` runs before the kind e2e); otherwise it skips.
package smoke
