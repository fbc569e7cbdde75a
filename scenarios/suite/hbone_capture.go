package suite

import (
	"fmt"
	"time"

	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/scenarios"
)

// hbone-capture: sleep -> productpage is captured by ztunnel and carried over HBONE (port 15008, mTLS)
// with sleep's and productpage's SPIFFE identities on both ends, as both ztunnels' access logs show; a
// pod in a namespace that is not enrolled is not captured; with PeerAuthentication STRICT on bookinfo's
// namespace that pod's plain text is refused by productpage's ztunnel while sleep's HBONE still passes;
// and a client without a mesh certificate cannot complete a TLS handshake with 15008.
func hboneCapture() *scenarios.Scenario {
	return &scenarios.Scenario{
		Name:        "hbone-capture",
		Description: "sleep -> productpage over HBONE with mTLS identities; no capture outside the mesh; STRICT refuses plain text; 15008 needs a mesh certificate",
		Requires: func(t *scenarios.T) {
			requireMesh(t)
			t.RequireResource("security.istio.io/v1", "peerauthentications")
			t.RequireWorkload(bookinfoNS, "productpage-v1")
		},
		Setup: func(t *scenarios.T) {
			t.Apply(fmt.Sprintf(plainClientYAML, t.MeshlabImage()))
		},
		Wait: func(t *scenarios.T) {
			t.WaitPodsReady(plainNS, "app=plain-client", 60*time.Second)
			t.WaitConverged() // ztunnels learn about the new pod even though it is not captured
		},
		Check: func(t *scenarios.T) {
			pp := t.Pods(bookinfoNS, "app=productpage")[0]
			plain := t.Pods(plainNS, "app=plain-client")[0]
			t.Involve(labclient.ControlPlaneNamespace, "")
			hbone, notHBONE := true, false

			t.Phase("captured", func() {
				req := scenarios.Request{URL: "http://productpage:9080/health"}
				t.ExpectResponse("sleep -> productpage answers", scenarios.Request{URL: req.URL, Repeat: 3}, scenarios.ResponseWant{Status: 200})
				t.ExpectPath("both ztunnels' access logs show HBONE to port 15008 with sleep's and productpage's identities", req, scenarios.PathWant{
					SrcIdentity: spiffe(bookinfoNS, "sleep"), DstIdentity: spiffe(bookinfoNS, "bookinfo-productpage"), HBONE: &hbone, Waypoint: "none",
				})
			})

			t.Phase("not-enrolled", func() {
				req := scenarios.Request{Namespace: plainNS, Pod: plain.Name, URL: "http://productpage." + bookinfoNS + ":9080/health"}
				t.ExpectResponse("a pod outside the mesh still reaches productpage", req, scenarios.ResponseWant{Status: 200})
				t.ExpectPath("no ztunnel captured the outbound traffic of "+plainNS+"/"+plain.Name, req, scenarios.PathWant{HBONE: &notHBONE, Waypoint: "none"})
			})

			t.Phase("strict", func() {
				plainReq := scenarios.Request{Namespace: plainNS, Pod: plain.Name, URL: "http://productpage." + bookinfoNS + ":9080/health"}
				t.Apply(strictBookinfoYAML)
				defer func() {
					t.Delete(strictBookinfoYAML)
					t.WaitConverged(scenarios.Ztunnels())
					t.ExpectResponse("without STRICT (PERMISSIVE is the default) plain text from outside the mesh is accepted again", plainReq, scenarios.ResponseWant{Status: 200})
				}()
				t.WaitConverged(scenarios.Ztunnels())
				t.ExpectDenied("with PeerAuthentication STRICT, plain text from a pod outside the mesh is refused at productpage's ztunnel",
					scenarios.Request{Namespace: plainNS, Pod: plain.Name, URL: plainReq.URL, MaxTime: 3 * time.Second, Repeat: 3}, "L4")
				t.ExpectResponse("sleep, in the mesh, still reaches productpage over HBONE",
					scenarios.Request{URL: "http://productpage:9080/health", Repeat: 3}, scenarios.ResponseWant{Status: 200})
			})

			t.Phase("no-mesh-cert", func() {
				r := t.Curl(scenarios.Request{Namespace: plainNS, Pod: plain.Name, URL: "https://" + pp.Status.PodIP + ":15008/", Args: []string{"-k"}, MaxTime: 5 * time.Second})
				failedTLS := r.Status == 0 && (r.ExitCode == 35 || r.ExitCode == 52 || r.ExitCode == 56)
				t.Expect(failedTLS, "a client without a mesh certificate fails the TLS handshake on "+pp.Status.PodIP+":15008",
					"curl exit 35, 52 or 56 (handshake refused: client certificate required)", r)
			})
		},
	}
}

const plainNS = "meshlab-scenario-plain"

// strictBookinfoYAML requires mutual TLS for every workload in bookinfo's namespace, as Istio's
// namespace-wide PeerAuthentication does.
var strictBookinfoYAML = `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: default
spec:
  mtls:
    mode: STRICT
`

// plainClientYAML is a namespace without the ambient label and a client pod in it (%s: meshlab's image).
var plainClientYAML = `
apiVersion: v1
kind: Namespace
metadata:
  name: meshlab-scenario-plain
---
apiVersion: v1
kind: Pod
metadata:
  name: plain-client
  namespace: meshlab-scenario-plain
  labels: {app: plain-client}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: sleep
    image: %s
    imagePullPolicy: IfNotPresent
    args: [sleep]
    securityContext:
      runAsNonRoot: true
      runAsUser: 1000
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL]}
`
