package check

import (
	"bytes"
	"testing"

	"github.com/meshlab/meshlab/diagnose"
)

func TestPrint(t *testing.T) {
	var out bytes.Buffer
	n := Print(&out, []diagnose.Result{
		{Name: "control plane ready", OK: true, Detail: "meshlab-controlplane-1 is ready"},
		{Name: "injection template", Detail: "parse error", Fix: "kubectl edit configmap istio-sidecar-injector"},
	})
	want := ` ✓ control plane ready: meshlab-controlplane-1 is ready
 ✗ injection template: parse error
     → kubectl edit configmap istio-sidecar-injector
1 problem(s) found
`
	if n != 1 || out.String() != want {
		t.Errorf("Print = %d\n%s\nwant 1\n%s", n, out.String(), want)
	}
}
