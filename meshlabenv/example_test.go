package meshlabenv_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/meshlabenv"
)

// testenv is the e2e-framework environment; nil unless MESHLAB_E2E=1, so that `go test ./...` on a machine
// without Docker skips instead of creating a cluster.
var testenv env.Environment

func TestMain(m *testing.M) {
	if os.Getenv("MESHLAB_E2E") != "1" {
		os.Exit(m.Run())
	}
	// MESHLAB_BIN names the meshlab binary whose `up` and `down` run (make build writes bin/meshlab).
	opts := meshlabenv.Options{Name: os.Getenv("MESHLAB_E2E_CLUSTER")}
	testenv = env.New()
	testenv.Setup(meshlabenv.Setup(opts))
	testenv.Finish(meshlabenv.Finish(opts))
	os.Exit(testenv.Run(m))
}

// TestProductpageAnswers is the example: a feature that runs curl in the lab's sleep pod and checks the
// product page bookinfo serves.
func TestProductpageAnswers(t *testing.T) {
	if testenv == nil {
		t.Skip("set MESHLAB_E2E=1 (and MESHLAB_BIN) to bring up a meshlab lab with e2e-framework")
	}
	f := features.New("bookinfo").
		Assess("productpage answers sleep", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			rc := cfg.Client().RESTConfig()
			kc, err := kubernetes.NewForConfig(rc)
			if err != nil {
				t.Fatal(err)
			}
			pods, err := labclient.RunningPods(ctx, kc, "default", "app=sleep")
			if err != nil || len(pods) == 0 {
				t.Fatalf("no running sleep pod: %v", err)
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			res, err := labclient.Exec(ctx, rc, kc, "default", pods[0].Name, "", []string{"meshlab", "curl", "-s", "--max-time", "10", "http://productpage:9080/productpage"})
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != 0 || !strings.Contains(res.Stdout, "The Comedy of Errors") {
				t.Errorf("curl exit %d; productpage page lacks the book:\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}
