package proxyconfig_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/proxyconfig"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
	"github.com/meshlab/meshlab/controlplane/render"
)

func run(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &errOut}, Globals: &cliutil.Globals{}}
	cmd := proxyconfig.NewCommand(env)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

func writeDump(t *testing.T) string {
	t.Helper()
	p, _ := model.ProxyFromID("waypoint/default/reviews-waypoint")
	out, err := render.Render(modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsVS), p)
	if err != nil {
		t.Fatal(err)
	}
	js, err := out.Marshal(render.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dump.json")
	if err := os.WriteFile(path, js, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestProxyConfig(t *testing.T) {
	dump := writeDump(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"listeners", "--file", dump, "--waypoint"}, []string{"LISTENER", "envoy://main_internal", "ip=10.96.10.13 -> port=9080"}},
		{[]string{"listener", "--file", dump}, []string{"ADDRESSES", "0.0.0.0", "15008"}},
		{[]string{"routes", "--file", dump}, []string{"VHOST NAME", "inbound|http|9080", "reviews.default"}},
		{[]string{"clusters", "--file", dump}, []string{"DESTINATION RULE", "http/v1", "encap"}},
		{[]string{"endpoints", "--file", dump}, []string{"OUTLIER CHECK", "envoy://connect_originate/10.244.2.14:9080"}},
		{[]string{"all", "--file", dump, "--waypoint"}, []string{"SERVICE FQDN", "LISTENER", "VHOST NAME", "No active or warming secrets found.", "endpoint/envoy://connect_originate/"}},
		{[]string{"routes", "--file", dump, "-o", "json"}, []string{`"weightedClusters"`, `"numRetries": 2`}},
		{[]string{"all", "--file", dump, "-o", "yaml"}, []string{"dynamicActiveClusters:"}},
	} {
		out, err := run(tc.args...)
		if err != nil {
			t.Errorf("%v = %v", tc.args, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

func TestProxyConfigErrors(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "garbage.json")
	// A config dump with a malformed section (an unknown type is not an error: it is shown by name).
	os.WriteFile(garbage, []byte(`{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": 7}]}`), 0o644)
	for _, tc := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"routes"}, true, "give --file"},
		{[]string{}, true, "name what to print"},
		{[]string{"routes", "--file", garbage, "-o", "toml"}, true, "unknown output format"},
		{[]string{"routes", "--file", "/nonexistent.json"}, false, "reading /nonexistent.json"},
		{[]string{"routes", "--file", garbage}, false, "garbage.json: parsing config dump"},
	} {
		_, err := run(tc.args...)
		var u *cliutil.UsageError
		if err == nil || errors.As(err, &u) != tc.usage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v = %v; want usage=%v and %q", tc.args, err, tc.usage, tc.want)
		}
	}
}
