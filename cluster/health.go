package cluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// WaitAPIServerReady polls the API server's /readyz until it answers "ok" or timeout passes. A cluster kind
// still lists can be broken: after Docker restarts, its node containers come back with new addresses and
// the API server never becomes ready again, and every later step would fail with an opaque discovery
// error. Reusing a cluster therefore starts here. The error names the cluster and the last answer seen.
func WaitAPIServerReady(ctx context.Context, cfg *rest.Config, name string, timeout time.Duration) error {
	cfg = rest.CopyConfig(cfg)
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		// Each probe has its own short timeout, so that the error reported is the API server's answer
		// (refused, reset, "etcd not ready"), not the end of the overall wait.
		probe, cancel := context.WithTimeout(ctx, 5*time.Second)
		body, err := kube.Discovery().RESTClient().Get().AbsPath("/readyz").MaxRetries(0).DoRaw(probe)
		cancel()
		if err == nil && strings.TrimSpace(string(body)) == "ok" {
			return nil
		}
		last := fmt.Sprintf("/readyz answered %q", strings.TrimSpace(string(body)))
		if err != nil {
			last = err.Error()
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("%w: the API server of cluster %q is not ready after %s: %s", ErrEnvironment, name, timeout, last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
