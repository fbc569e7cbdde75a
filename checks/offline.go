package checks

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
	cprender "github.com/meshlab/meshlab/controlplane/render"
	"github.com/meshlab/meshlab/controlplane/render/tables"
	"github.com/meshlab/meshlab/scenarios"
)

// OfflineNamespace is $NS --offline: the namespace kubectl would use, where the base objects usually are.
const OfflineNamespace = "default"

// offline runs config assertions on what `meshlab render` computes: the base objects (-f) plus what the
// file applied, minus what it deleted, loaded and validated by the same loader as render.
type offline struct {
	base    map[ingest.Key]ingest.Object
	objects map[ingest.Key]ingest.Object
	nextIP  int // for the pods that stand for Deployments
}

// OfflineNode is the node offline pods are placed on.
const OfflineNode = "offline-node"

// LoadBase reads the --offline base objects (the user's Services, Pods, ...) as `meshlab render -f` does.
// Warnings are returned as strings.
func LoadBase(paths []string) (map[ingest.Key]ingest.Object, []string, error) {
	out := map[ingest.Key]ingest.Object{}
	if len(paths) == 0 {
		return out, nil, nil
	}
	store, warnings, err := ingest.LoadFiles(paths...)
	var ws []string
	for _, w := range warnings {
		ws = append(ws, w.String())
	}
	if err != nil {
		return nil, ws, err
	}
	for _, k := range ingest.Kinds {
		for _, o := range store.List(k) {
			key, _ := ingest.KeyOf(o)
			out[key] = o
		}
	}
	return out, ws, nil
}

func newOffline(base map[ingest.Key]ingest.Object) *offline {
	o := &offline{base: base, objects: map[ingest.Key]ingest.Object{}}
	for k, v := range base {
		o.objects[k] = v
	}
	return o
}

func (o *offline) setup(t *scenarios.T, ns, dataplane string) {
	t.Logf("offline: namespace %s (dataplane %s) is not created; objects without a namespace go to %s", ns, dataplane, ns)
}

// apply loads the embedded file with render's loader (strict decoding, validation, the coverage table), so
// a field meshlab does not implement is reported, not ignored.
func (o *offline) apply(t *scenarios.T, name, path string, objs []*unstructured.Unstructured) {
	store, warnings, err := ingest.LoadFiles(path)
	for _, w := range warnings {
		if strings.Contains(w.String(), "skipping apps/v1 Deployment") {
			continue // stood for by pods below
		}
		t.Logf("apply %s: %s", name, strings.ReplaceAll(w.String(), path, name))
	}
	if err != nil {
		t.Fatalf("apply %s: %s", name, strings.ReplaceAll(err.Error(), path, name))
	}
	for _, k := range ingest.Kinds {
		for _, obj := range store.List(k) {
			key, _ := ingest.KeyOf(obj)
			o.objects[key] = obj
			t.Logf("%s applied (offline)", key)
		}
	}
	for _, u := range objs {
		if u.GetKind() == "Deployment" && u.GroupVersionKind().Group == "apps" {
			o.podsFor(t, u)
		}
	}
}

// podsFor stands pods in for a Deployment, as the cluster would run them: its template's labels and
// service account, one address each (10.244.200.x), on OfflineNode, running.
func (o *offline) podsFor(t *scenarios.T, u *unstructured.Unstructured) {
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
		t.Fatalf("reading deploy/%s: %v", u.GetName(), err)
	}
	replicas := 1
	if d.Spec.Replicas != nil {
		replicas = int(*d.Spec.Replicas)
	}
	sa := d.Spec.Template.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	for i := 0; i < replicas; i++ {
		o.nextIP++
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-offline-%d", d.Name, i), Namespace: d.Namespace,
				Labels: d.Spec.Template.Labels, UID: types.UID(fmt.Sprintf("offline-%s-%s-%d", d.Namespace, d.Name, i))},
			Spec:   corev1.PodSpec{ServiceAccountName: sa, NodeName: OfflineNode, Containers: d.Spec.Template.Spec.Containers},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.244.200.%d", o.nextIP)},
		}
		pod.Status.PodIPs = []corev1.PodIP{{IP: pod.Status.PodIP}}
		key, err := ingest.KeyOf(pod)
		t.Must(err, "keying an offline pod")
		o.objects[key] = pod
		t.Logf("offline: pod %s/%s (%s) stands for deploy/%s", pod.Namespace, pod.Name, pod.Status.PodIP, d.Name)
	}
}

func (o *offline) remove(t *scenarios.T, objs []*unstructured.Unstructured) {
	for _, u := range objs {
		if u.GetKind() == "Deployment" {
			for key := range o.objects {
				if key.Kind == ingest.KindPod && key.Namespace == u.GetNamespace() && strings.HasPrefix(key.Name, u.GetName()+"-offline-") {
					delete(o.objects, key)
				}
			}
			t.Logf("deploy/%s deleted (offline), with its pods", u.GetName())
			continue
		}
		found := false
		for key := range o.objects {
			if string(key.Kind) == u.GetKind() && key.Namespace == u.GetNamespace() && key.Name == u.GetName() {
				delete(o.objects, key)
				found = true
				t.Logf("%s deleted (offline)", key)
			}
		}
		if !found {
			t.Logf("%s %s/%s: not in the offline store (nothing to delete)", u.GetKind(), u.GetNamespace(), u.GetName())
		}
	}
}

func (o *offline) snapshot(t *scenarios.T) *model.Snapshot {
	store := ingest.NewStore()
	for _, obj := range o.objects {
		if _, err := store.Add(obj); err != nil {
			t.Fatalf("offline store: %v", err)
		}
	}
	snap := model.Build(store.Objects())
	for _, p := range snap.Problems {
		t.Logf("render: %s", p)
	}
	return snap
}

func (o *offline) dump(t *scenarios.T, p proxyRef) *tables.Dump {
	snap := o.snapshot(t)
	proxy := model.Proxy{Kind: model.KindWaypoint, Namespace: p.Namespace, Name: p.Name}
	if p.Kind == proxySidecar {
		pod, err := o.pod(p.Namespace, p.Name)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		proxy = model.Proxy{Kind: model.KindSidecar, Namespace: p.Namespace, Name: pod}
	}
	out, err := cprender.Render(snap, proxy)
	if err != nil {
		var nf *model.NotFoundError
		if errors.As(err, &nf) {
			t.Fatalf("%s: %v", p, err)
		}
		t.Fatalf("rendering %s: %v", p, err)
	}
	d, err := tables.FromConfigDump(out.Envoy)
	t.Must(err, "reading the rendered config of "+p.String())
	return d
}

// pod finds the pod of a sidecar named by Deployment (NAME-...) or pod name.
func (o *offline) pod(ns, name string) (string, error) {
	var names []string
	for key := range o.objects {
		if key.Kind == ingest.KindPod && key.Namespace == ns && (key.Name == name || strings.HasPrefix(key.Name, name+"-")) {
			names = append(names, key.Name)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "", fmt.Errorf("no pod %s or %s-... in namespace %s in the offline objects (render needs Pods; add them with -f)", name, name, ns)
	}
	return names[0], nil
}

func (o *offline) podIPs(t *scenarios.T, ns, selector string) []string {
	sel, err := labels.Parse(selector)
	t.Must(err, "reading selector "+selector)
	var out []string
	for key, obj := range o.objects {
		if key.Kind != ingest.KindPod || key.Namespace != ns || !sel.Matches(labels.Set(obj.GetLabels())) {
			continue
		}
		if pod, ok := obj.(*corev1.Pod); ok && pod.Status.PodIP != "" {
			out = append(out, pod.Status.PodIP)
		}
	}
	sort.Strings(out)
	return out
}

func (o *offline) ready(t *scenarios.T, _, _ string, _ time.Duration) {
	t.Skipf("--offline: rollouts need a cluster")
}

func (o *offline) beforeTraffic(*scenarios.T) {}

func (o *offline) convergence(t *scenarios.T) time.Duration {
	t.Skipf("--offline: convergence time needs a cluster")
	return 0
}
