package scenarios

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/controlplane/xds"
)

// ProxySet names the proxies a change affects, as the control plane's /debug/syncz lists them.
type ProxySet struct {
	Kind      string // xds.KindWaypoint, KindSidecar, KindZtunnel; empty: any
	Namespace string // empty: any
	// Name matches the proxy's name, or a pod of it (NAME-...): a waypoint connects under its Gateway's
	// name or its pod's. Empty: any.
	Name string
	// Min is how many matching proxies must be connected (default 1); ztunnels use one per node.
	Min int
}

func (s ProxySet) String() string {
	var parts []string
	for _, p := range []string{s.Kind, s.Namespace, s.Name} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return "every proxy"
	}
	return strings.Join(parts, "/")
}

// Matches reports whether a proxy of syncz belongs to the set.
func (s ProxySet) Matches(p xds.ProxyStatus) bool { return s.matches(p) }

func (s ProxySet) matches(p xds.ProxyStatus) bool {
	return (s.Kind == "" || p.Kind == s.Kind) &&
		(s.Namespace == "" || p.Namespace == s.Namespace) &&
		(s.Name == "" || p.Name == s.Name || strings.HasPrefix(p.Name, s.Name+"-"))
}

// Waypoint is the waypoint proxy of a Gateway.
func Waypoint(namespace, gateway string) ProxySet {
	return ProxySet{Kind: xds.KindWaypoint, Namespace: namespace, Name: gateway}
}

// Ztunnels is every node's ztunnel; Min is set from the DaemonSet when WaitConverged runs.
func Ztunnels() ProxySet { return ProxySet{Kind: xds.KindZtunnel} }

// AllProxies is every connected proxy, none required.
func AllProxies() ProxySet { return ProxySet{Min: -1} }

// convergeMode says what convergence means.
type convergeMode int

const (
	// modeChanged: each matching proxy acknowledged a config different from before the change (or is new).
	modeChanged convergeMode = iota
	// modeSynced: each matching proxy acknowledged whatever it was last sent.
	modeSynced
	// modeRestored: each matching proxy is back at its baseline config, or gone if it is new.
	modeRestored
)

// convergence decides whether now shows the proxies of sets converged relative to ref. It returns what is
// still missing, one line per proxy or set, empty when converged. It is pure so it can be tested.
func convergence(ref, now xds.SyncStatus, sets []ProxySet, mode convergeMode) []string {
	var waiting []string
	refByID := map[string]xds.ProxyStatus{}
	for _, p := range ref.Proxies {
		refByID[p.ID] = p
	}
	for _, set := range sets {
		var matched []xds.ProxyStatus
		for _, p := range now.Proxies {
			if set.matches(p) {
				matched = append(matched, p)
			}
		}
		min := set.Min
		if min == 0 {
			min = 1
		}
		if mode == modeRestored {
			min = 0
		}
		if len(matched) < min {
			waiting = append(waiting, fmt.Sprintf("%s: %d of %d connected", set, len(matched), min))
		}
		for _, p := range matched {
			before, known := refByID[p.ID]
			if why := proxyWaiting(p, before, known, mode); why != "" {
				waiting = append(waiting, p.ID+": "+why)
			}
		}
	}
	slices.Sort(waiting)
	return slices.Compact(waiting)
}

// proxyWaiting says why one proxy is not converged yet, or "".
func proxyWaiting(p, before xds.ProxyStatus, known bool, mode convergeMode) string {
	if len(p.Types) == 0 {
		return "subscribed to nothing yet"
	}
	var unsynced []string
	for _, t := range p.Types {
		switch {
		case t.NackError != "":
			unsynced = append(unsynced, fmt.Sprintf("%s NACKED (%s)", t.Type, t.NackError))
		case !t.Synced():
			unsynced = append(unsynced, t.Type+" STALE")
		}
	}
	if len(unsynced) > 0 {
		return strings.Join(unsynced, ", ")
	}
	switch mode {
	case modeChanged:
		if !known {
			return "" // connected since the change: everything it has is new
		}
		for _, t := range p.Types {
			if bt, ok := before.Type(t.TypeURL); !ok || bt.AckedVersion != t.AckedVersion {
				return ""
			}
		}
		return "still at the config from before the change"
	case modeRestored:
		if !known {
			return "should be gone (it did not exist before the scenario)"
		}
		var differ []string
		for _, t := range p.Types {
			if bt, ok := before.Type(t.TypeURL); ok && bt.AckedVersion != t.AckedVersion {
				differ = append(differ, fmt.Sprintf("%s %s (before: %s)", t.Type, short(t.AckedVersion), short(bt.AckedVersion)))
			}
		}
		if len(differ) > 0 {
			return "not back at its config from before the scenario: " + strings.Join(differ, ", ")
		}
	}
	return ""
}

func short(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}

// WaitConverged waits until every proxy in sets has acknowledged config that differs from what it had
// before the scenario's latest change (t.Apply or t.Delete), polling /debug/syncz until the deadline.
// It needs no sleeps: the versions in syncz are content hashes, so "changed and acknowledged" means the
// new config arrived. With no sets it waits until every connected proxy is in sync.
func (t *T) WaitConverged(sets ...ProxySet) {
	t.mu.Lock()
	ref := t.before
	t.mu.Unlock()
	mode := modeChanged
	if len(sets) == 0 {
		sets, mode = []ProxySet{AllProxies()}, modeSynced
	}
	if ref == nil {
		ref = &xds.SyncStatus{}
	}
	t.mu.Lock()
	t.touched = append(t.touched, sets...)
	t.mu.Unlock()
	if err := t.converge(t.Context(), *ref, sets, mode, DefaultConvergeTimeout); err != nil {
		t.Abortf("waiting for the proxies to converge: %v", err)
	}
	t.mu.Lock()
	t.before = nil
	t.mu.Unlock()
}

// WaitSynced waits until every proxy in sets is connected and has acknowledged what it was last sent,
// without requiring a change (after a control plane restart, for example).
func (t *T) WaitSynced(sets ...ProxySet) {
	if len(sets) == 0 {
		sets = []ProxySet{AllProxies()}
	}
	if err := t.converge(t.Context(), xds.SyncStatus{}, sets, modeSynced, DefaultConvergeTimeout); err != nil {
		t.Abortf("waiting for the proxies to sync: %v", err)
	}
}

func (t *T) converge(ctx context.Context, ref xds.SyncStatus, sets []ProxySet, mode convergeMode, timeout time.Duration) error {
	if t.Env == nil {
		return fmt.Errorf("no lab to wait on")
	}
	sets = t.resolveMins(ctx, sets)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last []string
	var lastErr error
	for {
		now, err := t.Env.Syncz(ctx)
		if err == nil {
			last, lastErr = convergence(ref, now, sets, mode), nil
			if last == nil {
				last = []string{}
			}
			if len(last) == 0 {
				t.Logf("converged (%s) in %s", describeSets(sets), time.Since(start).Round(time.Millisecond))
				return nil
			}
		} else {
			lastErr = err // the control plane may be restarting: keep polling until the deadline
		}
		select {
		case <-ctx.Done():
			return notThereYet("converged", timeout, last, lastErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// resolveMins sets the ztunnel count from the DaemonSet: every node's ztunnel must take part.
func (t *T) resolveMins(ctx context.Context, sets []ProxySet) []ProxySet {
	out := slices.Clone(sets)
	for i, s := range out {
		if s.Kind == xds.KindZtunnel && s.Min == 0 && t.Env != nil {
			ds, err := t.Env.Kube.AppsV1().DaemonSets(labclient.ControlPlaneNamespace).Get(ctx, labclient.ZtunnelDaemonSet, metav1.GetOptions{})
			if err == nil && ds.Status.DesiredNumberScheduled > 0 {
				out[i].Min = int(ds.Status.DesiredNumberScheduled)
			}
		}
	}
	return out
}

func describeSets(sets []ProxySet) string {
	var s []string
	for _, p := range sets {
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}

// snapshotBefore records syncz before a change, unless an earlier change is still waiting.
func (t *T) snapshotBefore() {
	t.mu.Lock()
	have := t.before != nil
	t.mu.Unlock()
	if have || t.Env == nil {
		return
	}
	st, err := t.Env.Syncz(t.Context())
	if err != nil {
		st = xds.SyncStatus{} // no control plane: nothing will converge, WaitConverged will say so
	}
	t.mu.Lock()
	t.before = &st
	t.mu.Unlock()
}
