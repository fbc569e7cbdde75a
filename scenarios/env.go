package scenarios

import (
	"context"
	"fmt"
	"time"

	"github.com/meshlab/meshlab/log"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshlab/meshlab/cluster"
	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/controlplane/xds"
)

// ErrEnvironment marks problems of the environment rather than of the mesh: no cluster, an API server
// that does not answer, a control plane that is deployed but not reachable. `meshlab scenario` exits 2.
// It is cluster.ErrEnvironment, so that every command classifies them alike.
var ErrEnvironment = cluster.ErrEnvironment

// Env is the running lab a scenario works on.
type Env struct {
	Cluster   string
	Namespace string // where bookinfo and sleep run
	Config    *rest.Config
	Kube      kubernetes.Interface
	Client    client.Client
	// Explain, when set, predicts a request's path hop by hop (`meshlab explain` on this lab); a failed
	// traffic expectation carries its answer for the request it sent. The CLI sets it: explain builds on
	// this package, so the package cannot call it itself.
	Explain func(ctx context.Context, req Request) (string, error)
}

// Connect finds the cluster target names and checks that its API server answers. For the lab (no
// --kubeconfig or --context) it reads the context kind wrote for it, else kind's own kubeconfig; an
// explicit target is resolved as kubectl resolves it (cluster.Target).
func Connect(ctx context.Context, target cluster.Target, logger log.Logger) (*Env, error) {
	name := target.Name
	if target.Explicit() {
		cfg, err := target.RESTConfig(logger)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEnvironment, err)
		}
		env, err := newEnv(ctx, name, target.String(), cfg)
		if err != nil {
			return nil, err
		}
		if env.Namespace, err = target.Namespace(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEnvironment, err)
		}
		return env, nil
	}
	if env, ok := fromKindContext(ctx, name); ok {
		return env, nil
	}
	c := cluster.New(name, "", logger)
	exists, err := c.Exists()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEnvironment, err)
	}
	if !exists {
		return nil, fmt.Errorf("%w: no kind cluster %q: run `meshlab up --name %s` first", ErrEnvironment, name, name)
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEnvironment, err)
	}
	return NewEnv(ctx, name, cfg)
}

// fromKindContext connects through the context kind wrote into the user's kubeconfig when it created the
// cluster (kind-<name>): reading a file costs milliseconds where asking kind (docker) costs a second or
// more, which matters to commands that should answer at once (meshlab explain). An entry that is missing
// or stale (the cluster was recreated: another port, another CA) fails a quick API check, and the caller
// asks kind.
func fromKindContext(ctx context.Context, name string) (*Env, bool) {
	raw, err := clientcmd.NewDefaultClientConfigLoadingRules().Load()
	if err != nil {
		return nil, false
	}
	context := "kind-" + name
	if _, ok := raw.Contexts[context]; !ok {
		return nil, false
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*raw, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, false
	}
	probe := rest.CopyConfig(cfg)
	probe.Timeout = 2 * time.Second
	kc, err := kubernetes.NewForConfig(probe)
	if err != nil {
		return nil, false
	}
	if _, err := kc.Discovery().ServerVersion(); err != nil {
		return nil, false
	}
	env, err := NewEnv(ctx, name, cluster.MarkUnreachable(cfg, name))
	return env, err == nil
}

// NewEnv builds an Env from a client config and checks that the API server answers.
func NewEnv(ctx context.Context, name string, cfg *rest.Config) (*Env, error) {
	return newEnv(ctx, name, fmt.Sprintf("cluster %q", name), cfg)
}

// newEnv is NewEnv with what names the cluster in errors ("cluster \"meshlab\"", "context \"ci\"").
func newEnv(ctx context.Context, name, what string, cfg *rest.Config) (*Env, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS < 50 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEnvironment, err)
	}
	if _, err := kc.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("%w: the API server of %s does not answer: %v", ErrEnvironment, what, err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: cluster.Scheme})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEnvironment, err)
	}
	return &Env{Cluster: name, Namespace: "default", Config: cfg, Kube: kc, Client: cl}, nil
}

// ControlPlaneDeployed reports whether the control plane's Deployment exists.
func (e *Env) ControlPlaneDeployed(ctx context.Context) (bool, error) {
	_, err := e.Kube.AppsV1().Deployments(labclient.ControlPlaneNamespace).Get(ctx, labclient.ControlPlaneDeployment, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// CheckControlPlane is the runner's environment check: when the control plane is deployed, its
// /debug/syncz must answer (through the API server's service proxy). A lab without a control plane is
// fine: scenarios that need one skip.
func (e *Env) CheckControlPlane(ctx context.Context) error {
	deployed, err := e.ControlPlaneDeployed(ctx)
	if err != nil {
		return fmt.Errorf("%w: reading Deployment %s/%s: %v", ErrEnvironment, labclient.ControlPlaneNamespace, labclient.ControlPlaneDeployment, err)
	}
	if !deployed {
		return nil
	}
	if _, err := labclient.Syncz(ctx, e.Kube); err != nil {
		return fmt.Errorf("%w: the control plane is deployed but not reachable: %v", ErrEnvironment, err)
	}
	return nil
}

// Syncz reads the control plane's sync status.
func (e *Env) Syncz(ctx context.Context) (xds.SyncStatus, error) { return labclient.Syncz(ctx, e.Kube) }
