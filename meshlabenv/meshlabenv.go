// Package meshlabenv gives sigs.k8s.io/e2e-framework users a meshlab lab: a cluster provider on the kind
// library (through meshlab's lab and cluster packages) that brings up the kind cluster with meshlab's
// mesh, bookinfo and sleep, and env.Funcs to set it up before a test package and tear it down after.
//
//	testenv = env.New()
//	testenv.Setup(meshlabenv.Setup(meshlabenv.Options{Name: "meshlab-e2e"}))
//	testenv.Finish(meshlabenv.Finish(meshlabenv.Options{Name: "meshlab-e2e"}))
//
// The provider also plugs into e2e-framework's own helpers:
// envfuncs.CreateCluster(meshlabenv.NewProvider(opts), name) and envfuncs.DestroyCluster(name).
//
// Bringing the lab up packs a meshlab binary into the image the pods run. A test binary is not one, so
// tests name the meshlab binary to use (Options.Binary, or $MESHLAB_BIN) and the provider runs its `up`
// and `down`; without one it calls lifecycle.Up in-process, which is right only in a program that is itself a
// meshlab binary.
package meshlabenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"

	"sigs.k8s.io/e2e-framework/klient"
	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/support"

	"github.com/meshlab/meshlab/lifecycle"
	"github.com/meshlab/meshlab/log"
)

// DefaultName is the cluster name tests use unless told otherwise, apart from the interactive lab's.
const DefaultName = "meshlab-e2e"

// Options shape the lab.
type Options struct {
	Name string // kind cluster name (default DefaultName); the kube context is kind-<Name>
	// Binary is the meshlab binary whose `up` and `down` run (default $MESHLAB_BIN). Empty: lifecycle.Up and
	// lifecycle.Down in-process.
	Binary string
	// Kubeconfig is where the cluster's kubeconfig is written (default: a file in the temp directory).
	Kubeconfig string
	Wait       time.Duration // how long `up` waits for readiness (default 10m)
	Workers    int
	// RecreateBroken deletes and creates again a cluster of this name that exists but is broken (nodes
	// stopped, API server not ready), as `up --recreate-broken`: right for a test suite's own cluster.
	RecreateBroken bool
	// Keep leaves the cluster running after Finish (also with MESHLAB_KEEP=1): a second run reuses it.
	Keep bool
	// Logger receives progress (default: stderr, verbosity 0).
	Logger log.Logger
}

func (o Options) withDefaults() Options {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Binary == "" {
		o.Binary = os.Getenv("MESHLAB_BIN")
	}
	if o.Kubeconfig == "" {
		o.Kubeconfig = filepath.Join(os.TempDir(), "meshlabenv-"+o.Name+".kubeconfig")
	}
	if o.Wait == 0 {
		o.Wait = 10 * time.Minute
	}
	if os.Getenv("MESHLAB_KEEP") == "1" {
		o.Keep = true
	}
	if o.Logger == nil {
		o.Logger = log.NewWriter(os.Stderr, 0)
	}
	return o
}

// Setup returns an env.Func that brings the lab up (reusing a running one) and points the envconf at its
// kubeconfig.
func Setup(opts Options) env.Func {
	opts = opts.withDefaults()
	return func(ctx context.Context, cfg *envconf.Config) (context.Context, error) {
		p := NewProvider(opts)
		kubeconfig, err := p.Create(ctx)
		if err != nil {
			return ctx, err
		}
		cfg.WithKubeconfigFile(kubeconfig)
		return context.WithValue(ctx, support.ClusterNameContextKey(opts.Name), support.E2EClusterProvider(p)), nil
	}
}

// Finish returns an env.Func that deletes the lab (unless Options.Keep or MESHLAB_KEEP=1).
func Finish(opts Options) env.Func {
	opts = opts.withDefaults()
	return func(ctx context.Context, _ *envconf.Config) (context.Context, error) {
		return ctx, NewProvider(opts).Destroy(ctx)
	}
}

// Provider is an e2e-framework cluster provider for the meshlab lab.
type Provider struct {
	opts Options
	kind *kindcluster.Provider
	rest *rest.Config
}

var _ support.E2EClusterProvider = (*Provider)(nil)

// NewProvider returns a provider for the lab opts describe; nothing is created yet.
func NewProvider(opts Options) *Provider {
	return &Provider{opts: opts.withDefaults(), kind: kindcluster.NewProvider(kindcluster.ProviderWithDocker())}
}

// SetDefaults is part of the provider interface; defaults are set by NewProvider.
func (p *Provider) SetDefaults() support.E2EClusterProvider { return p }

// WithName sets the cluster name.
func (p *Provider) WithName(name string) support.E2EClusterProvider {
	p.opts.Name = name
	p.opts.Kubeconfig = filepath.Join(filepath.Dir(p.opts.Kubeconfig), "meshlabenv-"+name+".kubeconfig")
	return p
}

// WithVersion is not supported: the node image decides the Kubernetes version; it is ignored.
func (p *Provider) WithVersion(string) support.E2EClusterProvider { return p }

// WithPath sets the meshlab binary that runs `up` and `down`.
func (p *Provider) WithPath(path string) support.E2EClusterProvider {
	p.opts.Binary = path
	return p
}

// WithOpts applies e2e-framework cluster options.
func (p *Provider) WithOpts(opts ...support.ClusterOpts) support.E2EClusterProvider {
	for _, o := range opts {
		o(p)
	}
	return p
}

// Create brings the lab up (meshlab up: kind cluster, mesh, bookinfo, sleep) and returns the path of a
// kubeconfig for it.
func (p *Provider) Create(ctx context.Context, _ ...string) (string, error) {
	o := p.opts
	if o.Binary != "" {
		args := []string{"up", "--offline", "--wait", o.Wait.String(), "--workers", fmt.Sprint(o.Workers)}
		if o.RecreateBroken {
			args = append(args, "--recreate-broken")
		}
		if err := p.meshlab(ctx, args...); err != nil {
			return "", err
		}
	} else if _, err := lifecycle.Up(ctx, lifecycle.UpOptions{Name: o.Name, Offline: true, Workers: o.Workers, Wait: o.Wait, Ambient: true, RecreateBroken: o.RecreateBroken}, o.Logger); err != nil {
		return "", fmt.Errorf("meshlab up: %w", err)
	}
	return p.writeKubeconfig()
}

// CreateWithConfig is Create; meshlab decides the kind config itself, so configFile must be empty.
func (p *Provider) CreateWithConfig(ctx context.Context, configFile string) (string, error) {
	if configFile != "" {
		return "", fmt.Errorf("meshlabenv: the lab's kind config is meshlab's own; got %s", configFile)
	}
	return p.Create(ctx)
}

func (p *Provider) writeKubeconfig() (string, error) {
	if err := os.MkdirAll(filepath.Dir(p.opts.Kubeconfig), 0o755); err != nil {
		return "", err
	}
	raw, err := p.kind.KubeConfig(p.opts.Name, false)
	if err != nil {
		return "", fmt.Errorf("reading the kubeconfig of %s: %w", p.opts.Name, err)
	}
	if err := os.WriteFile(p.opts.Kubeconfig, []byte(raw), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", p.opts.Kubeconfig, err)
	}
	if p.rest, err = clientcmd.RESTConfigFromKubeConfig([]byte(raw)); err != nil {
		return "", err
	}
	return p.opts.Kubeconfig, nil
}

// GetKubeconfig returns the kubeconfig path Create wrote.
func (p *Provider) GetKubeconfig() string { return p.opts.Kubeconfig }

// GenerateKubeconfig writes the kubeconfig afresh and returns its path.
func (p *Provider) GenerateKubeconfig(...string) (string, error) { return p.writeKubeconfig() }

// GetKubectlContext is kind's context name for the cluster.
func (p *Provider) GetKubectlContext() string { return "kind-" + p.opts.Name }

// ExportLogs collects the nodes' and pods' logs with kind into dest.
func (p *Provider) ExportLogs(_ context.Context, dest string) error {
	return p.kind.CollectLogs(p.opts.Name, dest)
}

// Destroy deletes the lab, unless Keep is set.
func (p *Provider) Destroy(ctx context.Context) error {
	if p.opts.Keep {
		p.opts.Logger.V(0)("keeping cluster %s (MESHLAB_KEEP=1)", p.opts.Name)
		return nil
	}
	if p.opts.Binary != "" {
		return p.meshlab(ctx, "down")
	}
	_, err := lifecycle.Down(p.opts.Name, "", p.opts.Logger)
	return err
}

// WaitForControlPlane returns at once: Create already waited for the whole lab to be ready.
func (p *Provider) WaitForControlPlane(context.Context, klient.Client) error { return nil }

// KubernetesRestConfig is the client config of the cluster, once created.
func (p *Provider) KubernetesRestConfig() *rest.Config { return p.rest }

// meshlab runs the meshlab binary against this provider's cluster.
func (p *Provider) meshlab(ctx context.Context, args ...string) error {
	args = append([]string{"--name", p.opts.Name}, args...)
	cmd := exec.CommandContext(ctx, p.opts.Binary, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	p.opts.Logger.V(0)("running %s %s", p.opts.Binary, strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", p.opts.Binary, strings.Join(args, " "), err, out.String())
	}
	p.opts.Logger.V(1)("%s %s took %s:\n%s", p.opts.Binary, strings.Join(args, " "), time.Since(start).Round(time.Second), out.String())
	return nil
}
