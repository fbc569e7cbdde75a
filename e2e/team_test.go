package e2e

import (
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/meshlab/meshlab/checks"
	"github.com/meshlab/meshlab/labs"
	"github.com/meshlab/meshlab/scenarios"
)

// TestTeamGatesItsConfig is the example for Go users (issue #13): a team's own Go test, in the
// e2e-framework environment meshlabenv set up (TestMain), gates its mesh config with the same check files
// `meshlab test` runs, through package checks: here the worked example's authorization file (its app, a
// waypoint and an AuthorizationPolicy, in a namespace of its own that is deleted afterwards).
func TestTeamGatesItsConfig(t *testing.T) {
	f := features.New("the team's authorization policy").
		Assess("the client may GET echo and is denied /admin", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			lab, err := scenarios.NewEnv(ctx, clusterName, cfg.Client().RESTConfig())
			if err != nil {
				t.Fatalf("connecting to the lab: %v", err)
			}
			files, err := checks.Load([]string{"../examples/canary/authz.txtar"})
			if err != nil {
				t.Fatalf("loading the check file: %v", err)
			}
			report := checks.Run(ctx, checks.Options{
				Env:       lab,
				Lab:       labs.Config{Meshlab: meshlabBin, Name: clusterName},
				BundleDir: t.TempDir(),
			}, files)
			var out strings.Builder
			report.WriteText(&out)
			t.Logf("checks.Run:\n%s", out.String())
			if passed, failed, skipped := report.Counts(); passed != 1 || failed != 0 || skipped != 0 {
				t.Errorf("the authorization check file: %d passed, %d failed, %d skipped; want it to pass", passed, failed, skipped)
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}
