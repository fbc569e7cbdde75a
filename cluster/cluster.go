// Package cluster creates, inspects and deletes meshlab's kind cluster through the kind library, loads
// meshlab's own image into its nodes and applies what meshlab deploys, waiting until it is ready.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/meshlab/meshlab/log"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
)

// Cluster is one named kind cluster.
type Cluster struct {
	Name       string
	Kubeconfig string // explicit kubeconfig path to write/read; empty means kind's default handling
	provider   *kindcluster.Provider
	logger     log.Logger
}

// New returns a handle for the kind cluster called name; nothing is created yet.
func New(name, kubeconfig string, logger log.Logger) *Cluster {
	return &Cluster{
		Name:       name,
		Kubeconfig: kubeconfig,
		provider:   kindcluster.NewProvider(kindcluster.ProviderWithDocker(), kindcluster.ProviderWithLogger(kindLogger{logger})),
		logger:     logger,
	}
}

// ErrEnvironment marks failures of the machine rather than of meshlab or the mesh: kind cannot list its
// clusters (no Docker), the lab does not exist, its API server does not answer. Commands exit 2 on it.
var ErrEnvironment = errors.New("environment")

// MarkUnreachable makes every request of clients built from cfg that cannot reach the API server at all
// (a refused or timed-out dial, an unknown host) fail with an error wrapping ErrEnvironment that names the
// cluster, so that any command reading the lab exits 2 for it, whichever call met it first.
func MarkUnreachable(cfg *rest.Config, name string) *rest.Config {
	wrap := cfg.WrapTransport
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		if wrap != nil {
			rt = wrap(rt)
		}
		return unreachable{rt: rt, name: name, host: cfg.Host}
	}
	return cfg
}

type unreachable struct {
	rt         http.RoundTripper
	name, host string
}

func (u unreachable) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := u.rt.RoundTrip(r)
	var op *net.OpError
	var dns *net.DNSError
	if err != nil && (errors.As(err, &op) && op.Op == "dial" || errors.As(err, &dns)) {
		return nil, fmt.Errorf("%w: cluster %q is unreachable: its API server %s does not answer: %w", ErrEnvironment, u.name, u.host, err)
	}
	return resp, err
}

// Exists reports whether kind knows the cluster.
func (c *Cluster) Exists() (bool, error) {
	names, err := c.provider.List()
	if err != nil {
		return false, fmt.Errorf("%w: listing kind clusters: %w", ErrEnvironment, err)
	}
	return slices.Contains(names, c.Name), nil
}

// CreateOptions shape a new cluster.
type CreateOptions struct {
	NodeImage string
	Workers   int
	// RestrictOOMScoreAdj is needed where containers cannot lower oom_score_adj (no CAP_SYS_RESOURCE).
	RestrictOOMScoreAdj bool
}

// Create makes the kind cluster without a default CNI (meshlab installs its own) and without waiting
// for readiness, which needs that CNI.
func (c *Cluster) Create(opts CreateOptions) error {
	cfg := &v1alpha4.Cluster{
		TypeMeta:   v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Name:       c.Name,
		Nodes:      []v1alpha4.Node{{Role: v1alpha4.ControlPlaneRole}},
		Networking: v1alpha4.Networking{DisableDefaultCNI: true},
	}
	for i := 0; i < opts.Workers; i++ {
		cfg.Nodes = append(cfg.Nodes, v1alpha4.Node{Role: v1alpha4.WorkerRole})
	}
	if opts.RestrictOOMScoreAdj {
		cfg.ContainerdConfigPatches = append(cfg.ContainerdConfigPatches,
			"[plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n")
	}
	return c.provider.Create(c.Name,
		kindcluster.CreateWithV1Alpha4Config(cfg),
		kindcluster.CreateWithNodeImage(opts.NodeImage),
		kindcluster.CreateWithKubeconfigPath(c.Kubeconfig),
		kindcluster.CreateWithDisplayUsage(false),
		kindcluster.CreateWithDisplaySalutation(false),
	)
}

// Delete removes the cluster's nodes and its kubeconfig entries; deleting a missing cluster is not an error.
func (c *Cluster) Delete() error {
	return c.provider.Delete(c.Name, c.Kubeconfig)
}

// Nodes lists the cluster's node containers.
func (c *Cluster) Nodes() ([]nodes.Node, error) { return c.provider.ListNodes(c.Name) }

// RESTConfig returns a client configuration for the cluster, from kind's own kubeconfig for it.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	raw, err := c.provider.KubeConfig(c.Name, false)
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig of cluster %q: %w", c.Name, err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(raw))
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
	return MarkUnreachable(cfg, c.Name), nil
}

// Clients are the API clients meshlab uses.
type Clients struct {
	Config *rest.Config
	Kube   kubernetes.Interface
	Client client.Client // controller-runtime client for typed apply
}

// Clients connects to the cluster.
func (c *Cluster) Clients() (*Clients, error) {
	cfg, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	return NewClients(cfg)
}

// NewClients returns the API clients meshlab uses for cfg.
func NewClients(cfg *rest.Config) (*Clients, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cl, err := client.New(cfg, client.Options{Scheme: Scheme})
	if err != nil {
		return nil, err
	}
	return &Clients{Config: cfg, Kube: kube, Client: cl}, nil
}

// LoadImage imports an image tarball into every node's containerd, skipping nodes that have it.
func (c *Cluster) LoadImage(ctx context.Context, ref, tarball string) error {
	ns, err := c.Nodes()
	if err != nil {
		return err
	}
	for _, n := range ns {
		var out bytes.Buffer
		if err := n.CommandContext(ctx, "ctr", "--namespace=k8s.io", "images", "ls", "-q", "name=="+ref).SetStdout(&out).Run(); err == nil && strings.TrimSpace(out.String()) != "" {
			continue
		}
		f, err := os.Open(tarball)
		if err != nil {
			return err
		}
		err = n.CommandContext(ctx, "ctr", "--namespace=k8s.io", "images", "import", "--all-platforms", "--digests", "--snapshotter=overlayfs", "-").SetStdin(f).Run()
		f.Close()
		if err != nil {
			return fmt.Errorf("loading %s into node %s: %w", ref, n.String(), err)
		}
	}
	return nil
}

// poll calls check every interval until it reports done, returns an error, or the context ends; the
// last not-done reason is part of the timeout error so the user sees what was still missing.
func poll(ctx context.Context, interval time.Duration, check func() (done bool, reason string, err error)) error {
	var reason string
	for {
		done, r, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		reason = r
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w while waiting: %s", ctx.Err(), reason)
		case <-time.After(interval):
		}
	}
}
