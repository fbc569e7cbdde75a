package checks

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/meshlab/meshlab/scenarios"
)

func runOffline(t *testing.T, paths ...string) *scenarios.Report {
	t.Helper()
	files, err := Load(paths)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return Run(context.Background(), Options{Offline: true, BundleDir: t.TempDir()}, files)
}

func TestOfflineExample(t *testing.T) {
	rep := runOffline(t, filepath.Join("..", "examples", "canary", "canary.txtar"))
	res := rep.Results[0]
	for _, l := range res.Log {
		t.Log(l)
	}
	for _, f := range res.Failures {
		t.Log(f.String())
	}
	for _, p := range res.Phases {
		t.Logf("%s %s %s", p.Name, p.Status, p.SkipReason)
	}
	if res.Status != scenarios.StatusPassed {
		t.Fatalf("status %s", res.Status)
	}
}
