package scenarios

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/meshlab/meshlab/controlplane/xds"
)

// SettleQuiet is how long syncz must stay unchanged, with every proxy in sync, for WaitSettled: ten times
// the control plane's debounce quiet period, so a push still being debounced is not taken for the end.
const SettleQuiet = time.Second

// WaitSettled waits until every proxy connected to the control plane has acknowledged what it was last
// sent, none has NACKed, and nothing in syncz changed for quiet. It needs no list of affected proxies, so
// check files that change different namespaces can run side by side. It returns how long after since the
// last acknowledged change was seen (0 when nothing changed): the convergence time of a change made at
// since.
func (t *T) WaitSettled(since time.Time, quiet, timeout time.Duration) (time.Duration, error) {
	if t.Env == nil {
		return 0, fmt.Errorf("no lab to wait on")
	}
	return Settle(t.Context(), t.Env.Syncz, nil, since, quiet, timeout)
}

// Settle is WaitSettled for callers without a scenario (meshlab wait). syncz reads the control plane's
// sync status; required, when not nil, lists proxy sets that must each be connected (a waypoint whose
// pods never start is not in syncz at all, so settling alone would not notice it).
func Settle(ctx context.Context, syncz func(context.Context) (xds.SyncStatus, error), required []ProxySet, since time.Time, quiet, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var prev string
	lastChange := since
	var last []string
	for {
		now, err := syncz(ctx)
		if err == nil {
			fp, waiting := settleState(now)
			if fp != prev {
				if prev != "" {
					lastChange = time.Now()
				}
				prev = fp
			}
			for _, w := range waiting {
				if strings.Contains(w, "NACKED") {
					return 0, fmt.Errorf("a proxy rejected the config: %s", w)
				}
			}
			waiting = append(waiting, missing(now, required)...)
			last = append([]string{}, waiting...)
			if len(waiting) == 0 && time.Since(lastChange) >= quiet {
				return lastChange.Sub(since), nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, notThereYet("settled", timeout, last, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// notThereYet is the error of a wait that ran out: what the last successful read of syncz showed was still
// waiting, even when the very last read failed (under load the final request often dies with the
// deadline; its error alone would hide what was not converged), and the read error when no read succeeded.
// last is nil when no read succeeded.
func notThereYet(what string, timeout time.Duration, last []string, lastErr error) error {
	switch {
	case last == nil:
		return fmt.Errorf("not %s after %s: %v", what, timeout, lastErr)
	case lastErr != nil:
		return fmt.Errorf("not %s after %s (the last read of syncz failed: %v); the one before showed:\n%s", what, timeout, lastErr, strings.Join(last, "\n"))
	}
	return fmt.Errorf("not %s after %s:\n%s", what, timeout, strings.Join(last, "\n"))
}

// missing lists the required sets with no connected proxy.
func missing(st xds.SyncStatus, required []ProxySet) []string {
	var out []string
	for _, set := range required {
		found := false
		for _, p := range st.Proxies {
			found = found || set.matches(p)
		}
		if !found {
			out = append(out, set.String()+": no proxy connected")
		}
	}
	return out
}

// settleState is a fingerprint of every proxy's acknowledged config and the proxies not yet in sync.
func settleState(st xds.SyncStatus) (string, []string) {
	var fp, waiting []string
	for _, p := range st.Proxies {
		for _, ty := range p.Types {
			fp = append(fp, p.ID+" "+ty.TypeURL+" "+ty.AckedVersion+" "+ty.SentNonce)
		}
		if why := proxyWaiting(p, p, true, modeSynced); why != "" {
			waiting = append(waiting, p.ID+": "+why)
		}
	}
	sort.Strings(fp)
	sort.Strings(waiting)
	return strings.Join(fp, "\n"), waiting
}
