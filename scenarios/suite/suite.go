// Package suite holds meshlab's scenarios, one file each, written against Istio's names and shapes (see
// docs and /work/shared/notes/istio-shapes.md): routing-90-10, hbone-capture, injection-matrix,
// waypoint-scoping, authz-deny, fault-injection and control-plane-restart. Each checks its
// prerequisites first and skips with a "requires ..." reason when the lab lacks a piece of the mesh.
package suite

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/meshlab/meshlab/scenarios"
)

// Registry returns every scenario, in the order `run --all` runs them: cheap config checks first, the
// control plane restart last.
func Registry() *scenarios.Registry {
	return scenarios.NewRegistry(
		routing9010(),
		waypointScoping(),
		faultInjection(),
		authzDeny(),
		hboneCapture(),
		injectionMatrix(),
		controlPlaneRestart(),
	)
}

// Names and addresses of the lab the scenarios rely on.
const (
	bookinfoNS      = "default"
	reviewsWaypoint = "reviews-waypoint"
	domain          = "svc.cluster.local"
	waypointClass   = "istio-waypoint"
)

func fqdn(service string) string { return service + "." + bookinfoNS + "." + domain }

// inboundVIP is a waypoint's cluster and route name for a service port, with an optional subset.
func inboundVIP(service, subset string) string {
	proto := "http"
	if subset != "" {
		proto += "/" + subset
	}
	return fmt.Sprintf("inbound-vip|9080|%s|%s", proto, fqdn(service))
}

// spiffe is the identity of a service account.
func spiffe(namespace, sa string) string {
	return "spiffe://cluster.local/ns/" + namespace + "/sa/" + sa
}

// requireMesh skips unless the control plane and ztunnel run and bookinfo's namespace is enrolled.
func requireMesh(t *scenarios.T) {
	t.RequireControlPlane()
	t.RequireZtunnel()
	t.RequireAmbient(bookinfoNS)
	requireBaseline(t)
}

// requireBaseline skips when the bookinfo namespace is bound to a waypoint: every scenario assumes the
// lab as `meshlab up` leaves it, where reviews, details and the others are L4-only until a scenario
// adds its own waypoint.
func requireBaseline(t *scenarios.T) {
	var ns corev1.Namespace
	t.Must(t.Env.Client.Get(t.Context(), client.ObjectKey{Name: bookinfoNS}, &ns), "reading namespace "+bookinfoNS)
	if wp := ns.Labels["istio.io/use-waypoint"]; wp != "" {
		t.Skipf("requires the lab's baseline: namespace %s uses waypoint %q (remove it with `meshlab waypoint delete %s -n %s` and `kubectl label namespace %s istio.io/use-waypoint-`)",
			bookinfoNS, wp, wp, bookinfoNS, bookinfoNS)
	}
	// A scenario compares the proxies' config after its teardown with the config before it; pods still
	// terminating from an earlier change would make "before" a moving target, so let them go first.
	deadline := time.Now().Add(scenarios.DefaultConvergeTimeout)
	for {
		var pods corev1.PodList
		t.Must(t.Env.Client.List(t.Context(), &pods, client.InNamespace(bookinfoNS)), "listing pods in "+bookinfoNS)
		var terminating []string
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				terminating = append(terminating, p.Name)
			}
		}
		if len(terminating) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods in %s still terminating after %s: %v", bookinfoNS, scenarios.DefaultConvergeTimeout, terminating)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("waiting for terminating pods: %v", t.Context().Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	t.WaitSynced()
}

// requireWaypoints adds what waypoints need: the Gateway API and the istio-waypoint GatewayClass.
func requireWaypoints(t *scenarios.T) {
	requireMesh(t)
	t.RequireResource("gateway.networking.k8s.io/v1", "gateways")
	gc := &unstructured.Unstructured{}
	gc.SetAPIVersion("gateway.networking.k8s.io/v1")
	gc.SetKind("GatewayClass")
	err := t.Env.Client.Get(t.Context(), client.ObjectKey{Name: waypointClass}, gc)
	if apierrors.IsNotFound(err) {
		t.Skipf("requires the %s GatewayClass (the control plane's waypoint controller)", waypointClass)
	}
	t.Must(err, "reading GatewayClass "+waypointClass)
}

// reviewsWaypointYAML is what `meshlab waypoint apply --for service` plus `--enroll reviews` would
// create: a Gateway of class istio-waypoint and the use-waypoint label on the reviews Service.
var reviewsWaypointYAML = `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: reviews-waypoint
  namespace: default
  labels:
    istio.io/waypoint-for: service
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: default
  labels:
    istio.io/use-waypoint: reviews-waypoint
`

// setupReviewsWaypoint applies the reviews waypoint and involves its pods in failure bundles.
func setupReviewsWaypoint(t *scenarios.T) {
	t.Apply(reviewsWaypointYAML)
	t.Involve(bookinfoNS, "gateway.networking.k8s.io/gateway-name="+reviewsWaypoint)
}

// waitReviewsWaypoint waits for the new waypoint and for the ztunnels, which learn that reviews now has
// one.
func waitReviewsWaypoint(t *scenarios.T) {
	t.WaitConverged(scenarios.Waypoint(bookinfoNS, reviewsWaypoint), scenarios.Ztunnels())
	// The ztunnels now send reviews traffic to the waypoint, but the waypoint's Service only gets a
	// ready endpoint (pushed to ztunnel as a separate endpoint update) once its pod passes readiness.
	// Until then connections are refused, so wait for the pod, then for the data path itself.
	t.WaitPodsReady(bookinfoNS, "gateway.networking.k8s.io/gateway-name="+reviewsWaypoint, scenarios.DefaultConvergeTimeout)
	waitAnswers(t, scenarios.Request{URL: "http://reviews:9080/reviews/0"}, 3, scenarios.DefaultConvergeTimeout)
}

// waitAnswers polls until n consecutive requests get an HTTP answer (any status: a fault filter's 503 is
// an answer; a reset or an empty reply is not), or fails the step at the deadline. Each poll is one real
// request, so there is no fixed sleep.
func waitAnswers(t *scenarios.T, req scenarios.Request, n int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	streak := 0
	var last scenarios.Response
	for streak < n {
		if time.Now().After(deadline) {
			t.Fatalf("the data path to %s did not answer %d times in a row within %s; last: %s", req.URL, n, timeout, last)
		}
		last = t.Curl(req)
		if last.Status != 0 {
			streak++
		} else {
			streak = 0
		}
	}
}
