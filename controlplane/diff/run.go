package diff

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
)

// Input is what one diff compares.
type Input struct {
	Base Base
	// Files hold the change (-f): the objects to put on top of the base (Overlay) or the whole new world
	// (Replace).
	Files []string
	Mode  Mode
	// Proxies narrows the report to these proxies; empty means every proxy.
	Proxies []model.Proxy
}

// Result is a diff's report and what the user should hear about the input.
type Result struct {
	Report   *Report
	Warnings []ingest.Warning // from loading the base and the files
	// Problems are the new world's config problems that the base does not have (a route to a service
	// that does not exist...): what the change would break, besides what it changes.
	Problems []model.Problem
}

// Run loads both worlds with the loader and validation `meshlab render` uses, builds a snapshot of each
// and compares every proxy's config. Bad input (malformed YAML, an unknown kind, an invalid object) is
// an error naming file and line; nothing is compared then.
func Run(ctx context.Context, in Input) (*Result, error) {
	if in.Base == nil {
		return nil, fmt.Errorf("no base world")
	}
	base, warnings, err := in.Base.Load(ctx)
	if err != nil {
		return &Result{Warnings: warnings}, err
	}
	changes, w, err := ingest.LoadFiles(in.Files...)
	warnings = append(warnings, w...)
	if err != nil {
		return &Result{Warnings: warnings}, err
	}
	if in.Mode == Overlay {
		if err := skippedChanges(w); err != nil {
			return &Result{Warnings: warnings[:len(warnings)-len(w)]}, err // the error says it all
		}
	}
	newStore, err := NewWorld(base, changes, in.Mode)
	if err != nil {
		return &Result{Warnings: warnings}, err
	}
	oldSnap, newSnap := model.Build(base.Objects()), model.Build(newStore.Objects())
	report, err := Compute(oldSnap, newSnap, in.Proxies)
	if err != nil {
		return &Result{Warnings: warnings}, err
	}
	return &Result{Report: report, Warnings: warnings, Problems: newProblems(oldSnap.Problems, newSnap.Problems)}, nil
}

func newProblems(before, after []model.Problem) []model.Problem {
	had := map[string]bool{}
	for _, p := range before {
		had[p.String()] = true
	}
	var out []model.Problem
	for _, p := range after {
		if !had[p.String()] {
			out = append(out, p)
		}
	}
	return out
}

// skippedChanges rejects change objects the loader skipped (kinds the control plane does not read): in an
// overlay they are the change itself, and a change the control plane cannot see would read as "no proxy
// changes", a false all-clear. In a base, or a whole new world (Replace), they stay warnings: manifests
// carry Deployments and ConfigMaps besides what the mesh reads.
func skippedChanges(warnings []ingest.Warning) error {
	var errs []error
	for _, w := range warnings {
		if w.Skipped {
			errs = append(errs, fmt.Errorf("%s, line %d: %s; a change the control plane does not read would show no proxy change, so in -f it is an error: leave it out, or give the whole new world with --replace",
				w.Where, w.Line, strings.TrimPrefix(w.Message, "skipping ")))
		}
	}
	return errors.Join(errs...)
}
