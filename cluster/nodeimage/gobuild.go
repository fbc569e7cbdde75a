package nodeimage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// kubeStagingModules are the k8s.io modules k8s.io/kubernetes replaces with ./staging/src/...; a module
// that requires k8s.io/kubernetes must pin each to the matching v0.x release itself.
var kubeStagingModules = []string{
	"api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime", "client-go",
	"cloud-provider", "cluster-bootstrap", "code-generator", "component-base", "component-helpers",
	"controller-manager", "cri-api", "cri-client", "csi-translation-lib", "dynamic-resource-allocation",
	"endpointslice", "externaljwt", "kms", "kube-aggregator", "kube-controller-manager", "kube-proxy",
	"kube-scheduler", "kubectl", "kubelet", "metrics", "mount-utils", "pod-security-admission",
	"sample-apiserver", "sample-cli-plugin", "sample-controller",
}

// KubeBinaries are the Kubernetes commands a node needs: three go on the node (kubelet, kubeadm,
// kubectl), the others become the control-plane and kube-proxy images.
var KubeBinaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubeadm", "kubectl"}

// kubeGoMod is the build module for Kubernetes at version v (e.g. v1.33.13).
func kubeGoMod(v string) string {
	minor := strings.TrimPrefix(v, "v1.")
	var b strings.Builder
	fmt.Fprintf(&b, "module meshlab.local/kubebuild\n\ngo 1.24\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n", v)
	for _, m := range kubeStagingModules {
		fmt.Fprintf(&b, "\tk8s.io/%s => k8s.io/%s v0.%s\n", m, m, minor)
	}
	b.WriteString(")\n")
	return b.String()
}

// kubeLDFlags stamps the version the way Kubernetes' own build does, with a fixed build date so the
// output only depends on the inputs.
func kubeLDFlags(v string) string {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	flags := []string{"-s", "-w"}
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		flags = append(flags,
			"-X", pkg+".gitVersion="+v,
			"-X", pkg+".gitMajor="+parts[0],
			"-X", pkg+".gitMinor="+parts[1],
			"-X", pkg+".gitTreeState=clean",
			"-X", pkg+".buildDate=1970-01-01T00:00:00Z",
		)
	}
	return strings.Join(flags, " ")
}

// goModule is one Go build: a generated module in dir whose packages are built into dir/bin.
type goModule struct {
	dir      string
	gomod    string
	mainSrc  string // optional main.go for the module itself
	packages []string
	outputs  []string // binary names go build writes into bin
	ldflags  string
}

// build runs `go build` for the module unless every output already exists. progress hears how far it is:
// "N of M packages compiled", where M is every package the build depends on and N counts those `go build
// -v` reports compiling (packages already in the Go build cache are not compiled, so N may end below M).
func (m goModule) build(ctx context.Context, logf func(string, ...any), progress func(string)) (string, error) {
	bin := filepath.Join(m.dir, "bin")
	if m.built(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	if err := writeIfChanged(filepath.Join(m.dir, "go.mod"), m.gomod); err != nil {
		return "", err
	}
	if m.mainSrc != "" {
		if err := writeIfChanged(filepath.Join(m.dir, "main.go"), m.mainSrc); err != nil {
			return "", err
		}
	}
	env := append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOOS=linux", "GOWORK=off")

	// go list resolves (and downloads) the modules first, which is most of a first run's waiting.
	progress("resolving modules")
	list := exec.CommandContext(ctx, "go", append([]string{"list", "-deps"}, m.packages...)...)
	list.Dir, list.Env = m.dir, env
	deps, err := list.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return "", fmt.Errorf("listing the packages of %s: %w\n%s", strings.Join(m.packages, " "), err, tail(stderr, 30))
	}
	total := strings.Count(string(deps), "\n")

	args := []string{"build", "-v", "-trimpath", "-ldflags", m.ldflags, "-o", bin + "/"}
	args = append(args, m.packages...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Env = m.dir, env
	logf("go build %s (in %s)", strings.Join(m.packages, " "), m.dir)
	counter := &compileCounter{total: total, progress: progress}
	progress(counter.String())
	cmd.Stdout, cmd.Stderr = counter, counter
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", strings.Join(m.packages, " "), err, tail(counter.output.String(), 30))
	}
	return bin, nil
}

// compileCounter reads `go build -v`: a line that is only an import path names a package being compiled;
// anything else (compiler errors, "# pkg" headers) is kept for the error message.
type compileCounter struct {
	total, done int
	partial     string
	output      strings.Builder
	progress    func(string)
}

func (c *compileCounter) Write(p []byte) (int, error) {
	c.output.Write(p)
	lines := strings.Split(c.partial+string(p), "\n")
	c.partial = lines[len(lines)-1]
	for _, l := range lines[:len(lines)-1] {
		if l != "" && !strings.ContainsAny(l, " \t") && !strings.HasPrefix(l, "#") {
			c.done++
		}
	}
	c.progress(c.String())
	return len(p), nil
}

func (c *compileCounter) String() string {
	return fmt.Sprintf("%d of %d packages compiled", c.done, c.total)
}

func (m goModule) built(bin string) bool {
	for _, name := range m.outputs {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return false
		}
	}
	return true
}

func writeIfChanged(path, content string) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == content {
		return nil
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
