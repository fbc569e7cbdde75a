package scenarios

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldManager owns what scenarios apply, so that teardown can take exactly those fields back.
const FieldManager = "meshlab-scenario"

// appliedObject is one object t.Apply touched: created (teardown deletes it) or pre-existing (teardown
// gives back the fields the scenario set, e.g. a label on the reviews Service).
type appliedObject struct {
	obj     *unstructured.Unstructured
	created bool
}

func (a appliedObject) String() string { return describe(a.obj) }

func describe(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetKind() + " " + u.GetName()
	}
	return u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
}

// DecodeYAML reads Kubernetes objects from multi-document YAML (or JSON); empty documents are skipped.
func DecodeYAML(doc string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(doc), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("decoding YAML: %w", err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("decoding YAML: object %v lacks apiVersion, kind or metadata.name", m)
		}
		out = append(out, u)
	}
}

// Apply server-side-applies the objects in doc (YAML, as a user would `kubectl apply`) and remembers them
// for teardown. Objects that did not exist are deleted at teardown; objects that did exist (a label on a
// bookinfo Service) only lose the fields the scenario applied. It records the control plane's sync state
// first, so that a following t.WaitConverged can tell the new config from the old.
func (t *T) Apply(doc string) {
	objs, err := DecodeYAML(doc)
	t.Must(err, "reading the scenario's objects")
	t.ApplyObjects(objs...)
}

// ApplyObjects is Apply for objects already decoded.
func (t *T) ApplyObjects(objs ...*unstructured.Unstructured) {
	if t.Env == nil {
		t.Fatalf("no lab to apply to")
	}
	t.snapshotBefore()
	for _, u := range objs {
		existing := u.DeepCopy()
		err := t.Env.Client.Get(t.Context(), client.ObjectKeyFromObject(u), existing)
		created := apierrors.IsNotFound(err)
		if err != nil && !created {
			t.Fatalf("reading %s: %v", describe(u), err)
		}
		if err := applyObject(t.Context(), t.Env.Client, u); err != nil {
			t.Fatalf("applying %s: %v", describe(u), err)
		}
		t.mu.Lock()
		if !slices.ContainsFunc(t.applied, func(a appliedObject) bool { return sameObject(a.obj, u) }) {
			t.applied = append(t.applied, appliedObject{obj: u.DeepCopy(), created: created})
		}
		t.mu.Unlock()
		verb := "configured"
		if created {
			verb = "created"
		}
		t.Logf("%s %s", describe(u), verb)
	}
}

// Delete removes objects the scenario applied (a later phase replaces them), recording the sync state
// first like Apply. Pre-existing objects only lose the scenario's fields.
func (t *T) Delete(doc string) {
	objs, err := DecodeYAML(doc)
	t.Must(err, "reading the scenario's objects")
	if t.Env == nil {
		t.Fatalf("no lab to delete from")
	}
	t.snapshotBefore()
	for _, u := range objs {
		t.mu.Lock()
		i := slices.IndexFunc(t.applied, func(a appliedObject) bool { return sameObject(a.obj, u) })
		a := appliedObject{obj: u, created: true}
		if i >= 0 {
			a = t.applied[i]
			t.applied = slices.Delete(t.applied, i, i+1)
		}
		t.mu.Unlock()
		if err := undo(t.Context(), t.Env.Client, a); err != nil {
			if i >= 0 { // teardown, with its own time, tries again
				t.mu.Lock()
				t.applied = slices.Insert(t.applied, min(i, len(t.applied)), a)
				t.mu.Unlock()
			}
			t.Fatalf("removing %s: %v", describe(u), err)
		}
		t.Logf("%s removed", describe(u))
	}
}

func sameObject(a, b *unstructured.Unstructured) bool {
	return a.GroupVersionKind().GroupKind() == b.GroupVersionKind().GroupKind() &&
		a.GetNamespace() == b.GetNamespace() && a.GetName() == b.GetName()
}

func applyObject(ctx context.Context, c client.Client, u *unstructured.Unstructured) error {
	obj := u.DeepCopy()
	obj.SetManagedFields(nil)
	obj.SetResourceVersion("")
	return c.Patch(ctx, obj, client.Apply, client.FieldOwner(FieldManager), client.ForceOwnership) //nolint:staticcheck // SSA of unstructured objects
}

// undo deletes a created object, or applies an empty configuration for a pre-existing one so that
// server-side apply drops exactly the fields the scenario owned.
func undo(ctx context.Context, c client.Client, a appliedObject) error {
	if a.created {
		err := c.Delete(ctx, a.obj.DeepCopy(), client.PropagationPolicy("Background"))
		return client.IgnoreNotFound(err)
	}
	empty := &unstructured.Unstructured{}
	empty.SetAPIVersion(a.obj.GetAPIVersion())
	empty.SetKind(a.obj.GetKind())
	empty.SetNamespace(a.obj.GetNamespace())
	empty.SetName(a.obj.GetName())
	return client.IgnoreNotFound(applyObject(ctx, c, empty))
}

// undoAll reverses what the scenario applied, last first; it keeps going past errors and reports them all.
func (t *T) undoAll(ctx context.Context) error {
	t.mu.Lock()
	applied := slices.Clone(t.applied)
	t.applied = nil
	t.mu.Unlock()
	var errs []error
	for i := len(applied) - 1; i >= 0; i-- {
		if err := undo(ctx, t.Env.Client, applied[i]); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", applied[i], err))
			continue
		}
		t.Logf("teardown: %s removed", applied[i])
	}
	// Deleted namespaces take a while; wait for them so the next scenario starts from a clean lab.
	for _, a := range applied {
		if a.created && a.obj.GetKind() == "Namespace" && a.obj.GetAPIVersion() == "v1" {
			if err := waitGone(ctx, t.Env.Client, a.obj); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func waitGone(ctx context.Context, c client.Client, u *unstructured.Unstructured) error {
	for {
		err := c.Get(ctx, client.ObjectKeyFromObject(u), u.DeepCopy())
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still exists: %w", describe(u), ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// appliedYAML lists what the scenario applied, for a failure bundle.
func (t *T) appliedYAML() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b bytes.Buffer
	for _, a := range t.applied {
		fmt.Fprintf(&b, "# %s (created: %v)\n", a, a.created)
	}
	return b.String()
}
