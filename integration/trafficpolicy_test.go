package integration

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

// The tests here run the waypoint config generated for a DestinationRule with traffic policies
// (modeltest.ReviewsDRPolicy: one subset per path) in the L7 engine, with one backend per reviews pod.

// policyBackends answers as the reviews pods, naming the version in X-Version: /hold... waits until
// released; /outlier... answers 500 from the versions in failing.
type policyBackends struct {
	release chan struct{}
	failing map[string]bool
	mu      sync.Mutex
	held    []string        // versions holding a /hold request
	got     []string        // "version path" of every request
	conns   map[string]bool // the upstream connections (client addresses) of /limited requests
}

func newPolicyBackends(failing ...string) *policyBackends {
	b := &policyBackends{release: make(chan struct{}), failing: map[string]bool{}, conns: map[string]bool{}}
	for _, v := range failing {
		b.failing[v] = true
	}
	return b
}

func (b *policyBackends) hook(version string, w http.ResponseWriter, r *http.Request) bool {
	b.mu.Lock()
	b.got = append(b.got, version+" "+r.URL.Path)
	if strings.Contains(r.URL.Path, "/hold") {
		b.held = append(b.held, version)
	}
	if strings.HasPrefix(r.URL.Path, "/limited/seq") {
		b.conns[r.RemoteAddr] = true
	}
	b.mu.Unlock()
	w.Header().Set("X-Version", version)
	switch {
	case strings.Contains(r.URL.Path, "/hold"):
		select {
		case <-b.release:
		case <-time.After(10 * time.Second):
		}
	case strings.HasPrefix(r.URL.Path, "/outlier") && b.failing[version]:
		w.WriteHeader(500)
		return true
	}
	return false
}

func (b *policyBackends) heldVersions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.held...)
}

func (b *policyBackends) waitHeld(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(b.heldVersions()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d request(s) held by the backends, want %d", len(b.heldVersions()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return b.heldVersions()
}

type answer struct {
	status  int
	version string
	header  http.Header
	body    string
}

// get sends one request on a new connection (a client of its own, safe in any goroutine).
func get(addr, path string, hdr http.Header) (answer, error) {
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = "reviews:9080"
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, version: resp.Header.Get("X-Version"), header: resp.Header, body: string(body)}, nil
}

func mustGet(t *testing.T, addr, path string, hdr http.Header) answer {
	t.Helper()
	a, err := get(addr, path, hdr)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return a
}

// TestGeneratedConsistentHash: the same header value, cookie or client address reaches the same pod every
// time; different values spread over the pods; a request without the cookie is given one (its ttl as
// Max-Age) that then keeps the client on one pod.
func TestGeneratedConsistentHash(t *testing.T) {
	b := newPolicyBackends()
	addr := generatedWaypointRand(t, modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsDRPolicy), b.hook, nil)

	sticky := func(what, path string, hdr http.Header) string {
		t.Helper()
		first := ""
		for i := 0; i < 6; i++ {
			a := mustGet(t, addr, path, hdr)
			if a.status != 200 || a.version == "" {
				t.Fatalf("%s: status %d from %q", what, a.status, a.version)
			}
			if first == "" {
				first = a.version
			} else if a.version != first {
				t.Fatalf("%s: request %d reached %s, the first reached %s", what, i, a.version, first)
			}
		}
		return first
	}
	for _, tc := range []struct{ name, path, header, format string }{
		{"header x-user (ring hash)", "/hash", "X-User", "user-%d"},
		{"cookie session (maglev)", "/cookie", "Cookie", "session=s%d"},
	} {
		versions := map[string]bool{}
		for i := 0; i < 12; i++ {
			v := fmt.Sprintf(tc.format, i)
			versions[sticky(tc.name+" "+v, tc.path+"/"+v, http.Header{tc.header: {v}})] = true
		}
		if len(versions) < 2 {
			t.Errorf("%s: 12 keys all reached %v, want them spread over the pods", tc.name, versions)
		}
	}
	sticky("source IP", "/source", nil)

	a := mustGet(t, addr, "/cookie/new", nil)
	c := a.header.Get("Set-Cookie")
	if !strings.HasPrefix(c, `session="`) || !strings.Contains(c, "; Max-Age=60; Path=/; HttpOnly") {
		t.Fatalf("a request without the hash cookie got Set-Cookie %q, want session=\"...\"; Max-Age=60; Path=/; HttpOnly", c)
	}
	value := strings.Trim(strings.TrimPrefix(strings.Split(c, ";")[0], "session="), `"`)
	if got := sticky("issued cookie", "/cookie/again", http.Header{"Cookie": {"session=" + value}}); got != a.version {
		t.Errorf("with the issued cookie the requests reached %s, the one that issued it reached %s", got, a.version)
	}
}

// binomialBound is the smallest k with P(X >= k) <= alpha for X ~ Binomial(n, p).
func binomialBound(n int, p, alpha float64) int {
	tail := 1.0
	for k := 0; k <= n; k++ {
		if tail <= alpha {
			return k
		}
		lg, _ := math.Lgamma(float64(n + 1))
		a, _ := math.Lgamma(float64(k + 1))
		c, _ := math.Lgamma(float64(n - k + 1))
		tail -= math.Exp(lg - a - c + float64(k)*math.Log(p) + float64(n-k)*math.Log(1-p))
	}
	return n + 1
}

// TestGeneratedLeastRequest: Istio's default balancer is LEAST_REQUEST, which Envoy runs as the power of
// two choices: a pod busy with a request is chosen only when both random picks are that pod (1 in 9 with
// three pods), where round robin or random would send it a third of the requests.
func TestGeneratedLeastRequest(t *testing.T) {
	b := newPolicyBackends()
	addr := generatedWaypointRand(t, modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsDRPolicy), b.hook, nil)
	defer close(b.release)
	go get(addr, "/hold", nil)
	busy := b.waitHeld(t, 1)[0]

	const n = 180
	limit := binomialBound(n, 1.0/9, 1e-4)
	if limit >= n/3 {
		t.Fatalf("bound %d does not tell least-request from round robin (%d)", limit, n/3)
	}
	toBusy := 0
	for i := 0; i < n; i++ {
		a := mustGet(t, addr, fmt.Sprintf("/quick/%d", i), nil)
		if a.status != 200 {
			t.Fatalf("request %d: status %d", i, a.status)
		}
		if a.version == busy {
			toBusy++
		}
	}
	t.Logf("%d of %d requests to the busy pod %s (bound %d)", toBusy, n, busy, limit)
	if toBusy >= limit {
		t.Errorf("%d of %d requests went to %s, busy with a request; least-request (P2C) sends fewer than %d (alpha 1e-4)", toBusy, n, busy, limit)
	}
}

// TestGeneratedCircuitBreaker: connectionPool tcp.maxConnections 1 and http.http1MaxPendingRequests 1 to
// v1: with one request in flight a second waits, a third overflows at once with Envoy's 503 and
// x-envoy-overloaded; the waiting one is served when the first ends. http.maxRequestsPerConnection closes
// an upstream connection after that many requests.
func TestGeneratedCircuitBreaker(t *testing.T) {
	b := newPolicyBackends()
	addr := generatedWaypointRand(t, modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsDRPolicy), b.hook, nil)
	released := false
	release := func() {
		if !released {
			released = true
			close(b.release)
		}
	}
	defer release()

	results := make(chan answer, 2)
	send := func(path string) {
		a, err := get(addr, path, nil)
		if err != nil {
			a.body = err.Error()
		}
		results <- a
	}
	go send("/limited/hold")
	b.waitHeld(t, 1)
	go send("/limited/pending")
	time.Sleep(300 * time.Millisecond) // let it reach the breaker and wait there

	start := time.Now()
	over := mustGet(t, addr, "/limited/overflow", nil)
	if over.status != 503 || over.header.Get("X-Envoy-Overloaded") != "true" ||
		over.body != "upstream connect error or disconnect/reset before headers. reset reason: overflow" {
		t.Errorf("third request: %d, x-envoy-overloaded %q, body %q; want Envoy's overflow 503", over.status, over.header.Get("X-Envoy-Overloaded"), over.body)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the overflow took %v, want an immediate answer", took)
	}
	select {
	case a := <-results:
		t.Fatalf("a request finished (%d %q) while the first one was held: the pending one did not wait", a.status, a.body)
	default:
	}
	release()
	for i := 0; i < 2; i++ {
		select {
		case a := <-results:
			if a.status != 200 || a.version != "v1" {
				t.Errorf("held or pending request: %d from %q (%s), want 200 from v1", a.status, a.version, a.body)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the held and pending requests did not finish")
		}
	}
	if a := mustGet(t, addr, "/limited/after", nil); a.status != 200 {
		t.Errorf("after the burst: %d, want 200", a.status)
	}

	// maxRequestsPerConnection 5: twelve requests in a row take three upstream connections.
	for i := 0; i < 12; i++ {
		if a := mustGet(t, addr, fmt.Sprintf("/limited/seq/%d", i), nil); a.status != 200 {
			t.Fatalf("sequential request %d: %d", i, a.status)
		}
	}
	b.mu.Lock()
	conns := len(b.conns)
	b.mu.Unlock()
	if conns != 3 {
		t.Errorf("12 requests with maxRequestsPerConnection 5 used %d upstream connections, want 3", conns)
	}
}

// TestGeneratedOutlierDetection: v1 and v2 answer 500. After two in a row a pod is ejected for
// baseEjectionTime (2s) and gets no requests; maxEjectionPercent 30 lets only one of three pods be
// ejected, so the other failing pod keeps getting requests; after the ejection time the pod is back.
func TestGeneratedOutlierDetection(t *testing.T) {
	b := newPolicyBackends("v1", "v2")
	addr := generatedWaypointRand(t, modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsDRPolicy), b.hook, nil)

	fails := map[string]int{}
	ejected := ""
	for i := 0; i < 200 && ejected == ""; i++ {
		a := mustGet(t, addr, fmt.Sprintf("/outlier/warmup/%d", i), nil)
		if a.status == 500 {
			fails[a.version]++
			if fails[a.version] == 2 {
				ejected = a.version
			}
		} else {
			fails[a.version] = 0 // a pod's failures count only in a row
		}
	}
	if ejected == "" {
		t.Fatal("no pod answered 500 twice in a row")
	}
	other := map[string]string{"v1": "v2", "v2": "v1"}[ejected]
	start := time.Now()
	seen := map[string]int{}
	for i := 0; i < 40; i++ {
		a := mustGet(t, addr, fmt.Sprintf("/outlier/ejected/%d", i), nil)
		seen[a.version]++
	}
	if time.Since(start) >= 2*time.Second {
		t.Skipf("40 requests took %v, longer than the ejection: the machine is too slow to tell", time.Since(start))
	}
	if seen[ejected] != 0 {
		t.Errorf("ejected %s still got %d of 40 requests", ejected, seen[ejected])
	}
	if seen[other] == 0 {
		t.Errorf("%s (also failing) got none of 40 requests: maxEjectionPercent 30 should keep it in (got %v)", other, seen)
	}
	time.Sleep(time.Until(start.Add(2100 * time.Millisecond)))
	back := 0
	for i := 0; i < 40; i++ {
		if a := mustGet(t, addr, fmt.Sprintf("/outlier/back/%d", i), nil); a.version == ejected {
			back++
		}
	}
	if back == 0 {
		t.Errorf("after the ejection time %s got none of 40 requests", ejected)
	}
}
