package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/cluster"
)

// admissionCase is one object sent to the lab's API server with `kubectl apply --dry-run=server`, and the
// same object given to `meshlab render` offline: both must refuse it (or admit it with the warning) and
// say why in the same words.
type admissionCase struct {
	name string
	yaml string
	// denied is what kubectl must print when the object is refused; "" means it is admitted.
	denied []string
	// warning is what kubectl must print as a warning from the webhook when the object is admitted.
	warning string
	// offline is what `meshlab render` must print on stderr when it refuses the file (exit 2).
	offline string
}

const reviewsVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: e2e-reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
`

// admissionCases are the bad inputs issue #12 saw accepted, and one field meshlab does not implement.
var admissionCases = []admissionCase{
	{
		name: "misspelt weight is refused by Istio's CRD schema",
		yaml: reviewsVS + "    - destination: {host: reviews, subset: v1}\n      wieght: 90\n",
		// kubectl's strict field validation on the schema istio.io/api ships.
		denied:  []string{`unknown field "spec.http[0].route[0].wieght"`},
		offline: `unknown field "spec.http[0].route[0].wieght"`,
	},
	{
		name: "negative weight is refused by the validating webhook",
		yaml: reviewsVS + "    - destination: {host: reviews, subset: v1}\n      weight: 110\n" +
			"    - destination: {host: reviews, subset: v2}\n      weight: -10\n",
		denied: []string{`admission webhook "validation.istio.io" denied the request`,
			"spec.http[0].route[1].weight: Invalid value: -10: must not be negative"},
		offline: "spec.http[0].route[1].weight: Invalid value: -10: must not be negative",
	},
	{
		name: "misspelt AuthorizationPolicy action is refused, not read as ALLOW",
		yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: e2e-deny, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  actoin: DENY
  rules: [{}]
`,
		denied:  []string{`unknown field "spec.actoin"`},
		offline: `unknown field "spec.actoin"`,
	},
	{
		name: "a field meshlab does not implement and must not ignore is refused by name",
		yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: e2e-delegate, namespace: default}
spec:
  hosts: [reviews]
  http:
  - delegate: {name: reviews-delegate, namespace: default}
`,
		denied:  []string{`admission webhook "validation.istio.io" denied the request`, "meshlab does not implement VirtualService http.delegate"},
		offline: "meshlab does not implement VirtualService http.delegate",
	},
	{
		name:    "a field meshlab does not implement and can ignore is admitted with a warning",
		yaml:    reviewsVS + "    - destination: {host: reviews, subset: v1}\n    retries: {attempts: 2, retryRemoteLocalities: true}\n",
		warning: "meshlab does not implement VirtualService http.retries.retryRemoteLocalities",
	},
}

// checkAdmission sends each case to the live lab (dry run: nothing is stored) and to `meshlab render`.
func checkAdmission(t *testing.T, ctx context.Context) {
	for _, c := range admissionCases {
		t.Run(c.name, func(t *testing.T) {
			out, err := kubectlCombined(t, ctx, []byte(c.yaml), "apply", "--dry-run=server", "-f", "-")
			t.Logf("kubectl apply --dry-run=server:\n%s", out)
			switch {
			case len(c.denied) > 0 && err == nil:
				t.Errorf("the API server admitted it; want it refused with %q", c.denied)
			case len(c.denied) == 0 && err != nil:
				t.Errorf("the API server refused it: %v", err)
			}
			for _, want := range c.denied {
				if !strings.Contains(out, want) {
					t.Errorf("kubectl's message lacks %q", want)
				}
			}
			if c.warning != "" && (!strings.Contains(out, "Warning: ") || !strings.Contains(out, c.warning)) {
				t.Errorf("kubectl printed no warning %q", c.warning)
			}

			file := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(file, []byte(c.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			// A proxy must be named; the offline checks come before it is looked for.
			stdout, stderr, code := meshlabExit(t, ctx, "render", "-f", file, "--proxy", "ztunnel/"+clusterName+"-control-plane")
			switch {
			case c.offline != "" && code != 2:
				t.Errorf("meshlab render exited %d; want 2 with %q\nstdout:\n%.500s", code, c.offline, stdout)
			case c.offline != "" && !strings.Contains(stderr, c.offline):
				t.Errorf("meshlab render's error lacks %q:\n%s", c.offline, stderr)
			case c.warning != "" && !strings.Contains(stderr, c.warning):
				t.Errorf("meshlab render printed no warning %q:\n%s", c.warning, stderr)
			}
		})
	}
}

// kubectlCombined runs kubectl against the lab and returns what it printed on stdout and stderr together
// (kubectl prints refusals and admission warnings on stderr).
func kubectlCombined(t *testing.T, ctx context.Context, stdin []byte, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, kubectl(t), append([]string{"--context", "kind-" + clusterName}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// meshlabExit runs the binary under test and returns stdout, stderr and the exit status.
func meshlabExit(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, meshlabBin, args...)
	cmd.Env = append(os.Environ(), cluster.NameEnv+"="+clusterName) // the lab, for commands that use one
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("meshlab %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("meshlab %s: exit %d\nstderr:\n%s", strings.Join(args, " "), code, errOut.String())
	return out.String(), errOut.String(), code
}
