package wait

import (
	"bytes"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
)

// meshlab wait waits for the whole mesh: istioctl's per-resource arguments are refused as a usage error
// (exit 2), never ignored. Waiting on a lab is tested on kind (e2e, the labs).
func TestRefusesArguments(t *testing.T) {
	for _, args := range [][]string{{"virtualservice", "reviews"}, {"--timeout", "0s"}} {
		var out, errOut bytes.Buffer
		env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Globals: &cliutil.Globals{Name: "none"}}
		cmd := NewCommand(env)
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		err := cmd.Execute()
		if !cliutil.IsUsage(err) {
			t.Errorf("wait %v: error %v, want a usage error", args, err)
		}
	}
}
