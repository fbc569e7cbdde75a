package suite

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/scenarios"
)

// control-plane-restart: the data plane keeps its config while the control plane is away. A request loop
// from sleep to productpage runs while the control plane Deployment is restarted (what `kubectl rollout
// restart` does), until the new control plane is ready and every proxy has reconnected and acknowledged
// its config again. No request may fail. The loop is bounded in count and in time.
func controlPlaneRestart() *scenarios.Scenario {
	return &scenarios.Scenario{
		Name:        "control-plane-restart",
		Description: "traffic keeps flowing, with no failed request, while the control plane restarts",
		Requires: func(t *scenarios.T) {
			requireMesh(t)
			t.RequireWorkload(bookinfoNS, "productpage-v1")
		},
		Check: func(t *scenarios.T) {
			before, err := t.Env.Syncz(t.Context())
			t.Must(err, "reading /debug/syncz")
			sleep := t.SleepPod()

			loopCtx, stopLoop := context.WithTimeout(t.Context(), restartLoopTime)
			defer stopLoop()
			loop := &requestLoop{}
			var wg sync.WaitGroup
			for range 2 {
				wg.Add(1)
				go func() { defer wg.Done(); loop.run(loopCtx, t, sleep) }()
			}

			restarted := time.Now()
			t.Must(restartDeployment(t.Context(), t, labclient.ControlPlaneNamespace, labclient.ControlPlaneDeployment, restarted), "restarting the control plane")
			t.Must(waitRolledOut(t.Context(), t, labclient.ControlPlaneNamespace, labclient.ControlPlaneDeployment, 90*time.Second), "waiting for the control plane rollout")
			t.Logf("control plane rolled out in %s", time.Since(restarted).Round(time.Millisecond))
			t.Must(waitReconnected(t.Context(), t, before, restarted, 60*time.Second), "waiting for the proxies to reconnect")
			t.Logf("every proxy reconnected and in sync %s after the restart", time.Since(restarted).Round(time.Millisecond))

			// A few more requests on the new control plane's config, then stop.
			loop.waitFor(loopCtx, loop.total()+10)
			stopLoop()
			wg.Wait()
			total, failed := loop.counts()
			t.Logf("%d requests during the restart", total)
			t.Expect(failed == nil, fmt.Sprintf("no request of %d failed during the restart", total), "0 failed", fmt.Sprintf("%d failed: %v", len(failed), failed))
			t.Expect(total >= 20, "enough requests ran across the restart to mean something", ">= 20 requests", total)
		},
	}
}

const (
	restartLoopTime     = 150 * time.Second
	restartLoopRequests = 2000
)

// requestLoop sends sleep -> productpage requests until stopped, counting failures.
type requestLoop struct {
	mu     sync.Mutex
	n      int
	failed []string
}

func (l *requestLoop) run(ctx context.Context, t *scenarios.T, sleep string) {
	for ctx.Err() == nil && l.total() < restartLoopRequests {
		out, err := labclient.Exec(ctx, t.Env.Config, t.Env.Kube, bookinfoNS, sleep, "", scenarios.CurlArgs(scenarios.Request{URL: "http://productpage:9080/health", MaxTime: 5 * time.Second}))
		if ctx.Err() != nil {
			return // stopped mid-request: not a verdict on the mesh
		}
		l.mu.Lock()
		l.n++
		if err != nil {
			l.failed = append(l.failed, "exec: "+err.Error())
		} else if status, _, _, _ := scenarios.ParseCurlOutput(out.Stdout); out.ExitCode != 0 || status != 200 {
			r := scenarios.Response{ExitCode: out.ExitCode, Status: status, Stderr: out.Stderr}
			l.failed = append(l.failed, time.Now().Format("15:04:05.000")+" "+r.String())
		}
		l.mu.Unlock()
	}
}

func (l *requestLoop) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *requestLoop) counts() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.failed
}

// waitFor waits until n requests ran or the loop's time is up.
func (l *requestLoop) waitFor(ctx context.Context, n int) {
	for l.total() < n && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// restartDeployment does what `kubectl rollout restart` does: stamp the pod template so that the
// Deployment rolls its pods.
func restartDeployment(ctx context.Context, t *scenarios.T, namespace, name string, at time.Time) error {
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, at.Format(time.RFC3339))
	_, err := t.Env.Kube.AppsV1().Deployments(namespace).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: scenarios.FieldManager})
	return err
}

// waitRolledOut waits until the Deployment's new pods are all updated and ready and the old ones gone,
// as `kubectl rollout status` does.
func waitRolledOut(ctx context.Context, t *scenarios.T, namespace, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		d, err := t.Env.Kube.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil && rolledOut(d) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deployment %s/%s not rolled out after %s", namespace, name, timeout)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want &&
		s.AvailableReplicas == want && s.ReadyReplicas == want
}

// waitReconnected waits until every proxy connected before the restart is connected again (to the new
// control plane, since the restart) and in sync.
func waitReconnected(ctx context.Context, t *scenarios.T, before xds.SyncStatus, since time.Time, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var missing []string
	for {
		now, err := t.Env.Syncz(ctx)
		if err == nil {
			missing = reconnectMissing(before, now, since)
			if len(missing) == 0 {
				return nil
			}
		} else {
			missing = []string{err.Error()}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s still waiting for %v", timeout, missing)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// reconnectMissing lists the proxies of before that are not yet reconnected since the restart and synced.
func reconnectMissing(before, now xds.SyncStatus, since time.Time) []string {
	byID := map[string]xds.ProxyStatus{}
	for _, p := range now.Proxies {
		byID[p.ID] = p
	}
	var missing []string
	for _, p := range before.Proxies {
		q, ok := byID[p.ID]
		switch {
		case !ok:
			missing = append(missing, p.ID+" not connected")
		case q.ConnectedAt.Before(since):
			missing = append(missing, p.ID+" still on the old connection")
		default:
			for _, ts := range q.Types {
				if !ts.Synced() || ts.NackError != "" {
					missing = append(missing, p.ID+" "+ts.Type+" not in sync")
					break
				}
			}
		}
	}
	return missing
}
