package dataplane

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// PayloadSize is the size of every response body.
const PayloadSize = 1024

// LoadOptions configure one load run. meshlab's own small load loop stands in for fortio: each of
// Connections workers owns one keep-alive HTTP/1.1 connection and sends GETs back to back (or paced to
// its share of QPS); every request's latency is kept, so percentiles are exact rather than bucketed.
type LoadOptions struct {
	URL         string
	Connections int
	// Duration bounds the run; MaxRequests, when > 0, too.
	Duration    time.Duration
	MaxRequests int
	// QPS is the total target rate; 0 means as fast as the path allows.
	QPS float64
	// Dial opens connections (from inside the client pod's network namespace).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// LoadResult is one run's outcome.
type LoadResult struct {
	Requests  int
	Errors    int
	FirstErr  error
	Elapsed   time.Duration
	Latencies []time.Duration // sorted
}

// RPS is the rate of successful requests.
func (r LoadResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile latency (nearest rank).
func (r LoadResult) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies))*p/100+0.999999) - 1
	return r.Latencies[max(0, min(i, len(r.Latencies)-1))]
}

// worker is one connection of a load run.
type worker struct {
	client *http.Client
	url    string
}

func newWorker(o LoadOptions) *worker {
	tr := &http.Transport{DialContext: o.Dial, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}
	return &worker{client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, url: o.URL}
}

func (w *worker) get(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
	if err != nil {
		return err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	if resp.StatusCode != http.StatusOK || n != PayloadSize {
		return fmt.Errorf("got status %d with %d bytes, want 200 with %d", resp.StatusCode, n, PayloadSize)
	}
	return nil
}

func (w *worker) close() { w.client.CloseIdleConnections() }

// Warm opens every connection with one request each, so that a run measures steady state, not
// handshakes.
func warm(ctx context.Context, workers []*worker) error {
	for _, w := range workers {
		if err := w.get(ctx); err != nil {
			return fmt.Errorf("warming up: %w", err)
		}
	}
	return nil
}

// run drives the workers until the duration or request budget is spent.
func run(ctx context.Context, o LoadOptions, workers []*worker) LoadResult {
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	var (
		mu     sync.Mutex
		res    LoadResult
		issued int
		wg     sync.WaitGroup
	)
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if o.MaxRequests > 0 && issued >= o.MaxRequests {
			return false
		}
		issued++
		return true
	}
	var interval time.Duration
	if o.QPS > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(workers)) / o.QPS)
	}
	start := time.Now()
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1024)
			var errs int
			var firstErr error
			// Paced workers start staggered so that their requests interleave evenly.
			next := start.Add(interval * time.Duration(i) / time.Duration(len(workers)))
			for ctx.Err() == nil && take() {
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
						}
						if ctx.Err() != nil {
							break
						}
					}
					next = next.Add(interval)
				}
				t0 := time.Now()
				err := w.get(ctx)
				if ctx.Err() != nil {
					break // cut short by the end of the run: neither a sample nor an error
				}
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.Latencies = append(res.Latencies, lat...)
			res.Errors += errs
			if res.FirstErr == nil {
				res.FirstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Requests = len(res.Latencies)
	slices.Sort(res.Latencies)
	return res
}
