package checks

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/scenarios"
)

const example = "../examples/canary"

func runOffline(t *testing.T, paths ...string) *scenarios.Report {
	t.Helper()
	files, err := Load(paths)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return Run(context.Background(), Options{Offline: true, BundleDir: t.TempDir()}, files)
}

func reportText(t *testing.T, rep *scenarios.Report) string {
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The worked example's check files, and its deliberately broken variants, run --offline on the config
// render computes.
func TestOfflineExample(t *testing.T) {
	tests := []struct {
		file    string
		status  scenarios.Status
		want    []string // in the text report
		ran     []string // phases that must have passed
		skipped []string // phases that must have been skipped, with their reason
	}{
		{
			file:    "canary.txtar",
			status:  scenarios.StatusPassed,
			ran:     []string{"4: apply", "8: route", "9: cluster", "10: cluster", "13: ! holds"},
			skipped: []string{"5: ready", "16: converged", "19: split"},
		},
		{
			file:    "authz.txtar",
			status:  scenarios.StatusPassed,
			ran:     []string{"2: apply"},
			skipped: []string{"3: ready", "6: allowed", "7: denied"},
		},
		{
			file:   "testdata/wrong-weights.txtar",
			status: scenarios.StatusFailed,
			want: []string{"waypoint/echo-waypoint route inbound-vip|80|http|echo.default.svc.cluster.local weights",
				"expected: echo-v1=95,echo-v2=5", "seen:     echo-v1=50,echo-v2=50"},
		},
		{
			file:   "testdata/no-timeout.txtar",
			status: scenarios.StatusFailed,
			want:   []string{"timeout", "expected: 2s", "seen:     0s (none)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			rep := runOffline(t, filepath.Join(example, tc.file))
			res := rep.Results[0]
			text := reportText(t, rep)
			if res.Status != tc.status {
				t.Fatalf("status %s, want %s\n%s\n%s", res.Status, tc.status, text, strings.Join(res.Log, "\n"))
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("report lacks %q:\n%s", w, text)
				}
			}
			phases := map[string]scenarios.PhaseResult{}
			for _, p := range res.Phases {
				phases[p.Name] = p
			}
			find := func(prefix string) (scenarios.PhaseResult, bool) {
				for name, p := range phases {
					if strings.HasPrefix(name, prefix) {
						return p, true
					}
				}
				return scenarios.PhaseResult{}, false
			}
			for _, r := range tc.ran {
				if p, ok := find(r); !ok || p.Status != scenarios.StatusPassed {
					t.Errorf("phase %q: %+v, want passed", r, p)
				}
			}
			for _, s := range tc.skipped {
				if p, ok := find(s); !ok || p.Status != scenarios.StatusSkipped || !strings.Contains(p.SkipReason, "--offline") {
					t.Errorf("phase %q: %+v, want skipped --offline", s, p)
				}
			}
			if tc.status == scenarios.StatusFailed && res.Bundle == "" {
				t.Errorf("a failed file has no bundle")
			}
		})
	}
}

// A file whose every command needs a cluster is skipped --offline, saying so, never passed.
func TestOfflineOnlyTraffic(t *testing.T) {
	path := writeCheck(t, "only-traffic", "# Traffic only.\nallowed -from deploy/client http://echo/\nsplit -weights v1=50,v2=50 http://echo/\n")
	rep := runOffline(t, path)
	res := rep.Results[0]
	if res.Status != scenarios.StatusSkipped || !strings.Contains(res.SkipReason, "nothing in this file runs without a cluster") {
		t.Fatalf("got %s %q, want skipped: nothing runs without a cluster", res.Status, res.SkipReason)
	}
	if rep.ExitCode(false) != scenarios.ExitPassed || rep.ExitCode(true) != scenarios.ExitFailed {
		t.Errorf("exit codes %d/%d", rep.ExitCode(false), rep.ExitCode(true))
	}
}

// Offline objects go through render's loader: a field meshlab does not implement fails the apply, naming it.
func TestOfflineApplyValidates(t *testing.T) {
	path := writeCheck(t, "bad-policy", `# A policy with a typo.
apply policy.yaml
-- policy.yaml --
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: p
spec:
  actoin: DENY
`)
	rep := runOffline(t, path)
	text := reportText(t, rep)
	if rep.Results[0].Status != scenarios.StatusFailed || !strings.Contains(text, "spec.actoin") || !strings.Contains(text, "policy.yaml") {
		t.Fatalf("want a failure naming policy.yaml and spec.actoin:\n%s", text)
	}
}

// Config assertions on what a later delete removed: the route falls back to the Service.
func TestOfflineDelete(t *testing.T) {
	path := writeCheck(t, "delete", `# Delete the route; the waypoint sends everything to echo.
apply `+filepath.Join(absExample(t), "app.yaml")+` route.yaml
route waypoint/echo-waypoint echo -weights echo-v1=90,echo-v2=10
delete route.yaml
route waypoint/echo-waypoint echo -weights echo=100
-- route.yaml --
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: echo
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - backendRefs:
    - {name: echo-v1, port: 80, weight: 90}
    - {name: echo-v2, port: 80, weight: 10}
`)
	rep := runOffline(t, path)
	if res := rep.Results[0]; res.Status != scenarios.StatusPassed {
		t.Fatalf("status %s:\n%s\n%s", res.Status, reportText(t, rep), strings.Join(res.Log, "\n"))
	}
}

func absExample(t *testing.T) string {
	p, err := filepath.Abs(example)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
