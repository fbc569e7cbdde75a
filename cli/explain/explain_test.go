package explain_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	cliexplain "github.com/meshlab/meshlab/cli/explain"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

const productpage = "default/productpage-v1-6b746f74dc-9stvs"

func run(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &errOut}, Globals: &cliutil.Globals{}}
	cmd := cliexplain.NewCommand(env)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestExplain(t *testing.T) {
	bookinfo, vs := modeltest.Path(modeltest.Bookinfo), modeltest.Path(modeltest.ReviewsVS)
	out, _, err := run("-f", bookinfo, "-f", vs, "--from", productpage, "http://reviews:9080/reviews/0", "-H", "end-user: jason")
	if err != nil {
		t.Fatalf("explain = %v", err)
	}
	for _, want := range []string{"header End-User: jason", "waypoint  default/reviews-waypoint: label istio.io/use-waypoint=reviews-waypoint on Service default/reviews",
		"route         reviews.default.0  from VirtualService default/reviews http[0]", "90%  inbound-vip|9080|http/v1|reviews.default.svc.cluster.local"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = run("-f", bookinfo, "-f", vs, "--from", productpage, "http://reviews:9080/reviews/0", "-X", "post", "-o", "json")
	if err != nil {
		t.Fatalf("explain -o json = %v", err)
	}
	var r struct {
		Request struct{ Method string }
		Result  struct{ Outcome string }
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Request.Method != "POST" || r.Result.Outcome != "forwarded" {
		t.Errorf("json = %+v, %v\n%s", r, err, out)
	}
}

// TestExplainErrors: what the user got wrong exits 2 (a UsageError) and says where.
func TestExplainErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: Service\nmetadata: {name: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bookinfo := modeltest.Path(modeltest.Bookinfo)
	url := "http://reviews:9080/"
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"no url", []string{"-f", bookinfo, "--from", productpage}, true, "accepts 1 arg"},
		{"deploy offline", []string{"-f", bookinfo, "--from", "deploy/sleep", url}, true, "names a Deployment of a running lab"},
		{"observe offline", []string{"-f", bookinfo, "--from", productpage, "--observe", url}, true, "--observe sends the request on the running lab"},
		{"no from", []string{"-f", bookinfo, url}, true, "give --from"},
		{"bad header", []string{"-f", bookinfo, "--from", productpage, "-H", "nocolon", url}, true, "want 'NAME: VALUE'"},
		{"bad format", []string{"-f", bookinfo, "--from", productpage, "-o", "xml", url}, true, "unknown output format"},
		{"bad yaml", []string{"-f", bad, "--from", productpage, url}, true, "bad.yaml: document 1, line 3: malformed YAML"},
		{"unknown pod", []string{"-f", bookinfo, "--from", "default/nope", url}, true, "no pod default/nope"},
		{"unknown host", []string{"-f", bookinfo, "--from", productpage, "http://nosuch/"}, true, "no Service nosuch.default.svc.cluster.local"},
		{"missing file", []string{"-f", "/nonexistent.yaml", "--from", productpage, url}, false, "/nonexistent.yaml: no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := run(tc.args...)
			if err == nil {
				t.Fatalf("explain succeeded:\n%s", out)
			}
			var u *cliutil.UsageError
			if errors.As(err, &u) != tc.usage {
				t.Errorf("usage error = %v, want %v (%v)", !tc.usage, tc.usage, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want %q", err, tc.want)
			}
			if out != "" {
				t.Errorf("printed despite the error:\n%s", out)
			}
		})
	}
}

// TestExplainLiveNoLab: without -f explain reads the running lab; a lab that cannot be reached exits 2
// saying why, and nothing is printed.
func TestExplainLiveNoLab(t *testing.T) {
	var out, errOut bytes.Buffer
	kubeconfig := filepath.Join(t.TempDir(), "nope")
	env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &errOut}, Globals: &cliutil.Globals{Name: "meshlab", Kubeconfig: kubeconfig}}
	cmd := cliexplain.NewCommand(env)
	cmd.SetArgs([]string{"http://reviews:9080/"})
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	var exit *cliutil.ExitError
	if !errors.As(err, &exit) || exit.Code != 2 || !strings.Contains(err.Error(), kubeconfig) {
		t.Errorf("explain without a lab = %v, want exit 2 naming the kubeconfig", err)
	}
	if out.String() != "" {
		t.Errorf("printed:\n%s", out.String())
	}
}
