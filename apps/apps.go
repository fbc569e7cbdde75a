// Package apps puts a user's own applications into the lab, for `meshlab up --with DIR|FILE`: it reads
// their manifests (every .yaml, .yml and .json file of a directory, sorted; `kind: List` read as its
// items), checks all of them against the lab's API server before anything is applied, applies them with
// server-side apply in kubectl's dependency order (namespaces, then CRDs, then the rest), and records the
// workloads they make so that `meshlab status` lists them among the lab's components.
package apps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshlab/meshlab/cluster"
	"github.com/meshlab/meshlab/internal/yamldoc"
)

// ErrInput marks a problem with the user's manifests (a file that cannot be read, malformed YAML, a kind
// the lab's API server does not know, an object it rejects): nothing was applied, and meshlab exits 2.
var ErrInput = errors.New("--with manifests")

// Object is one object of the user's manifests and where it was written.
type Object struct {
	Doc *yamldoc.Doc
	U   *unstructured.Unstructured
}

func (o Object) gvk() schema.GroupVersionKind { return o.U.GroupVersionKind() }

// Read reads every manifest under paths (files, or directories whose .yaml, .yml and .json files are read
// in name order). All problems of all files are reported together, each with file and line.
func Read(paths []string) ([]Object, error) {
	var (
		objs []Object
		errs []error
	)
	for _, p := range paths {
		files, err := yamldoc.Files(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			docs, err := yamldoc.ReadFile(f, data)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, d := range docs {
				u := &unstructured.Unstructured{}
				if err := u.UnmarshalJSON(d.JSON); err != nil {
					errs = append(errs, d.DecodeError("reading the object", err))
					continue
				}
				if u.GetName() == "" {
					errs = append(errs, d.Errorf("metadata", "metadata.name is required (server-side apply cannot use generateName)"))
					continue
				}
				objs = append(objs, Object{Doc: d, U: u})
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("%w: no objects in %s", ErrInput, strings.Join(paths, ", "))
	}
	return objs, nil
}

// Check resolves every object's kind against the lab's API server (or a CustomResourceDefinition among the
// objects), sets the namespace of namespaced objects that name none to "default" as kubectl does, and
// returns the objects in apply order. Every object whose kind is unknown is reported, with its line.
func Check(objs []Object, mapper meta.RESTMapper) ([]Object, error) {
	crds := definedKinds(objs)
	var errs []error
	for _, o := range objs {
		gvk := o.gvk()
		namespaced, ok := crds[gvk]
		if !ok {
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				if meta.IsNoMatchError(err) {
					errs = append(errs, o.Doc.Errorf("kind", "kind %s (apiVersion %s) is not known to the lab's API server (is its CustomResourceDefinition installed?)", gvk.Kind, o.U.GetAPIVersion()))
					continue
				}
				return nil, fmt.Errorf("%w: resolving kind %s: %w", cluster.ErrEnvironment, gvk.Kind, err)
			}
			namespaced = m.Scope.Name() == meta.RESTScopeNameNamespace
		}
		if namespaced && o.U.GetNamespace() == "" {
			o.U.SetNamespace(corev1.NamespaceDefault)
		}
		if !namespaced && o.U.GetNamespace() != "" {
			errs = append(errs, o.Doc.Errorf("metadata.namespace", "%s is cluster-scoped and takes no namespace", gvk.Kind))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	return order(objs), nil
}

// definedKinds returns the kinds the CustomResourceDefinitions among objs define, each version, and
// whether they are namespaced.
func definedKinds(objs []Object) map[schema.GroupVersionKind]bool {
	kinds := map[schema.GroupVersionKind]bool{}
	for _, o := range objs {
		if o.gvk().GroupKind() != crdKind {
			continue
		}
		group, _, _ := unstructured.NestedString(o.U.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.U.Object, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(o.U.Object, "spec", "scope")
		versions, _, _ := unstructured.NestedSlice(o.U.Object, "spec", "versions")
		for _, v := range versions {
			if m, ok := v.(map[string]any); ok {
				if name, ok := m["name"].(string); ok {
					kinds[schema.GroupVersionKind{Group: group, Version: name, Kind: kind}] = scope == "Namespaced"
				}
			}
		}
	}
	return kinds
}

var crdKind = schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}

// order puts Namespaces first and CustomResourceDefinitions next, so that what the other objects need
// exists when they are applied; the rest keep the order they were written in.
func order(objs []Object) []Object {
	rank := func(o Object) int {
		switch gk := o.gvk().GroupKind(); {
		case gk == schema.GroupKind{Kind: "Namespace"}:
			return 0
		case gk == crdKind:
			return 1
		}
		return 2
	}
	out := append([]Object(nil), objs...)
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// DryRun submits every object whose namespace and kind already exist to the API server as a server-side
// dry-run apply, so that what it would reject (a missing required field, a bad value) is reported, with
// the object's place, before anything is applied. Objects in namespaces or of kinds the manifests create
// themselves cannot be tried before those exist; the real apply reports them.
func DryRun(ctx context.Context, c client.Client, objs []Object) error {
	creates := map[string]bool{}
	for _, o := range objs {
		if o.gvk().GroupKind() == (schema.GroupKind{Kind: "Namespace"}) {
			creates[o.U.GetName()] = true
		}
	}
	crds := definedKinds(objs)
	var errs []error
	for _, o := range objs {
		if _, custom := crds[o.gvk()]; custom || creates[o.U.GetNamespace()] {
			continue
		}
		if err := apply(ctx, c, o, client.DryRunAll); err != nil {
			if errors.Is(err, cluster.ErrEnvironment) {
				return err
			}
			errs = append(errs, &yamldoc.Error{Doc: o.Doc, Line: o.Doc.Line, Err: fmt.Errorf("the API server rejects it: %w", err)})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInput, err)
	}
	return nil
}

// Apply server-side-applies the objects in order (as meshlab, forcing ownership, so that a second `up`
// converges) and waits for each CustomResourceDefinition to be established before what follows it.
func Apply(ctx context.Context, c client.Client, objs []Object) error {
	for _, o := range objs {
		if err := apply(ctx, c, o); err != nil {
			return fmt.Errorf("applying %s: %w", o.Doc.Where(), err)
		}
		if o.gvk().GroupKind() == crdKind {
			if err := waitEstablished(ctx, c, o.U.GetName()); err != nil {
				return err
			}
		}
	}
	return nil
}

func apply(ctx context.Context, c client.Client, o Object, opts ...client.PatchOption) error {
	u := o.U.DeepCopy()
	u.SetManagedFields(nil)
	u.SetResourceVersion("")
	opts = append(opts, client.FieldOwner(cluster.FieldManager), client.ForceOwnership)
	return c.Patch(ctx, u, client.Apply, opts...) //nolint:staticcheck // unstructured SSA is what we want here
}

func waitEstablished(ctx context.Context, c client.Client, name string) error {
	return cluster.Poll(ctx, func() (bool, string, error) {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(crdKind.WithVersion("v1"))
		if err := c.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return false, err.Error(), client.IgnoreNotFound(err)
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, x := range conds {
			if m, ok := x.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("CustomResourceDefinition %s is not established", name), nil
	})
}

// Workloads are the objects `up` waits for and `status` lists: Deployments, StatefulSets, DaemonSets and
// Pods (apps/v1 and v1 only).
func Workloads(objs []Object) []cluster.Workload {
	var ws []cluster.Workload
	for _, o := range objs {
		gvk := o.gvk()
		switch {
		case gvk.Group == "apps" && (gvk.Kind == "Deployment" || gvk.Kind == "StatefulSet" || gvk.Kind == "DaemonSet"),
			gvk.Group == "" && gvk.Kind == "Pod":
			ws = append(ws, cluster.Workload{Kind: gvk.Kind, Namespace: o.U.GetNamespace(), Name: o.U.GetName()})
		}
	}
	return ws
}

// Namespaces lists the namespaces of ws, each once, in order.
func Namespaces(ws []cluster.Workload) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range ws {
		if !seen[w.Namespace] {
			seen[w.Namespace] = true
			out = append(out, w.Namespace)
		}
	}
	return out
}

// The record of the user's workloads is a ConfigMap in the lab itself, so that status reads the same
// lab whichever machine or directory it runs from.
const (
	recordNamespace = "kube-system"
	recordName      = "meshlab-apps"
	recordKey       = "workloads"
)

// Record adds ws to the lab's record of the user's workloads (what earlier `up --with` runs recorded is
// kept: their workloads are still in the lab).
func Record(ctx context.Context, c client.Client, ws []cluster.Workload) error {
	have, err := Recorded(ctx, c)
	if err != nil {
		return err
	}
	seen := map[cluster.Workload]bool{}
	var lines []string
	for _, w := range append(have, ws...) {
		if !seen[w] {
			seen[w] = true
			lines = append(lines, fmt.Sprintf("%s %s/%s", w.Kind, w.Namespace, w.Name))
		}
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: recordNamespace, Name: recordName, Labels: map[string]string{"app.kubernetes.io/managed-by": "meshlab"}},
		Data:       map[string]string{recordKey: strings.Join(lines, "\n") + "\n"},
	}
	return c.Patch(ctx, cm, client.Apply, client.FieldOwner(cluster.FieldManager), client.ForceOwnership) //nolint:staticcheck // typed SSA
}

// Recorded returns the user's workloads recorded in the lab, none when nothing was ever recorded.
func Recorded(ctx context.Context, c client.Client) ([]cluster.Workload, error) {
	var cm corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: recordNamespace, Name: recordName}, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading the record of your workloads (ConfigMap %s/%s): %w", recordNamespace, recordName, err)
	}
	return parseRecord(cm.Data[recordKey])
}

// parseRecord reads the lines `Kind namespace/name` that Record writes.
func parseRecord(text string) ([]cluster.Workload, error) {
	var ws []cluster.Workload
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		kind, ref, ok1 := strings.Cut(line, " ")
		ns, name, ok2 := strings.Cut(ref, "/")
		if !ok1 || !ok2 || kind == "" || ns == "" || name == "" {
			return nil, fmt.Errorf("ConfigMap %s/%s line %d: %q is not `Kind namespace/name`", recordNamespace, recordName, i+1, line)
		}
		ws = append(ws, cluster.Workload{Kind: kind, Namespace: ns, Name: name})
	}
	return ws, nil
}
