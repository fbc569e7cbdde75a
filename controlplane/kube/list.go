package kube

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/meshlab/meshlab/controlplane/ingest"
)

// List fills a new store with the API server's objects of every kind the control plane reads, through the
// control plane's own informers (so with the same transforms and store updates), and stops watching once
// each kind has been listed. It is the live lab's world as the control plane sees it, for one-off readers
// (meshlab explain, meshlab diff). Objects the store refuses are returned as warnings.
func List(ctx context.Context, c *Clients, timeout time.Duration) (*ingest.Store, []string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()    // stops the informers
	var mu sync.Mutex // handlers of different kinds run concurrently
	var warnings []string
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		warnings = append(warnings, fmt.Sprintf(format, args...))
	}
	store := ingest.NewStore()
	inf := NewInformers(c, store, logf)
	inf.Start(ctx)
	if err := inf.WaitForSync(ctx, timeout); err != nil {
		return nil, nil, err
	}
	return store, warnings, nil
}
