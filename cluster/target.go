package cluster

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshlab/meshlab/log"
)

// Target is the cluster a command acts on, as the user named it: the lab's kind cluster by Name, or, once
// --kubeconfig or --context is given, a context of a kubeconfig resolved as kubectl resolves it
// (--kubeconfig, else $KUBECONFIG with its files merged, else ~/.kube/config). Without
// either flag meshlab never reads $KUBECONFIG for its lab: a KUBECONFIG pointing at a work cluster must
// not turn `meshlab scenario run` against it.
type Target struct {
	Name       string // kind cluster name
	Kubeconfig string // --kubeconfig
	Context    string // --context
}

// Explicit reports whether the user named a kubeconfig or a context rather than the lab's kind cluster.
func (t Target) Explicit() bool { return t.Kubeconfig != "" || t.Context != "" }

// clientConfig is the target's kubeconfig as kubectl loads it: client-go's clientcmd loading rules and
// overrides, the same ones k8s.io/cli-runtime's ConfigFlags builds (cli-runtime itself would add 35 MB of
// kustomize and printers to the one binary every node loads; see docs/architecture.md). With --kubeconfig
// alone the context is the lab's (kind-<Name>) when the file has it, else the file's current context: a
// kubeconfig written by `kind get kubeconfig` or `meshlab up --kubeconfig` works without --context.
func (t Target) clientConfig() (clientcmd.ClientConfig, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = t.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: t.Context}
	if t.Context == "" && t.Kubeconfig != "" {
		raw, err := clientcmd.LoadFromFile(t.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("%w: reading kubeconfig %s: %w", ErrEnvironment, t.Kubeconfig, err)
		}
		if _, ok := raw.Contexts["kind-"+t.Name]; ok {
			overrides.CurrentContext = "kind-" + t.Name
		}
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides), nil
}

// RESTConfig is the client configuration of the target. Requests that cannot reach its API server fail
// with ErrEnvironment naming the context (or the lab).
func (t Target) RESTConfig(logger log.Logger) (*rest.Config, error) {
	if !t.Explicit() {
		return New(t.Name, "", logger).RESTConfig()
	}
	cc, err := t.clientConfig()
	if err != nil {
		return nil, err
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrEnvironment, t, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	return MarkUnreachable(cfg, t.String()), nil
}

// Namespace is the namespace commands default to: the context's (as kubectl's -n defaults to it) for an
// explicit target, "default" in the lab.
func (t Target) Namespace() (string, error) {
	if !t.Explicit() {
		return "default", nil
	}
	cc, err := t.clientConfig()
	if err != nil {
		return "", err
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrEnvironment, t, err)
	}
	return ns, nil
}

// String names the target in messages.
func (t Target) String() string {
	switch {
	case t.Context != "" && t.Kubeconfig != "":
		return fmt.Sprintf("context %q of kubeconfig %s", t.Context, t.Kubeconfig)
	case t.Context != "":
		return fmt.Sprintf("context %q", t.Context)
	case t.Kubeconfig != "":
		return "kubeconfig " + t.Kubeconfig
	}
	return fmt.Sprintf("cluster %q", t.Name)
}

// ContextName is the kubeconfig context the target resolves to: the --context, else (with --kubeconfig)
// kind-<Name> when the file has it or the file's current context; kind-<Name> for the lab. Subprocesses
// (kubectl in a lab) are given it, so that they act on the same cluster.
func (t Target) ContextName() (string, error) {
	if !t.Explicit() {
		return "kind-" + t.Name, nil
	}
	if t.Context != "" {
		return t.Context, nil
	}
	cc, err := t.clientConfig()
	if err != nil {
		return "", err
	}
	raw, err := cc.RawConfig() // as loaded: without the overrides clientConfig set
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrEnvironment, t, err)
	}
	if _, ok := raw.Contexts["kind-"+t.Name]; ok {
		return "kind-" + t.Name, nil
	}
	return raw.CurrentContext, nil
}
