package run

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/dataplane/l7/l7test"
	"github.com/meshlab/meshlab/dataplane/proxyboot"
	"github.com/meshlab/meshlab/dataplane/xdsclient/xdstest"
	"github.com/meshlab/meshlab/identity/ca"
)

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func env() (cliutil.Env, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	streams := ui.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	return cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: streams, Globals: &cliutil.Globals{}}, &out
}

func TestRunWithCertDir(t *testing.T) {
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := authority.WorkloadID("default", "waypoint")
	svid, err := authority.Issue(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certs, key, err := svid.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{proxyboot.CertChainFile: certs, proxyboot.KeyFile: key, proxyboot.RootCertFile: authority.RootPEM()} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv := xdstest.Start(t, "")
	svc := l7test.Service{FQDN: "reviews.default.svc.cluster.local", VIP: "10.96.0.10", Port: 9080}
	srv.Set(t, "waypoint/default/waypoint", "v1", l7test.Waypoint([]l7test.Service{svc}, nil, nil, nil))

	adminAddr, healthAddr := freePort(t), freePort(t)
	e, _ := env()
	cmd := NewCommand(e)
	cmd.SetArgs([]string{"--xds-address", srv.Addr, "--xds-plaintext", "--namespace", "default", "--name", "waypoint",
		"--cert-dir", dir, "--hbone-address", "127.0.0.1:0", "--admin-address", adminAddr, "--health-address", healthAddr})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("waypoint run: %v", err)
		}
	}()
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := get("http://" + healthAddr + "/healthz/ready")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz/ready never became 200 (last %d)", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := get("http://" + adminAddr + "/config_dump"); code != 200 || !strings.Contains(body, "main_internal") {
		t.Errorf("/config_dump = %d %.300s", code, body)
	}
	if reqs := srv.Requests(); len(reqs) == 0 || reqs[0].GetNode().GetId() != "waypoint/default/waypoint" {
		t.Errorf("xDS node = %v", reqs)
	}
}

func TestRunUsage(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "")
	t.Setenv("WAYPOINT_NAME", "")
	e, _ := env()
	cmd := NewCommand(e)
	cmd.SetArgs(nil)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	if err := cmd.Execute(); !cliutil.IsUsage(err) {
		t.Errorf("run without --namespace/--name = %v, want a usage error", err)
	}
}
