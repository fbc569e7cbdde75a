package productpage

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlab/meshlab/bookinfo/details"
	"github.com/meshlab/meshlab/bookinfo/ratings"
	"github.com/meshlab/meshlab/bookinfo/reviews"
	"github.com/meshlab/meshlab/internal/golden"
)

// recorder wraps a handler and remembers the headers of the requests it served.
type recorder struct {
	h       http.Handler
	mu      sync.Mutex
	headers []http.Header
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.headers = append(r.headers, req.Header.Clone())
	r.mu.Unlock()
	r.h.ServeHTTP(w, req)
}

func (r *recorder) calls() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.headers...)
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// bookinfo is the whole sample on loopback: real services, each behind a recorder.
type bookinfo struct {
	productpage               *httptest.Server
	details, reviews, ratings *recorder
}

func startBookinfo(t *testing.T, reviewsVersion string) *bookinfo {
	t.Helper()
	b := &bookinfo{
		details: &recorder{h: details.New(details.Config{})},
		ratings: &recorder{h: ratings.New(ratings.Config{})},
	}
	ratingsSrv := serve(t, b.ratings)
	rcfg := reviews.Config{RatingsURL: ratingsSrv.URL, PodName: "reviews-" + reviewsVersion + "-7f9c", ClusterName: "null"}
	if err := rcfg.SetVersion(reviewsVersion); err != nil {
		t.Fatal(err)
	}
	b.reviews = &recorder{h: reviews.New(rcfg)}
	reviewsSrv := serve(t, b.reviews)
	detailsSrv := serve(t, b.details)
	b.productpage = serve(t, New(Config{DetailsURL: detailsSrv.URL, ReviewsURL: reviewsSrv.URL, RatingsURL: ratingsSrv.URL}))
	return b
}

func get(t *testing.T, rawURL string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", rawURL, err)
	}
	return resp.StatusCode, string(body)
}

const (
	review1 = "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"
	review2 = "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."
)

func TestProductPage(t *testing.T) {
	tests := []struct {
		version         string
		wantStars       int // filled stars on the page: 5 + 4 with ratings
		wantColor       string
		wantRatingCalls int
	}{
		{"v1", 0, "", 0},
		{"v2", 9, "black", 1},
		{"v3", 9, "red", 1},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			b := startBookinfo(t, tt.version)
			status, page := get(t, b.productpage.URL+"/productpage", nil)
			if status != 200 {
				t.Fatalf("GET /productpage = %d", status)
			}
			for _, want := range []string{"<title>Simple Bookstore App</title>", "The Comedy of Errors", "<b>William Shakespeare's</b>",
				"Book Details", "1234567890", "PublisherA", "paperback", "English",
				"Book Reviews", review1, review2, "Reviewer1", "Reviewer2", "Reviews served by: reviews-" + tt.version + "-7f9c"} {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			if strings.Contains(page, "Sorry") || strings.Contains(page, "on cluster") {
				t.Errorf("page shows an error or a null cluster:\n%s", page)
			}
			if got := strings.Count(page, `"glyphicon glyphicon-star"`); got != tt.wantStars {
				t.Errorf("page has %d filled stars, want %d", got, tt.wantStars)
			}
			if tt.wantColor != "" && strings.Count(page, `<font color="`+tt.wantColor+`">`) != 2 {
				t.Errorf("page lacks two %s star groups:\n%s", tt.wantColor, page)
			}
			if got := len(b.ratings.calls()); got != tt.wantRatingCalls {
				t.Errorf("ratings called %d times, want %d", got, tt.wantRatingCalls)
			}
		})
	}
}

func TestProductPageGolden(t *testing.T) {
	b := startBookinfo(t, "v3")
	_, page := get(t, b.productpage.URL+"/productpage", nil)
	golden.Check(t, filepath.Join("testdata", "productpage-v3.html"), []byte(page))
}

func TestHeaderForwarding(t *testing.T) {
	b := startBookinfo(t, "v2")
	in := http.Header{
		"X-Request-Id":      {"2b6a7c1e-0d1f-4c55-9c2a-1b8f3e1a9c77"},
		"X-B3-Traceid":      {"80f198ee56343ba864fe8b2a57d3eff7"},
		"X-B3-Spanid":       {"e457b5a2e4d86bd1"},
		"X-B3-Parentspanid": {"05e3ac9a4f6e3b90"},
		"X-B3-Sampled":      {"1"},
		"X-B3-Flags":        {"0"},
		"B3":                {"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"},
		"Traceparent":       {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"Tracestate":        {"congo=t61rcWkgMzE"},
		"Authorization":     {"Bearer token"},
		"User-Agent":        {"curl/8.16.0"},
		"Cookie":            {"user=jason; theme=dark"},
		"X-Not-Forwarded":   {"secret"},
	}
	if status, _ := get(t, b.productpage.URL+"/productpage", in); status != 200 {
		t.Fatalf("GET /productpage = %d", status)
	}
	want := in.Clone()
	delete(want, "X-Not-Forwarded")
	want.Set("End-User", "jason") // the signed-in user

	for name, rec := range map[string]*recorder{"details": b.details, "reviews": b.reviews, "ratings": b.ratings} {
		calls := rec.calls()
		if len(calls) != 1 {
			t.Errorf("%s got %d requests, want 1", name, len(calls))
			continue
		}
		got := calls[0]
		for k, v := range want {
			if !reflect.DeepEqual(got[k], v) {
				t.Errorf("%s got %s = %q, want %q", name, k, got[k], v)
			}
		}
		if got.Get("X-Not-Forwarded") != "" {
			t.Errorf("%s got X-Not-Forwarded", name)
		}
	}
}

func TestEndUserHeaderWithoutLogin(t *testing.T) {
	b := startBookinfo(t, "v1")
	get(t, b.productpage.URL+"/productpage", http.Header{"End-User": {"ops"}})
	if got := b.reviews.calls()[0].Get("End-User"); got != "ops" {
		t.Errorf("reviews got end-user %q, want ops", got)
	}
}

func TestBackendsUnavailable(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	pp := serve(t, New(Config{DetailsURL: gone.URL, ReviewsURL: gone.URL, RatingsURL: gone.URL, Timeout: time.Second}))

	status, page := get(t, pp.URL+"/productpage", nil)
	if status != 200 {
		t.Errorf("GET /productpage = %d, want 200", status)
	}
	for _, want := range []string{"The Comedy of Errors", "Error fetching product details", DetailsUnavailable,
		"Error fetching product reviews", ReviewsUnavailable} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, tt := range []struct{ path, want string }{
		{"/api/v1/products/0", `{"error":"Sorry, product details are currently unavailable for this book."}`},
		{"/api/v1/products/0/reviews", `{"error":"Sorry, product reviews are currently unavailable for this book."}`},
		{"/api/v1/products/0/ratings", `{"error":"Sorry, product ratings are currently unavailable for this book."}`},
	} {
		if status, body := get(t, pp.URL+tt.path, nil); status != 500 || body != tt.want {
			t.Errorf("GET %s = %d %s, want 500 %s", tt.path, status, body, tt.want)
		}
	}
}

func TestReviewsTimeoutAndRetry(t *testing.T) {
	const timeout = 150 * time.Millisecond
	healthyReviews := reviews.New(reviews.Config{})
	tests := []struct {
		name        string
		behave      func(call int32, w http.ResponseWriter, r *http.Request)
		wantCalls   int32
		wantStatus  int // of /api/v1/products/0/reviews
		minDuration time.Duration
	}{
		{"ok", func(_ int32, w http.ResponseWriter, r *http.Request) { healthyReviews.ServeHTTP(w, r) }, 1, 200, 0},
		{"first fails, retry succeeds", func(n int32, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				http.Error(w, "fault", http.StatusServiceUnavailable)
				return
			}
			healthyReviews.ServeHTTP(w, r)
		}, 2, 200, 0},
		{"always 503", func(_ int32, w http.ResponseWriter, r *http.Request) {
			http.Error(w, "fault", http.StatusServiceUnavailable)
		}, 2, 503, 0},
		{"always too slow", func(_ int32, w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(10 * time.Second):
			case <-r.Context().Done():
			}
		}, 2, 500, 2 * timeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			rv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tt.behave(calls.Add(1), w, r)
			}))
			dt := serve(t, details.New(details.Config{}))
			pp := serve(t, New(Config{DetailsURL: dt.URL, ReviewsURL: rv.URL, RatingsURL: rv.URL, Timeout: timeout}))

			start := time.Now()
			status, body := get(t, pp.URL+"/api/v1/products/0/reviews", nil)
			elapsed := time.Since(start)
			if status != tt.wantStatus {
				t.Errorf("GET reviews = %d %s, want %d", status, body, tt.wantStatus)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("reviews called %d times, want %d", got, tt.wantCalls)
			}
			if elapsed < tt.minDuration || elapsed > tt.minDuration+2*time.Second {
				t.Errorf("GET reviews took %v, want about %v", elapsed, tt.minDuration)
			}
			if tt.wantStatus != 200 && body != `{"error":"`+ReviewsUnavailable+`"}` {
				t.Errorf("GET reviews body = %s", body)
			}
		})
	}
}

func TestDetailsNotRetried(t *testing.T) {
	var calls atomic.Int32
	dt := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "fault", http.StatusBadGateway)
	}))
	pp := serve(t, New(Config{DetailsURL: dt.URL, ReviewsURL: dt.URL, RatingsURL: dt.URL}))
	if status, _ := get(t, pp.URL+"/api/v1/products/0", nil); status != 502 {
		t.Errorf("GET /api/v1/products/0 = %d, want the backend's 502", status)
	}
	if calls.Load() != 1 {
		t.Errorf("details called %d times, want 1", calls.Load())
	}
}

func TestAPI(t *testing.T) {
	b := startBookinfo(t, "v3")
	tests := []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{"/api/v1/products", 200, `[{"id":0,"title":"The Comedy of Errors","descriptionHtml":"<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and one of his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, in addition to puns and word play."}]`},
		{"/api/v1/products/0", 200, `{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}`},
		{"/api/v1/products/0/reviews", 200, `{"id":"0","podname":"reviews-v3-7f9c","clustername":"null","reviews":[{"reviewer":"Reviewer1","text":"` + review1 + `","rating":{"stars":5,"color":"red"}},{"reviewer":"Reviewer2","text":"` + review2 + `","rating":{"stars":4,"color":"red"}}]}`},
		{"/api/v1/products/0/ratings", 200, `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`},
		{"/health", 200, "Product page is healthy"},
	}
	for _, tt := range tests {
		status, body := get(t, b.productpage.URL+tt.path, nil)
		// The JSON encoder escapes <, > and & in strings; compare after undoing that.
		body = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(body)
		if status != tt.wantStatus || body != tt.wantBody {
			t.Errorf("GET %s = %d\n%s\nwant %d\n%s", tt.path, status, body, tt.wantStatus, tt.wantBody)
		}
	}
	status, index := get(t, b.productpage.URL+"/", nil)
	if status != 200 || !strings.Contains(index, "/productpage?u=normal") || !strings.Contains(index, "/ratings") {
		t.Errorf("GET / = %d\n%s", status, index)
	}
}

func TestLoginLogout(t *testing.T) {
	b := startBookinfo(t, "v1")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodPost, b.productpage.URL+"/login", strings.NewReader(url.Values{"username": {"jason"}, "passwd": {"x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Referer", b.productpage.URL+"/productpage")
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != b.productpage.URL+"/productpage" {
		t.Errorf("POST /login = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != "user" || cookies[0].Value != "jason" {
		t.Fatalf("POST /login set cookies %v", cookies)
	}
	_, page := get(t, b.productpage.URL+"/productpage", http.Header{"Cookie": {"user=jason"}})
	if !strings.Contains(page, "jason") || !strings.Contains(page, `href="logout"`) {
		t.Errorf("signed-in page lacks the user and sign-out link")
	}
	if got := b.reviews.calls()[0].Get("End-User"); got != "jason" {
		t.Errorf("reviews got end-user %q, want jason", got)
	}

	resp, err = noRedirect.Get(b.productpage.URL + "/logout")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := resp.Cookies(); resp.StatusCode != http.StatusFound || len(c) != 1 || c[0].MaxAge >= 0 {
		t.Errorf("GET /logout = %d, cookies %v; want 302 expiring the user cookie", resp.StatusCode, c)
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{"SERVICES_DOMAIN": "bookinfo.svc.cluster.local", "DETAILS_HOSTNAME": "info", "DETAILS_SERVICE_PORT": "8081", "REVIEWS_SERVICE_PORT": "9090"}
	got := ConfigFromEnv(func(k string) string { return env[k] })
	want := Config{
		DetailsURL: "http://info.bookinfo.svc.cluster.local:8081",
		ReviewsURL: "http://reviews.bookinfo.svc.cluster.local:9090",
		RatingsURL: "http://ratings.bookinfo.svc.cluster.local:9080",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ConfigFromEnv() = %+v, want %+v", got, want)
	}
}
