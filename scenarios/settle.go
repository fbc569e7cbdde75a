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
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var prev string
	lastChange := since
	var last []string
	for {
		now, err := t.Env.Syncz(ctx)
		if err == nil {
			fp, waiting := settleState(now)
			if fp != prev {
				if prev != "" {
					lastChange = time.Now()
				}
				prev = fp
			}
			last = waiting
			for _, w := range waiting {
				if strings.Contains(w, "NACKED") {
					return 0, fmt.Errorf("a proxy rejected the config: %s", w)
				}
			}
			if len(waiting) == 0 && time.Since(lastChange) >= quiet {
				return lastChange.Sub(since), nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return 0, fmt.Errorf("not settled after %s: %v", timeout, err)
			}
			return 0, fmt.Errorf("not settled after %s:\n%s", timeout, strings.Join(last, "\n"))
		case <-time.After(200 * time.Millisecond):
		}
	}
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
