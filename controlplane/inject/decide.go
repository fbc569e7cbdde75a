package inject

import (
	"fmt"
	"slices"
	"strings"
)

// Labels and annotations that steer injection (Istio's names).
const (
	// LabelInjection on a namespace: "enabled" or "disabled".
	LabelInjection = "istio-injection"
	// LabelRevision on a namespace (or pod) selects a control-plane revision.
	LabelRevision = "istio.io/rev"
	// LabelSidecarInject on a pod: "true" opts in, "false" opts out. The legacy annotation of the same name
	// can only opt out (see Decide).
	LabelSidecarInject = "sidecar.istio.io/inject"
	// AnnotationStatus records what was injected; its presence means the pod is already injected.
	AnnotationStatus = "sidecar.istio.io/status"
	// LabelNamespaceName is the label the API server puts on every namespace (used by the webhook's
	// namespaceSelector to keep system namespaces out).
	LabelNamespaceName = "kubernetes.io/metadata.name"

	// DefaultRevision is the revision this control plane serves.
	DefaultRevision = "default"
)

// ExcludedNamespaces are never injected.
var ExcludedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease", "local-path-storage"}

// Rule names the rule that decided; Decision.Reason says it in words.
type Rule string

const (
	RuleHostNetwork       Rule = "hostNetwork"
	RuleExcludedNamespace Rule = "excluded-namespace"
	RuleAlreadyInjected   Rule = "already-injected"
	RuleNamespaceLabel    Rule = "namespace-label"    // istio-injection on the namespace decided
	RuleNamespaceRevision Rule = "namespace-revision" // istio.io/rev on the namespace decided
	RulePodLabel          Rule = "pod-label"          // sidecar.istio.io/inject label on the pod decided
	RulePodAnnotation     Rule = "pod-annotation"     // the legacy annotation decided (an opt-out)
	RulePodRevision       Rule = "pod-revision"       // istio.io/rev on the pod decided
	RuleUnknownRevision   Rule = "unknown-revision"
	RuleNoOptIn           Rule = "no-opt-in"
)

// Input is everything the decision looks at.
type Input struct {
	Namespace       string
	NamespaceLabels map[string]string
	PodLabels       map[string]string
	PodAnnotations  map[string]string
	HostNetwork     bool
	// Revisions this control plane serves; empty means just DefaultRevision.
	Revisions []string
}

// Decision is the outcome: whether to inject, which rule decided and why, and (when injecting) for which
// revision.
type Decision struct {
	Injected bool   `json:"injected"`
	Rule     Rule   `json:"rule"`
	Reason   string `json:"reason"`
	Revision string `json:"revision,omitempty"`
}

// Decide applies Istio's injection rules. It is the only place they live: the webhook handler, kube-inject,
// `inject check` and `inject matrix` all call it, and the webhook's selectors are tested against it.
//
// Order: hostNetwork pods and system namespaces are never injected, nor pods already injected. Then the
// namespace decides: istio-injection (any value but "enabled" turns injection off, whatever the pod says)
// takes precedence over istio.io/rev. In an enabled namespace (or one selecting a known revision) the pod
// can opt out with sidecar.istio.io/inject="false", as a label or as the legacy annotation; when both are
// set the label wins. In a namespace with neither label, the pod opts in with the label
// sidecar.istio.io/inject="true" or istio.io/rev=<revision>. The legacy annotation cannot opt a pod in
// there: the API server only calls the webhook for pods whose labels match its objectSelector, and
// selectors do not see annotations (Istio behaves the same since its webhooks use objectSelectors).
func Decide(in Input) Decision {
	known := in.Revisions
	if len(known) == 0 {
		known = []string{DefaultRevision}
	}
	no := func(r Rule, format string, args ...any) Decision {
		return Decision{Rule: r, Reason: fmt.Sprintf(format, args...)}
	}
	yes := func(r Rule, rev, format string, args ...any) Decision {
		return Decision{Injected: true, Rule: r, Revision: rev, Reason: fmt.Sprintf(format, args...)}
	}

	if in.HostNetwork {
		return no(RuleHostNetwork, "pod uses hostNetwork: a sidecar would capture the node's traffic")
	}
	if slices.Contains(ExcludedNamespaces, in.Namespace) {
		return no(RuleExcludedNamespace, "namespace %s is never injected", in.Namespace)
	}
	if _, ok := in.PodAnnotations[AnnotationStatus]; ok {
		return no(RuleAlreadyInjected, "pod is already injected (annotation %s is set)", AnnotationStatus)
	}

	// The pod's own opt-out/opt-in: the label wins over the legacy annotation.
	podSetting, podRule, podSet := in.PodLabels[LabelSidecarInject], RulePodLabel, false
	if _, ok := in.PodLabels[LabelSidecarInject]; ok {
		podSet = true
	} else if v, ok := in.PodAnnotations[LabelSidecarInject]; ok {
		podSetting, podRule, podSet = v, RulePodAnnotation, true
	}
	podDescr := func() string {
		kind := "label"
		if podRule == RulePodAnnotation {
			kind = "annotation"
		}
		s := fmt.Sprintf("pod %s %s=%q", kind, LabelSidecarInject, podSetting)
		if podRule == RulePodLabel {
			if a, ok := in.PodAnnotations[LabelSidecarInject]; ok && a != podSetting {
				s += fmt.Sprintf(" (wins over the legacy annotation %q)", a)
			}
		}
		return s
	}
	// optOut reports whether a pod setting turns injection off where the namespace turned it on. Istio
	// accepts y/yes/true/on as true; anything else that is set means no.
	optOut := podSet && !truthy(podSetting)

	if v, ok := in.NamespaceLabels[LabelInjection]; ok {
		if v != "enabled" {
			return no(RuleNamespaceLabel, "namespace label %s=%s", LabelInjection, v)
		}
		if optOut {
			return no(podRule, "%s opts out (namespace label %s=enabled)", podDescr(), LabelInjection)
		}
		if podSet {
			return yes(podRule, DefaultRevision, "%s in a namespace labelled %s=enabled", podDescr(), LabelInjection)
		}
		return yes(RuleNamespaceLabel, DefaultRevision, "namespace label %s=enabled", LabelInjection)
	}
	if rev, ok := in.NamespaceLabels[LabelRevision]; ok {
		if !slices.Contains(known, rev) {
			return no(RuleUnknownRevision, "namespace label %s=%s names a revision this control plane does not serve (known: %s)",
				LabelRevision, rev, strings.Join(known, ", "))
		}
		if optOut {
			return no(podRule, "%s opts out (namespace label %s=%s)", podDescr(), LabelRevision, rev)
		}
		return yes(RuleNamespaceRevision, rev, "namespace label %s=%s", LabelRevision, rev)
	}

	// The namespace says nothing: only the pod's labels can opt in.
	label, labelSet := in.PodLabels[LabelSidecarInject]
	if labelSet && label == "false" {
		return no(RulePodLabel, "%s opts out", podDescr())
	}
	if rev, ok := in.PodLabels[LabelRevision]; ok {
		if !slices.Contains(known, rev) {
			return no(RuleUnknownRevision, "pod label %s=%s names a revision this control plane does not serve (known: %s)",
				LabelRevision, rev, strings.Join(known, ", "))
		}
		if labelSet && !truthy(label) {
			return no(RulePodLabel, "%s opts out", podDescr())
		}
		return yes(RulePodRevision, rev, "pod label %s=%s", LabelRevision, rev)
	}
	if labelSet && label == "true" {
		return yes(RulePodLabel, DefaultRevision, "%s", podDescr())
	}
	if labelSet {
		return no(RulePodLabel, "%s is not \"true\" and the namespace has no injection label", podDescr())
	}
	if a, ok := in.PodAnnotations[LabelSidecarInject]; ok && truthy(a) {
		return no(RulePodAnnotation, "pod annotation %s=%q cannot opt in: the webhook only sees pod labels; set the label instead (or label the namespace %s=enabled)",
			LabelSidecarInject, a, LabelInjection)
	}
	if podSet {
		return no(RuleNoOptIn, "%s and the namespace has no injection label", podDescr())
	}
	return no(RuleNoOptIn, "neither the namespace (%s, %s) nor the pod (label %s or %s) asks for injection",
		LabelInjection, LabelRevision, LabelSidecarInject, LabelRevision)
}

func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "y", "yes", "true", "on":
		return true
	}
	return false
}
