package scenarios

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meshlab/meshlab/cluster/labclient"
	"github.com/meshlab/meshlab/internal/stats"
)

// Request is one `meshlab curl` run inside a pod of the lab.
type Request struct {
	// Namespace and Pod say where curl runs; empty means the sleep pod.
	Namespace, Pod, Container string
	URL                       string
	Args                      []string      // more curl flags, e.g. "-H", "end-user: jason"
	MaxTime                   time.Duration // curl --max-time; default 5s
	Repeat                    int           // how many times the Expect* checks send it (default 1); every answer must pass
	// Via, when set, sends the request from this machine instead of a pod, to this address (HOST:PORT of
	// an ingress gateway's node port) with the URL's host as Host; only -H Args apply.
	Via string
}

// Response is what curl saw. Status is 0 when no HTTP response arrived; ExitCode is curl's (0 for any
// HTTP status, 7 connection refused, 28 timeout, 35 TLS handshake, 52 empty reply, 56 reset).
type Response struct {
	ExitCode int
	Status   int
	Header   http.Header
	Body     string
	Stderr   string
	Elapsed  time.Duration
}

// OK reports a 2xx answer.
func (r Response) OK() bool { return r.ExitCode == 0 && r.Status >= 200 && r.Status < 300 }

// String summarises the response for messages: "HTTP 503" or "curl exit 56: Recv failure...".
func (r Response) String() string {
	if r.Status != 0 {
		return fmt.Sprintf("HTTP %d", r.Status)
	}
	msg := strings.TrimSpace(r.Stderr)
	if msg == "" {
		return fmt.Sprintf("curl exit %d", r.ExitCode)
	}
	return fmt.Sprintf("curl exit %d: %s", r.ExitCode, firstLine(msg))
}

// CurlArgs is the command line run in the pod: status line and headers are included (-i) so one run
// gives status, headers and body.
func CurlArgs(req Request) []string {
	maxTime := req.MaxTime
	if maxTime <= 0 {
		maxTime = 5 * time.Second
	}
	args := []string{"meshlab", "curl", "-s", "-S", "-i", "--max-time", strconv.FormatFloat(maxTime.Seconds(), 'f', -1, 64)}
	args = append(args, req.Args...)
	return append(args, req.URL)
}

// ParseCurlOutput splits `curl -i` output into status, headers and body.
func ParseCurlOutput(out string) (status int, header http.Header, body string, err error) {
	header = http.Header{}
	if out == "" {
		return 0, header, "", nil
	}
	head, body, ok := strings.Cut(out, "\r\n\r\n")
	if !ok {
		if head, body, ok = strings.Cut(out, "\n\n"); !ok {
			head, body = out, ""
		}
	}
	lines := strings.Split(strings.ReplaceAll(head, "\r\n", "\n"), "\n")
	fields := strings.Fields(lines[0])
	if len(fields) < 2 || !strings.HasPrefix(fields[0], "HTTP/") {
		return 0, header, out, fmt.Errorf("no HTTP status line in %q", firstLine(out))
	}
	if status, err = strconv.Atoi(fields[1]); err != nil {
		return 0, header, out, fmt.Errorf("bad status line %q", lines[0])
	}
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok {
			header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return status, header, body, nil
}

// SleepPod returns the name of a running sleep pod, the lab's client.
func (t *T) SleepPod() string {
	if t.Env == nil {
		t.Fatalf("no lab: cannot find the sleep pod")
	}
	pods, err := labclient.RunningPods(t.Context(), t.Env.Kube, t.Env.Namespace, "app=sleep")
	t.Must(err, "finding the sleep pod")
	if len(pods) == 0 {
		t.Fatalf("no running sleep pod in %s", t.Env.Namespace)
	}
	return pods[0].Name
}

// Curl runs `meshlab curl` in a pod (the sleep pod by default) and returns what it saw. Not being able
// to run the command at all stops the step.
func (t *T) Curl(req Request) Response {
	if t.Env == nil {
		t.Fatalf("no lab to send traffic in")
	}
	if req.Pod == "" && req.Via == "" {
		req.Namespace, req.Pod = t.Env.Namespace, t.SleepPod()
	}
	return t.curlIn(req)
}

func (t *T) curlIn(req Request) Response {
	res, err := t.send(req)
	t.Must(err, "running curl")
	return res
}

// send sends one request: with curl in the request's pod, or from this machine when req.Via is set. An
// error means the request could not be run at all (exec failed), not that it failed.
func (t *T) send(req Request) (Response, error) {
	if req.Via != "" {
		t.mu.Lock()
		t.lastSent = nil // explain predicts from a pod, not from the host
		t.mu.Unlock()
		return sendFromHost(t.Context(), req), nil
	}
	t.noteSent(req)
	// curl -i that exits 0 has printed a status line. When the exec stream reports exit 0 with no status
	// line, the stream lost curl's output (seen under load: the process ended before its stdout was
	// copied), not the mesh its answer: send again, a bounded number of times, and say so if it persists.
	const attempts = 3
	for i := 1; ; i++ {
		start := time.Now()
		out, err := labclient.Exec(t.Context(), t.Env.Config, t.Env.Kube, req.Namespace, req.Pod, req.Container, CurlArgs(req))
		if err != nil {
			return Response{}, err
		}
		res := Response{ExitCode: out.ExitCode, Stderr: out.Stderr, Elapsed: time.Since(start)}
		var perr error
		res.Status, res.Header, res.Body, perr = ParseCurlOutput(out.Stdout)
		if res.ExitCode != 0 || res.Status != 0 {
			return res, nil
		}
		if i == attempts {
			if perr == nil {
				perr = errors.New("no output")
			}
			return Response{}, fmt.Errorf("curl in %s/%s exited 0 but its output, %d times running, had no status line (the exec stream lost it): %v", req.Namespace, req.Pod, attempts, perr)
		}
	}
}

// noteSent remembers req as the request a following traffic expectation is about.
func (t *T) noteSent(req Request) {
	t.mu.Lock()
	t.lastSent = &req
	t.mu.Unlock()
}

// CurlN sends n requests with up to concurrency in flight (exec round trips dominate; a few in parallel
// keep 200 requests to a few seconds) and returns the responses in completion order.
func (t *T) CurlN(req Request, n, concurrency int) []Response {
	if t.Env == nil {
		t.Fatalf("no lab to send traffic in")
	}
	if req.Pod == "" && req.Via == "" {
		req.Namespace, req.Pod = t.Env.Namespace, t.SleepPod()
	}
	if concurrency <= 0 {
		concurrency = 8
	}
	var (
		mu   sync.Mutex
		out  = make([]Response, 0, n)
		errs []string
		wg   sync.WaitGroup
		jobs = make(chan struct{})
	)
	for range min(concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				r, err := t.send(req)
				mu.Lock()
				if err != nil {
					errs = append(errs, err.Error())
				} else {
					out = append(out, r)
				}
				mu.Unlock()
			}
		}()
	}
	for range n {
		if t.Context().Err() != nil {
			break
		}
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("running curl: %d of %d requests could not be run: %s", len(errs), n, errs[0])
	}
	if len(out) < n {
		t.Fatalf("sent %d of %d requests before the deadline", len(out), n)
	}
	return out
}

// Counts tallies responses by a feature of each.
type Counts map[string]int

// Tally classifies every response.
func Tally(rs []Response, classify func(Response) string) Counts {
	c := Counts{}
	for _, r := range rs {
		c[classify(r)]++
	}
	return c
}

// String lists classes in name order: "reviews-v1 181, reviews-v2 19".
func (c Counts) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, c[k])
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// Total is the number of responses tallied.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// ByPodName classifies a bookinfo JSON answer by its "podname" field: the first prefix it starts with
// (reviews-v1, reviews-v2), "other pod <name>" for another pod, or the failure ("HTTP 503", "curl exit 56").
func ByPodName(prefixes ...string) func(Response) string {
	return func(r Response) string {
		if !r.OK() {
			return r.String()
		}
		var body struct {
			PodName string `json:"podname"`
		}
		if err := json.Unmarshal([]byte(r.Body), &body); err != nil || body.PodName == "" {
			return "answer without podname"
		}
		for _, p := range prefixes {
			if strings.HasPrefix(body.PodName, p+"-") {
				return p
			}
		}
		return "other pod " + body.PodName
	}
}

// ByStatus classifies by HTTP status ("HTTP 200") or curl failure.
func ByStatus(r Response) string { return r.String() }

// SplitAlpha is the significance level of every traffic-split check: a correct proxy fails it one run in
// a thousand.
const SplitAlpha = 0.001

// MinExpected is the smallest expected count of any class in a split check. The sample size follows from
// the smallest weight: n = ceil(MinExpected * sum(weights) / min(weights)); for 90/10 that is
// ceil(20 * 100 / 10) = 200 requests, enough that a 100/0 or 80/20 split is rejected at SplitAlpha
// (chi-square 22.2, p = 2.4e-6) while the chi-square approximation holds (it wants at least 5).
const MinExpected = 20

// SampleSize is the number of requests a split with these weights needs (see MinExpected).
func SampleSize(weights map[string]float64) int {
	return stats.SampleSize(weightList(weights), MinExpected)
}

func weightList(weights map[string]float64) []float64 {
	keys := sortedKeys(weights)
	out := make([]float64, len(keys))
	for i, k := range keys {
		out[i] = weights[k]
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// CheckSplit tests counts against weights with a chi-square goodness-of-fit test at SplitAlpha. Any
// class outside weights (an error, another version) fails the check outright. It returns "" when the
// counts fit, else what was seen, for the failure message.
func CheckSplit(counts Counts, weights map[string]float64) (expected, seen string, ok bool) {
	keys := sortedKeys(weights)
	n := counts.Total()
	var sum float64
	for _, w := range weights {
		sum += w
	}
	exp := make([]string, len(keys))
	for i, k := range keys {
		exp[i] = fmt.Sprintf("%s %.0f", k, math.Round(float64(n)*weights[k]/sum))
	}
	expected = fmt.Sprintf("%s of %d (weights %s; chi-square goodness of fit, alpha %g)", strings.Join(exp, ", "), n, weightString(keys, weights), SplitAlpha)
	var unexpected []string
	for k := range counts {
		if _, ok := weights[k]; !ok {
			unexpected = append(unexpected, k)
		}
	}
	observed := make([]int, len(keys))
	for i, k := range keys {
		observed[i] = counts[k]
	}
	stat, df, p, err := stats.ChiSquare(observed, weightList(weights))
	switch {
	case len(unexpected) > 0:
		sort.Strings(unexpected)
		return expected, fmt.Sprintf("%s (unexpected: %s)", counts, strings.Join(unexpected, ", ")), false
	case err != nil:
		return expected, fmt.Sprintf("%s (%v)", counts, err), false
	case p < SplitAlpha:
		return expected, fmt.Sprintf("%s (chi-square %.2f, %d df, p = %.2g)", counts, stat, df, p), false
	}
	return expected, fmt.Sprintf("%s (chi-square %.2f, p = %.2g)", counts, stat, p), true
}

func weightString(keys []string, weights map[string]float64) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = strconv.FormatFloat(weights[k], 'f', -1, 64)
	}
	return strings.Join(parts, "/")
}

// ExpectSplit records a failure unless counts fit weights (see CheckSplit).
func (t *T) ExpectSplit(what string, counts Counts, weights map[string]float64) bool {
	expected, seen, ok := CheckSplit(counts, weights)
	t.Logf("%s: %s", what, seen)
	return t.expectTraffic(ok, what, expected, seen)
}
