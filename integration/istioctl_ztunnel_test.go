package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/cli/ztunnelconfig"
	"github.com/meshlab/meshlab/dataplane/netnstest"
	"github.com/meshlab/meshlab/internal/istioctltest"
)

// checkIstioctl saves each ztunnel's /config_dump while sleep holds connections open (to echo's pod and
// to the guarded service), and has a real istioctl read the files: `istioctl ztunnel-config
// workload|service|policy|certificate|connections|all --file` must succeed, show the mesh's rows, and
// print exactly what `meshlab ztunnel-config` prints for the same file.
func (m *testbed) checkIstioctl(t *testing.T) {
	istioctltest.Path(t)
	tr := &http.Transport{DialContext: m.sleep.DialContext}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	for _, url := range []string{"http://" + m.echo.Addr(appPort) + "/", "http://" + guardedVIP + "/"} {
		if st, body, err := do(hc, "GET", url, nil); err != nil || st != 200 {
			t.Fatalf("sleep -> %s = %d %q %v", url, st, body, err)
		}
	}
	sleep, echo, guarded := m.sleep.PodName+"."+meshNS, m.echo.PodName+"."+meshNS, m.guarded.PodName+"."+meshNS
	ws := `\s+`
	for _, c := range []struct {
		node *netnstest.Node
		// want maps a kind to rows (regular expressions over a whole line) its table must hold.
		want map[string][]string
	}{
		{m.node0, map[string][]string{
			"workload": {
				meshNS + ws + m.sleep.PodName + ws + regexp.QuoteMeta(m.sleep.IP.String()) + ws + "node0" + ws + "None" + ws + "HBONE",
				meshNS + ws + m.webV1.PodName + ws + regexp.QuoteMeta(m.webV1.IP.String()) + ws + "node1" + ws + "None" + ws + "HBONE",
				legacyNS + ws + m.plain.PodName + ws + regexp.QuoteMeta(m.plain.IP.String()) + ws + "node0" + ws + "None" + ws + "TCP",
			},
			"service": {
				meshNS + ws + "echo" + ws + regexp.QuoteMeta(echoVIP) + ws + "None" + ws + "1/1",
				// web's waypoint is the Gateway's status address (the waypoint pod's IP here), which is no
				// Service's VIP: istioctl says NA.
				meshNS + ws + "web" + ws + regexp.QuoteMeta(webVIP) + ws + "NA" + ws + "2/2",
			},
			"certificate": {regexp.QuoteMeta(spiffe(meshNS, "sleep")) + ws + "Leaf" + ws + "Available" + ws + "true" + ws + "[0-9a-f]+" + ws + `\S+Z` + ws + `\S+Z`},
			"connections": {
				regexp.QuoteMeta(sleep) + ws + "Outbound" + ws + regexp.QuoteMeta(sleep) + `:\d+` + ws + regexp.QuoteMeta(echo) + ":15008" + ws + regexp.QuoteMeta(echo) + fmt.Sprintf(":%d", appPort) + ws + "HBONE",
				regexp.QuoteMeta(sleep) + ws + "Outbound" + ws + regexp.QuoteMeta(sleep) + `:\d+` + ws + regexp.QuoteMeta(guarded) + ":15008" + ws + `guarded\.mesh\.svc\.cluster\.local` + fmt.Sprintf(":%d", svcPort) + ws + "HBONE",
			},
		}},
		{m.node1, map[string][]string{
			// The L4 policies select pods on node1; the control plane sends them to its ztunnel only.
			"policy": {
				meshNS + ws + "echo-deny-other" + ws + "Deny" + ws + "WorkloadSelector",
				meshNS + ws + "guarded-allow-sleep" + ws + "Allow" + ws + "WorkloadSelector",
			},
			"certificate": {regexp.QuoteMeta(spiffe(meshNS, "echo")) + ws + "Leaf" + ws + "Available" + ws + "true" + ws + "[0-9a-f]+" + ws + `\S+Z` + ws + `\S+Z`},
			"connections": {
				regexp.QuoteMeta(echo) + ws + "Inbound" + ws + regexp.QuoteMeta(echo) + fmt.Sprintf(":%d", appPort) + ws + regexp.QuoteMeta(sleep) + `:\d+` + ws + "HBONE",
				regexp.QuoteMeta(guarded) + ws + "Inbound" + ws + regexp.QuoteMeta(guarded) + fmt.Sprintf(":%d", appPort) + ws + regexp.QuoteMeta(sleep) + `:\d+` + ws + "HBONE",
			},
		}},
	} {
		st, body, err := request(c.node, "GET", "http://"+adminAddr+"/config_dump", nil)
		if err != nil || st != http.StatusOK {
			t.Fatalf("%s config_dump: %d %v", c.node.Name, st, err)
		}
		file := filepath.Join(t.TempDir(), c.node.Name+"-config_dump.json")
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{"workload", "service", "policy", "certificate", "connections", "all"} {
			got, stderr, err := istioctltest.Run(t, "ztunnel-config", kind, "--file", file)
			if err != nil {
				t.Errorf("%s: istioctl ztunnel-config %s --file: %v\n%s", c.node.Name, kind, err, stderr)
				continue
			}
			for _, row := range c.want[kind] {
				if !regexp.MustCompile(`(?m)^` + row + `\s*$`).MatchString(got) {
					t.Errorf("%s: istioctl ztunnel-config %s has no row like %q:\n%s", c.node.Name, kind, row, got)
				}
			}
			var out, errOut bytes.Buffer
			env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &errOut}, Globals: &cliutil.Globals{}}
			cmd := ztunnelconfig.NewCommand(env)
			cmd.SetArgs([]string{kind, "--file", file})
			if err := cmd.Execute(); err != nil {
				t.Errorf("%s: meshlab ztunnel-config %s: %v", c.node.Name, kind, err)
				continue
			}
			if w, g := strings.Split(got, "\n"), strings.Split(out.String(), "\n"); strings.Join(w, "\n") != strings.Join(g, "\n") {
				for i := range max(len(w), len(g)) {
					if i >= len(w) || i >= len(g) || w[i] != g[i] {
						t.Errorf("%s: ztunnel-config %s differs from istioctl's at line %d:\nmeshlab:\n%s\nistioctl:\n%s", c.node.Name, kind, i+1, out.String(), got)
						break
					}
				}
			}
			if testing.Verbose() {
				t.Logf("%s: istioctl ztunnel-config %s:\n%s", c.node.Name, kind, got)
			}
		}
	}
}
