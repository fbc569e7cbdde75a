// Package istioctltest runs a real istioctl in tests that check meshlab's output against istioctl's. The
// binary is not part of the build: MESHLAB_ISTIOCTL names it, or it is looked for where Install puts it;
// tests skip, saying how to build it, when it is absent.
package istioctltest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Module is the istioctl the tests were written against.
const Module = "istio.io/istio/istioctl/cmd/istioctl@v0.0.0-20260827124520-eed52ebb66ad"

// Env names the istioctl binary to use.
const Env = "MESHLAB_ISTIOCTL"

// Install is how to build istioctl where Path looks for it.
const Install = "GOBIN=$HOME/.cache/meshlab/istioctl go install " + Module

// Path returns the istioctl to run, or skips t.
func Path(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(Env); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", Env, p, err)
		}
		return p
	}
	home, err := os.UserHomeDir()
	if err == nil {
		p := filepath.Join(home, ".cache", "meshlab", "istioctl", "istioctl")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("no istioctl: set %s or build it with %s", Env, Install)
	return ""
}

// Run runs istioctl with args and returns its stdout and stderr. It is given a kubeconfig of its own
// pointing nowhere, so that it never reaches a cluster the machine may know.
func Run(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := Path(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+t.TempDir())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}
