package controlplane_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/controlplane"
	"github.com/meshlab/meshlab/cli/ui"
)

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--push-concurrency", "0"},
		{"--debounce-after", "-1s"},
	} {
		var out bytes.Buffer
		env := cliutil.Env{Logger: ui.NewLogger(&out, 0, false), Streams: ui.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &out}, Globals: &cliutil.Globals{}}
		cmd := controlplane.NewCommand(env)
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		if err := cmd.Execute(); !cliutil.IsUsage(err) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}
