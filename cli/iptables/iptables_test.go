package iptables_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cli/cliutil"
	cliiptables "github.com/meshlab/meshlab/cli/iptables"
	"github.com/meshlab/meshlab/cli/ui"
)

func run(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &errOut}, Globals: &cliutil.Globals{}}
	cmd := cliiptables.NewCommand(env)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

func TestDryRun(t *testing.T) {
	// The injected init container's exact arguments.
	out, err := run("-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--dry-run")
	if err != nil {
		t.Fatalf("iptables --dry-run = %v", err)
	}
	for _, want := range []string{
		"-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
		"-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
		"-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN",
		"-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
		"-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if out, err := run("-m", "tproxy", "-b", "9080", "--dry-run"); err != nil || !strings.Contains(out, "--dport 9080 -j ISTIO_TPROXY") {
		t.Errorf("TPROXY dry run = %v\n%s", err, out)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-m", "NAT", "--dry-run"}, {"-b", "http", "--dry-run"}, {"-i", "fd00::/8", "--dry-run"}} {
		if _, err := run(args...); !cliutil.IsUsage(err) {
			t.Errorf("%v: error %v, want a usage error", args, err)
		}
	}
}
