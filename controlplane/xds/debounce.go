package xds

import (
	"context"
	"time"
)

// debounce merges requests arriving close together into one push: it flushes once no request came for
// quiet, or max after the first unflushed one, whichever is first. quiet <= 0 flushes every request at
// once. flush runs on the debounce goroutine, so one push is handed to the queue before the next starts.
func debounce(ctx context.Context, in <-chan *PushRequest, quiet, maxWait time.Duration, flush func(merged *PushRequest, events int)) {
	var (
		pending     *PushRequest
		events      int
		first, last time.Time
		timer       = time.NewTimer(time.Hour)
		timerC      <-chan time.Time
	)
	timer.Stop()
	defer timer.Stop()
	fire := func() {
		flush(pending, events)
		pending, events, timerC = nil, 0, nil
	}
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-in:
			now := time.Now()
			if pending == nil {
				first = now
			}
			last = now
			pending = pending.Merge(r)
			events++
			if quiet <= 0 {
				fire()
				continue
			}
			deadline := last.Add(quiet)
			if maxWait > 0 && first.Add(maxWait).Before(deadline) {
				deadline = first.Add(maxWait)
			}
			timer.Reset(time.Until(deadline))
			timerC = timer.C
		case <-timerC:
			fire()
		}
	}
}
