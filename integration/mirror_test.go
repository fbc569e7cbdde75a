package integration

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

// backendLog records what the reviews pods received, and plays the two behaviours the tests need: a
// mirror copy (authority ending in -shadow) is answered slowly with a 500, which the client must never
// see nor wait for; the first request to a path under /per-try, /default-retry-on or /backend-timeout
// hangs (until the proxy gives up on it), later ones are answered.
type backendLog struct {
	mu       sync.Mutex
	requests []string // "version host path"
	release  chan struct{}
}

func newBackendLog() *backendLog { return &backendLog{release: make(chan struct{})} }

// stop releases the hanging handlers; registered after the backends, it runs before their Close.
func (b *backendLog) stop() { close(b.release) }

func (b *backendLog) hook(version string, w http.ResponseWriter, r *http.Request) bool {
	b.mu.Lock()
	b.requests = append(b.requests, version+" "+r.Host+" "+r.URL.Path)
	n := 0
	for _, q := range b.requests {
		if strings.HasSuffix(q, " "+r.URL.Path) {
			n++
		}
	}
	b.mu.Unlock()
	switch {
	case strings.HasSuffix(strings.Split(r.Host, ":")[0], "-shadow"):
		select {
		case <-b.release:
		case <-time.After(time.Second):
		}
		w.WriteHeader(500)
		return true
	case n == 1 && (strings.HasPrefix(r.URL.Path, "/per-try") || strings.HasPrefix(r.URL.Path, "/default-retry-on") || strings.HasPrefix(r.URL.Path, "/backend-timeout")):
		select {
		case <-r.Context().Done():
		case <-b.release:
		case <-time.After(3 * time.Second):
		}
		return true
	}
	return false
}

// waitFor returns the recorded requests once every one of want is among them (or after 5s).
func (b *backendLog) waitFor(t *testing.T, want ...string) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		got := slices.Clone(b.requests)
		b.mu.Unlock()
		missing := false
		for _, w := range want {
			missing = missing || !slices.Contains(got, w)
		}
		if !missing {
			return got
		}
		if time.Now().After(deadline) {
			t.Errorf("backends got %q, want %q among them", got, want)
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (b *backendLog) count(path string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, q := range b.requests {
		if strings.HasSuffix(q, " "+path) {
			n++
		}
	}
	return n
}

// TestGeneratedMirrorAndPerTryTimeout sends traffic through the engine running the config generated for
// a VirtualService with mirror, mirrors[] and retries.perTryTimeout: copies of the mirrored requests reach
// the mirror subsets with the -shadow authority while the client gets the primary's answer undelayed; a
// first attempt that hangs is cut by the per-try timeout and retried when retryOn covers it
// (gateway-error), and answered 504 after one attempt with Istio's default retryOn.
func TestGeneratedMirrorAndPerTryTimeout(t *testing.T) {
	b := newBackendLog()
	addr := generatedWaypointWith(t, modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsVSMirror), b.hook)
	t.Cleanup(b.stop)

	start := time.Now()
	checkSeen(t, send(t, addr, "reviews:9080", "/mirrored/1", nil), "mirrored", "v1", "/mirrored/1", "reviews:9080")
	checkSeen(t, send(t, addr, "reviews:9080", "/mirrors/2", nil), "mirrors", "v1", "/mirrors/2", "reviews:9080")
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Errorf("mirrored requests took %v: the slow mirrors delayed them", took)
	}
	b.waitFor(t, "v3 reviews-shadow:9080 /mirrored/1", "v2 reviews-shadow:9080 /mirrors/2", "v3 reviews-shadow:9080 /mirrors/2")
	checkSeen(t, send(t, addr, "reviews:9080", "/plain", nil), "not mirrored", "v1", "/plain", "reviews:9080")
	time.Sleep(50 * time.Millisecond)
	if n := b.count("/plain"); n != 1 {
		t.Errorf("/plain reached the backends %d times, want once (no mirror)", n)
	}

	start = time.Now()
	checkSeen(t, send(t, addr, "reviews:9080", "/per-try/1", nil), "per-try timeout then retry", "v1", "/per-try/1", "reviews:9080")
	if took := time.Since(start); took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("per-try: took %v, want the 200ms per-try timeout then a retry", took)
	}
	if n := b.count("/per-try/1"); n != 2 {
		t.Errorf("per-try: %d attempts, want 2", n)
	}

	ex := send(t, addr, "reviews:9080", "/default-retry-on/1", nil)
	if ex.status != 504 || ex.seen != nil {
		t.Errorf("per-try with Istio's default retryOn: status %d, want 504 from the proxy", ex.status)
	}
	if n := b.count("/default-retry-on/1"); n != 1 {
		t.Errorf("per-try with Istio's default retryOn: %d attempts, want 1 (a per-try timeout is a reset, not retried on those conditions)", n)
	}
}

// TestGeneratedHTTPRouteMirrorAndTimeouts does the same for an HTTPRoute: RequestMirror copies reach the
// mirror Services' pods with the -shadow authority; timeouts.backendRequest bounds each attempt (with a
// retry stanza: Istio's conversion retries connection errors and the codes, not a timed-out attempt, so
// the client gets 504), or the whole request without one.
func TestGeneratedHTTPRouteMirrorAndTimeouts(t *testing.T) {
	b := newBackendLog()
	addr := generatedWaypointWith(t, modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsHTTPRouteMirror), b.hook)
	t.Cleanup(b.stop)

	checkSeen(t, send(t, addr, "reviews", "/mirrored/a", nil), "RequestMirror", "v1", "/mirrored/a", "reviews")
	checkSeen(t, send(t, addr, "reviews", "/percent/b", nil), "RequestMirror percent and fraction", "v1", "/percent/b", "reviews")
	b.waitFor(t, "v3 reviews-shadow /mirrored/a", "v2 reviews-shadow /percent/b", "v3 reviews-shadow /percent/b")

	for _, path := range []string{"/per-try/1", "/backend-timeout/1"} {
		start := time.Now()
		ex := send(t, addr, "reviews", path, nil)
		took := time.Since(start)
		if ex.status != 504 || took < 200*time.Millisecond || took > 2*time.Second {
			t.Errorf("%s: %d after %v, want 504 after the 200ms backendRequest timeout", path, ex.status, took)
		}
		if n := b.count(path); n != 1 {
			t.Errorf("%s: %d attempts, want 1", path, n)
		}
	}
	// The next request to the same path is answered at once.
	checkSeen(t, send(t, addr, "reviews", "/per-try/1", nil), "per-try, second request", "v1", "/per-try/1", "reviews")
}
