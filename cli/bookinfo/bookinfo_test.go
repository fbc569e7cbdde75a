package bookinfo

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
)

// syncBuffer is a log sink the test can read while a server writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listening = regexp.MustCompile(`(\w+) listening on (\S+)`)

// start runs `meshlab bookinfo args...` with -v until the test ends and returns its address and log.
func start(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	log := &syncBuffer{}
	env := cliutil.Env{Logger: ui.NewLogger(log, 1, false), Streams: ui.Streams{Out: io.Discard, ErrOut: log}, Globals: &cliutil.Globals{}}
	cmd := NewCommand(env)
	cmd.SetArgs(append(args, "--listen", "127.0.0.1:0"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("bookinfo %v exited with %v", args, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("bookinfo %v did not stop", args)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if m := listening.FindStringSubmatch(log.String()); m != nil {
			return m[2], log
		}
		select {
		case err := <-done:
			t.Fatalf("bookinfo %v exited early: %v\n%s", args, err, log)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("bookinfo %v did not listen:\n%s", args, log)
	return "", nil
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func TestServicesTogether(t *testing.T) {
	ratingsAddr, ratingsLog := start(t, "ratings")
	t.Setenv("RATINGS_HOSTNAME", strings.Split(ratingsAddr, ":")[0])
	t.Setenv("RATINGS_SERVICE_PORT", strings.Split(ratingsAddr, ":")[1])
	t.Setenv("HOSTNAME", "reviews-v3-abc")
	t.Setenv("ENABLE_RATINGS", "false")
	reviewsAddr, reviewsLog := start(t, "reviews", "--service-version", "v3")
	detailsAddr, _ := start(t, "details")
	t.Setenv("DETAILS_HOSTNAME", "127.0.0.1")
	t.Setenv("DETAILS_SERVICE_PORT", strings.Split(detailsAddr, ":")[1])
	t.Setenv("REVIEWS_HOSTNAME", "127.0.0.1")
	t.Setenv("REVIEWS_SERVICE_PORT", strings.Split(reviewsAddr, ":")[1])
	ppAddr, ppLog := start(t, "productpage")

	page := get(t, "http://"+ppAddr+"/productpage")
	for _, want := range []string{"Reviewer1", "Reviewer2", `<font color="red">`, "Reviews served by: reviews-v3-abc", "PublisherA"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, addr := range []string{ratingsAddr, reviewsAddr, detailsAddr, ppAddr} {
		get(t, "http://"+addr+"/health") // the readiness probe's path answers 200 everywhere
	}
	for name, tt := range map[string]struct {
		log  *syncBuffer
		want string
	}{
		"ratings":     {ratingsLog, "GET /ratings/0 200"},
		"reviews":     {reviewsLog, "GET /reviews/0 200"},
		"productpage": {ppLog, "GET /productpage 200"},
	} {
		if !strings.Contains(tt.log.String(), tt.want) {
			t.Errorf("%s log lacks %q:\n%s", name, tt.want, tt.log)
		}
	}
	if !strings.Contains(reviewsLog.String(), "reviews v3: ratings enabled true, star colour red") {
		t.Errorf("reviews log does not show v3 settings:\n%s", reviewsLog)
	}
}

func TestReviewsFlags(t *testing.T) {
	t.Setenv("ENABLE_RATINGS", "true")
	t.Setenv("STAR_COLOR", "red")
	addr, _ := start(t, "reviews", "--enable-ratings=false")
	if body := get(t, "http://"+addr+"/reviews/0"); strings.Contains(body, "rating") {
		t.Errorf("--enable-ratings=false still rates: %s", body)
	}

	env := cliutil.Env{Logger: ui.NewLogger(io.Discard, 0, false), Streams: ui.Streams{Out: io.Discard, ErrOut: io.Discard}, Globals: &cliutil.Globals{}}
	cmd := NewCommand(env)
	cmd.SetArgs([]string{"reviews", "--service-version", "v9", "--listen", "127.0.0.1:0"})
	if err := cmd.Execute(); !cliutil.IsUsage(err) {
		t.Errorf("reviews --service-version v9 = %v, want a usage error", err)
	}
}
