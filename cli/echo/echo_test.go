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
