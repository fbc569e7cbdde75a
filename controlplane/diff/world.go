// Package diff computes what a config change would do to every proxy before it is applied: both worlds,
// the one before and the one after, go through the control plane's own pipeline (ingest store -> model
// snapshot -> the generators meshlab render and the xDS server use), and the resources each proxy would
// receive are compared one by one, down to the field. `meshlab diff` prints the result.
package diff

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/kube"
)

// Base is the world before the change: FileBase reads it from YAML (--base-file), LiveBase lists a
// running lab's objects into a store, as the control plane's informers do.
type Base interface {
	// Load returns the base objects in a new store, with the loader's warnings. Bad input is an error
	// naming file and line (a *yamldoc.Error), and nothing is returned.
	Load(ctx context.Context) (*ingest.Store, []ingest.Warning, error)
	// String names the base in messages ("files a.yaml, b.yaml", "lab meshlab").
	String() string
}

// FileBase is a base read from YAML files or directories with the loader `meshlab render` uses.
type FileBase struct{ Paths []string }

// Load implements Base.
func (f FileBase) Load(context.Context) (*ingest.Store, []ingest.Warning, error) {
	return ingest.LoadFiles(f.Paths...)
}

func (f FileBase) String() string { return "files " + strings.Join(f.Paths, ", ") }

// LiveBase is a running lab's objects as its control plane sees them: listed from the API server by the
// control plane's own informers into the same store (kube.List).
type LiveBase struct {
	Config *rest.Config
	// Lab names the lab in messages.
	Lab string
}

// Load implements Base. Objects the store refuses are warnings naming the lab.
func (l LiveBase) Load(ctx context.Context) (*ingest.Store, []ingest.Warning, error) {
	clients, err := kube.NewClients(l.Config)
	if err != nil {
		return nil, nil, err
	}
	store, msgs, err := kube.List(ctx, clients, 30*time.Second)
	if err != nil {
		return nil, nil, fmt.Errorf("listing the objects of %s: %w", l, err)
	}
	var warnings []ingest.Warning
	for _, m := range msgs {
		warnings = append(warnings, ingest.Warning{Where: l.String(), Message: m})
	}
	return store, warnings, nil
}

func (l LiveBase) String() string { return "lab " + l.Lab }

// Mode says how the -f objects make the new world.
type Mode int

const (
	// Overlay: the new world is the base with every -f object added, replacing the base object of the same
	// kind, namespace and name. -f holds only what changes; nothing can be deleted this way.
	Overlay Mode = iota
	// Replace: the -f objects are the whole new world; whatever the base has and -f lacks is deleted.
	Replace
)

// NewWorld returns the store of the world after the change: changes on top of base (Overlay), or changes
// alone (Replace). Neither input store is modified.
func NewWorld(base, changes *ingest.Store, mode Mode) (*ingest.Store, error) {
	if mode == Replace {
		return changes, nil
	}
	out := ingest.NewStore()
	for _, s := range []*ingest.Store{base, changes} {
		for _, kind := range ingest.Kinds {
			for _, obj := range s.List(kind) {
				if _, err := out.Add(obj); err != nil {
					return nil, fmt.Errorf("new world: %w", err)
				}
			}
		}
	}
	return out, nil
}
