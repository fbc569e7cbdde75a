package checks

import (
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshlab/meshlab/controlplane/render/tables"
	"github.com/meshlab/meshlab/scenarios"
)

// backend is where a check file's commands act: the live lab, or the offline store `meshlab render` reads.
// Methods record failures on t (t.Fatalf ends the command).
type backend interface {
	// setup prepares the file's namespace ns (live: creates it, labelled for dataplane mode).
	setup(t *scenarios.T, ns, dataplane string)
	// apply applies objects read from the embedded file name (its text at path) and waits for convergence.
	apply(t *scenarios.T, name, path string, objs []*unstructured.Unstructured)
	// remove deletes objects, then waits for convergence.
	remove(t *scenarios.T, objs []*unstructured.Unstructured)
	// dump is the config the proxy holds (live: acknowledged, after convergence).
	dump(t *scenarios.T, p proxyRef) *tables.Dump
	// podIPs are the IPs of the pods selector picks in ns.
	podIPs(t *scenarios.T, ns, selector string) []string
	// ready waits for a Deployment's rollout.
	ready(t *scenarios.T, ns, name string, timeout time.Duration)
	// convergence is how long the last apply or delete took to be acknowledged by every affected proxy.
	convergence(t *scenarios.T) time.Duration
	// beforeTraffic waits until traffic can take the path the file's config declares (live: every waypoint
	// and gateway the file applied is connected and in sync); offline there is no traffic.
	beforeTraffic(t *scenarios.T)
}

// Traffic sends requests in the lab for the traffic commands. scenarios' traffic helpers implement it once
// they are on this branch (see trafficPending); the parsed command arrives as a request and a want.
type Traffic interface {
	Request(t *scenarios.T, what string, req TrafficRequest, want ResponseWant) bool
	Allowed(t *scenarios.T, what string, req TrafficRequest) bool
	Denied(t *scenarios.T, what string, req TrafficRequest, layer string) bool
	Path(t *scenarios.T, what string, req TrafficRequest, want PathWant) bool
	Latency(t *scenarios.T, what string, req TrafficRequest, n int, budgets map[float64]time.Duration) bool
	Split(t *scenarios.T, what string, req TrafficRequest, by string, weights map[string]float64) bool
	// Counts sends n requests and tests how many answers fall in each class (by "status" or a field).
	Counts(t *scenarios.T, what string, req TrafficRequest, n int, by string, want map[string]scenarios.Range) bool
}

// TrafficRequest is a request a traffic command sends: from a pod of the Deployment From in Namespace (empty:
// the lab's sleep pod), to URL, with extra headers.
type TrafficRequest struct {
	Namespace, From string
	// Via, instead of From, sends the request from this machine through the ingress Gateway Via
	// (NAME in Namespace, or NS/NAME): to its Service's node port on a node, the URL's host as Host.
	Via     string
	URL     string
	Headers []string // "Name: value"
}

// ResponseWant is what `request` expects (scenarios' type: the same assertion a scenario makes).
type ResponseWant = scenarios.ResponseWant

// PathWant is what `path` expects of a connection (scenarios' type).
type PathWant = scenarios.PathWant
