// Package agent enrols a node's pods into ztunnel on a kind node. It watches the Pods on its node and all
// Namespaces; a pod that should be captured (see Decide) gets its network namespace found among the
// container runtime's /var/run/netns/cni-* files and is handed to ztunnel (AddPod installs the in-pod
// capture rules and opens its listeners there); a pod that should not be captured any more is removed
// (RemovePod deletes the rules). Labels alone drive it: pods that exist before and after enrolment
// follow their namespace's label, with no change to their specs. Enrolled pods are annotated
// ambient.istio.io/redirection=enabled, as Istio does.
package agent

import (
	corev1 "k8s.io/api/core/v1"
)

// Labels and annotations of Istio's ambient mode.
const (
	DataplaneModeLabel    = "istio.io/dataplane-mode"
	DataplaneModeAmbient  = "ambient"
	DataplaneModeNone     = "none"
	RedirectionAnnotation = "ambient.istio.io/redirection"
	RedirectionEnabled    = "enabled"
)

// Decision says whether a pod is captured, and why (for logs and the admin dump).
type Decision struct {
	Enrol  bool
	Reason string
}

// Decide applies Istio's ambient enrolment rules: a pod is captured when it or its namespace is labelled
// istio.io/dataplane-mode=ambient, unless the pod says none, it uses the host's network, it has no IP yet,
// or it is finishing. ns may be nil (not seen yet).
func Decide(pod *corev1.Pod, ns *corev1.Namespace) Decision {
	podMode := pod.Labels[DataplaneModeLabel]
	switch {
	case pod.Spec.HostNetwork:
		return Decision{Reason: "host network"}
	case podMode == DataplaneModeNone:
		return Decision{Reason: "pod opts out (" + DataplaneModeLabel + "=none)"}
	case pod.DeletionTimestamp != nil:
		return Decision{Reason: "terminating"}
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return Decision{Reason: "finished"}
	}
	var why string
	switch {
	case podMode == DataplaneModeAmbient:
		why = "pod labelled " + DataplaneModeLabel + "=ambient"
	case ns != nil && ns.Labels[DataplaneModeLabel] == DataplaneModeAmbient:
		why = "namespace labelled " + DataplaneModeLabel + "=ambient"
	default:
		return Decision{Reason: "not in ambient mode"}
	}
	if pod.Status.PodIP == "" {
		return Decision{Reason: why + ", but no IP yet"}
	}
	return Decision{Enrol: true, Reason: why}
}
