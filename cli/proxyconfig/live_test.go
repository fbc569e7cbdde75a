package proxyconfig

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/controlplane/render"
	"github.com/meshlab/meshlab/scenarios/kube"
)

func TestLiveTarget(t *testing.T) {
	p, _ := model.ProxyFromID("waypoint/default/reviews-waypoint")
	out, err := render.Render(modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsVS), p)
	if err != nil {
		t.Fatal(err)
	}
	dump, err := out.Marshal(render.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	var asked kube.Target
	old := liveDump
	t.Cleanup(func() { liveDump = old })
	liveDump = func(_ context.Context, _ cliutil.Env, target kube.Target) ([]byte, bool, error) {
		asked = target
		return dump, true, nil
	}
	file := filepath.Join(t.TempDir(), "dump.json")
	if err := os.WriteFile(file, dump, 0o644); err != nil {
		t.Fatal(err)
	}

	exec := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		env := cliutil.Env{Logger: ui.NewLogger(&stderr, 0, false), Streams: ui.Streams{Out: &stdout, ErrOut: &stderr}, Globals: &cliutil.Globals{}}
		cmd := NewCommand(env)
		cmd.SetArgs(args)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		return stdout.String(), err
	}

	live, err := exec("listeners", "deploy/reviews-waypoint")
	if err != nil {
		t.Fatal(err)
	}
	if asked != (kube.Target{Kind: "deploy", Name: "reviews-waypoint", Namespace: "default"}) {
		t.Errorf("asked for %+v", asked)
	}
	// A waypoint pod gets the waypoint view without --waypoint, the same table as --file with --waypoint.
	fromFile, err := exec("listeners", "--file", file, "--waypoint")
	if err != nil {
		t.Fatal(err)
	}
	if live != fromFile || !strings.HasPrefix(live, "LISTENER") {
		t.Errorf("live output differs from --file --waypoint:\n%s\nvs\n%s", live, fromFile)
	}

	for _, args := range [][]string{{"routes"}, {"routes", "a", "b"}, {"routes", "svc/x"}, {"routes", "deploy/x", "--file", file}} {
		if _, err := exec(args...); !cliutil.IsUsage(err) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}
