package echo

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	mlecho "github.com/meshlab/meshlab/echo"
)

func TestClientCommandAgainstServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mlecho.Handler(8080, mlecho.Instance{Version: "v2", Hostname: "echo-v2-xyz", Namespace: "apps"})}
	go srv.Serve(ln)
	defer srv.Close()

	var out, errOut bytes.Buffer
	env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &errOut}, Globals: &cliutil.Globals{}}
	cmd := NewCommand(env)
	cmd.SetArgs([]string{"client", "http://" + ln.Addr().String() + "/path", "--method=PUT", "-H", "X-A:1,2", "--count=2"})
	cmd.SetOut(&out)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("client: %v\n%s", err, errOut.String())
	}
	o := out.String()
	for _, want := range []string{"[0] StatusCode=200", "[1 body] Hostname=echo-v2-xyz", "[0 body] Method=PUT", "[1 body] RequestHeader=X-A:1,2", "[0 body] ServiceVersion=v2"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
}

func TestClientNeedsURL(t *testing.T) {
	var out bytes.Buffer
	env := cliutil.Env{Logger: ui.NewLogger(&out, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &out}, Globals: &cliutil.Globals{}}
	cmd := NewCommand(env)
	cmd.SetArgs([]string{"client"})
	if err := cmd.Execute(); !cliutil.IsUsage(err) {
		t.Errorf("client without URL: %v, want a usage error", err)
	}
}

func TestManifestCommand(t *testing.T) {
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		env := cliutil.Env{Logger: ui.NewLogger(&out, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &out}, Globals: &cliutil.Globals{}}
		cmd := NewCommand(env)
		cmd.SetArgs(append([]string{"manifest"}, args...))
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run("--name", "web", "--version", "v3", "--namespace", "shop", "--port", "9090", "--replicas", "2")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: ServiceAccount", "kind: Service\n", "name: web-v3", "namespace: shop", "image: meshlab.local/meshlab:lab",
		"imagePullPolicy: IfNotPresent", "replicas: 2", "version: v3", "- name: http\n    port: 9090"} {
		if !strings.Contains(out, want) {
			t.Errorf("manifest lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "status:") || strings.Contains(out, "creationTimestamp") {
		t.Errorf("manifest carries server-written fields:\n%s", out)
	}
	out, err = run("--service=false", "--image", "me/echo:1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "kind: Service") || !strings.Contains(out, "image: me/echo:1") || strings.Contains(out, "namespace:") {
		t.Errorf("--service=false --image: got\n%s", out)
	}
	for _, bad := range [][]string{{"--name", "Echo"}, {"--version", "v_1"}, {"--port", "0"}, {"--replicas", "-1"}, {"--namespace", "a.b"}} {
		if _, err := run(bad...); !cliutil.IsUsage(err) {
			t.Errorf("manifest %v: %v, want a usage error", bad, err)
		}
	}
}
