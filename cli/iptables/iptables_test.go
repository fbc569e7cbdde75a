package iptables_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/internal/golden"

	"github.com/meshlab/meshlab/cli/cliutil"
	cliiptables "github.com/meshlab/meshlab/cli/iptables"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/dataplane/iptables"
	"github.com/meshlab/meshlab/dataplane/netnstest"
	"github.com/meshlab/meshlab/dataplane/nft"
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

// injected are the injected init container's exact arguments.
var injected = []string{"-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"}

func TestDryRunGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"injected-nft", injected},
		{"injected-iptables", append([]string{"--backend", "iptables"}, injected...)},
		{"tproxy-nft", []string{"-m", "tproxy", "-b", "9080", "-i", "10.96.0.0/12"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(append(tc.args, "--dry-run")...)
			if err != nil {
				t.Fatalf("iptables %v --dry-run = %v", tc.args, err)
			}
			path := filepath.Join("testdata", tc.name+".golden")
			golden.Check(t, path, []byte(got))
		})
	}
}

func TestDryRun(t *testing.T) {
	out, err := run(append(injected, "--dry-run")...)
	if err != nil {
		t.Fatalf("iptables --dry-run = %v", err)
	}
	for _, want := range []string{
		"table ip meshlab-proxy-nat {",
		"\t\tmeta l4proto tcp redirect to :15001\n",
		"\t\tmeta l4proto tcp redirect to :15006\n",
		"\t\ttcp dport 15021 return\n",
		"\t\tmeta skuid 1337 return\n",
		"\t\tjump ISTIO_REDIRECT\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = run(append([]string{"--backend", "iptables"}, append(injected, "--dry-run")...)...)
	if err != nil {
		t.Fatalf("iptables --backend iptables --dry-run = %v", err)
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
	if out, err := run("-m", "tproxy", "-b", "9080", "--dry-run"); err != nil || !strings.Contains(out, "tcp dport 9080 jump ISTIO_TPROXY") {
		t.Errorf("TPROXY dry run = %v\n%s", err, out)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--backend", "ip6tables", "--dry-run"}, {"-m", "NAT", "--dry-run"}, {"-b", "http", "--dry-run"}, {"-i", "fd00::/8", "--dry-run"}} {
		if _, err := run(args...); !cliutil.IsUsage(err) {
			t.Errorf("%v: error %v, want a usage error", args, err)
		}
	}
}

// TestInstallsWithoutBinaries runs the init container's command inside a pod namespace with an empty PATH,
// as in meshlab's image: the rules must be installed over netlink alone.
func TestInstallsWithoutBinaries(t *testing.T) {
	netnstest.Skip(t)
	pod := netnstest.New(t).AddNode("worker").AddPod("app")
	t.Setenv("PATH", t.TempDir())
	var out string
	if err := pod.Do(func() error { var err error; out, err = run(injected...); return err }); err != nil {
		t.Fatalf("meshlab iptables %v = %v\n%s", injected, err, out)
	}
	got, err := nft.List(pod.Handle, nft.IPv4, iptables.TablePrefix+"-nat")
	if err != nil || got == nil {
		t.Fatalf("List() = %v, %v", got, err)
	}
	if !strings.Contains(out, got.String()) {
		t.Errorf("the kernel holds:\n%s\nthe command printed:\n%s", got, out)
	}
}
