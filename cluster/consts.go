package cluster

import (
	"context"
	"time"
)

const pollInterval = 500 * time.Millisecond

// Poll calls check every half second until it reports done, returns an error, or ctx ends; the last
// reason is in the timeout error.
func Poll(ctx context.Context, check func() (done bool, reason string, err error)) error {
	return poll(ctx, pollInterval, check)
}

// NameEnv names the kind cluster for meshlab when neither --name nor --cluster does: lab scripts and CI
// jobs set it, so that no command's own --name or --cluster flag (istioctl's filters) is taken for it.
const NameEnv = "MESHLAB_CLUSTER"
