package ztunnel_test

import (
	"strings"
	"testing"

	"github.com/meshlab/meshlab/dataplane/ztunnel"
)

// TestStrictRefusesPlaintext: PeerAuthentication STRICT as the control plane converts it for ztunnel (the
// workload references Istio's static DENY policy istio-system/istio_converted_static_strict, which denies a
// connection with no peer identity). A pod outside the mesh (legacy, not enrolled: its connection reaches
// httpbin's ztunnel as plain text on 15006) is refused and the refusal logged; an enrolled pod (HBONE,
// sleep's identity) still gets through.
func TestStrictRefusesPlaintext(t *testing.T) {
	m := newMesh(t)
	url := "http://" + m.httpbin.Addr(8080) + "/"
	if _, err := get(httpClient(m.legacy), url); err != nil {
		t.Fatalf("legacy -> httpbin without STRICT: %v", err)
	}

	cfg := m.cfg
	cfg.Workloads = append([]ztunnel.Workload(nil), cfg.Workloads...)
	for i := range cfg.Workloads {
		if cfg.Workloads[i].Name == "httpbin" {
			cfg.Workloads[i].AuthorizationPolicies = []string{"istio-system/istio_converted_static_strict"}
		}
	}
	cfg.Policies = append(append([]ztunnel.Policy(nil), cfg.Policies...), ztunnel.Policy{
		Name: "istio_converted_static_strict", Namespace: "istio-system", Scope: ztunnel.ScopeWorkloadSelector,
		Action: ztunnel.ActionDeny, Rules: []ztunnel.Rule{{NotPrincipals: []string{"*"}}},
	})
	if err := m.zt1.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}

	from := len(m.log1.String())
	if body, err := get(httpClient(m.legacy), url); err == nil {
		t.Fatalf("legacy -> httpbin under STRICT got through: %q", body)
	}
	waitFor(t, "the STRICT refusal in httpbin's ztunnel access log", func() bool {
		for _, line := range strings.Split(m.log1.String()[from:], "\n") {
			if strings.Contains(line, "\terror\taccess\t") && strings.Contains(line, `src.addr="`+m.legacy.IP.String()+`:`) &&
				strings.Contains(line, `protocol="TCP"`) && !strings.Contains(line, "src.identity") &&
				strings.Contains(line, "denied by policy istio-system/istio_converted_static_strict") {
				return true
			}
		}
		return false
	})

	body, err := get(httpClient(m.sleep), url)
	if want := "hello " + m.sleep.IP.String() + " from httpbin"; err != nil || body != want {
		t.Errorf("sleep -> httpbin under STRICT = %q, %v; want %q", body, err, want)
	}
}
