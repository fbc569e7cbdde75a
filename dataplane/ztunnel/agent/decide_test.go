package agent

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDecide(t *testing.T) {
	ambientNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{DataplaneModeLabel: "ambient"}}}
	plainNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	noneNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{DataplaneModeLabel: "none"}}}
	now := metav1.Now()
	pod := func(mode string, edit ...func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "sleep", Namespace: "default"},
			Status:     corev1.PodStatus{PodIP: "10.244.1.5", Phase: corev1.PodRunning},
		}
		if mode != "" {
			p.Labels = map[string]string{DataplaneModeLabel: mode}
		}
		for _, e := range edit {
			e(p)
		}
		return p
	}
	cases := []struct {
		name   string
		pod    *corev1.Pod
		ns     *corev1.Namespace
		enrol  bool
		reason string
	}{
		{"namespace ambient", pod(""), ambientNS, true, "namespace labelled istio.io/dataplane-mode=ambient"},
		{"pod ambient, namespace unlabelled", pod("ambient"), plainNS, true, "pod labelled istio.io/dataplane-mode=ambient"},
		{"pod ambient, namespace none", pod("ambient"), noneNS, true, "pod labelled istio.io/dataplane-mode=ambient"},
		{"pod ambient, namespace not seen yet", pod("ambient"), nil, true, "pod labelled istio.io/dataplane-mode=ambient"},
		{"pod opts out of an ambient namespace", pod("none"), ambientNS, false, "pod opts out (istio.io/dataplane-mode=none)"},
		{"nothing labelled", pod(""), plainNS, false, "not in ambient mode"},
		{"namespace none", pod(""), noneNS, false, "not in ambient mode"},
		{"namespace not seen yet", pod(""), nil, false, "not in ambient mode"},
		{"other pod label value", pod("sidecar"), plainNS, false, "not in ambient mode"},
		{"host network", pod("", func(p *corev1.Pod) { p.Spec.HostNetwork = true }), ambientNS, false, "host network"},
		{"no IP yet", pod("", func(p *corev1.Pod) { p.Status.PodIP = "" }), ambientNS, false, "namespace labelled istio.io/dataplane-mode=ambient, but no IP yet"},
		{"terminating", pod("", func(p *corev1.Pod) { p.DeletionTimestamp = &now }), ambientNS, false, "terminating"},
		{"completed job", pod("", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }), ambientNS, false, "finished"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(tc.pod, tc.ns)
			if got.Enrol != tc.enrol || got.Reason != tc.reason {
				t.Errorf("Decide() = %+v, want {Enrol:%t Reason:%s}", got, tc.enrol, tc.reason)
			}
		})
	}
}
