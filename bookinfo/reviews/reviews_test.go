package reviews

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlab/meshlab/bookinfo/ratings"
)

const (
	text1 = "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"
	text2 = "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."
)

// countingRatings is a real ratings service that counts the requests it gets.
func countingRatings(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	h := ratings.New(ratings.Config{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// closedURL is the address of a server that no longer listens.
func closedURL() string {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestVersions(t *testing.T) {
	ratingsSrv, calls := countingRatings(t)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"Service unavailable"}`, http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	partial := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"id":0,"ratings":{"Reviewer2":3}}`))
	}))
	defer partial.Close()

	unavailable := `{"error":"Ratings service is currently unavailable"}`
	tests := []struct {
		name       string
		version    string
		ratingsURL string
		wantBody   string
		wantCalls  int32
	}{
		{"v1", "v1", ratingsSrv.URL,
			`{"id":"0","podname":"reviews-v1-abc","clustername":"null","reviews":[{"reviewer":"Reviewer1","text":"` + text1 + `"},{"reviewer":"Reviewer2","text":"` + text2 + `"}]}`, 0},
		{"v2", "v2", ratingsSrv.URL,
			`{"id":"0","podname":"reviews-v1-abc","clustername":"null","reviews":[{"reviewer":"Reviewer1","text":"` + text1 + `","rating":{"stars":5,"color":"black"}},{"reviewer":"Reviewer2","text":"` + text2 + `","rating":{"stars":4,"color":"black"}}]}`, 1},
		{"v3", "v3", ratingsSrv.URL,
			`{"id":"0","podname":"reviews-v1-abc","clustername":"null","reviews":[{"reviewer":"Reviewer1","text":"` + text1 + `","rating":{"stars":5,"color":"red"}},{"reviewer":"Reviewer2","text":"` + text2 + `","rating":{"stars":4,"color":"red"}}]}`, 1},
		{"v2 ratings down", "v2", closedURL(),
			`{"id":"0","podname":"reviews-v1-abc","clustername":"null","reviews":[{"reviewer":"Reviewer1","text":"` + text1 + `","rating":` + unavailable + `},{"reviewer":"Reviewer2","text":"` + text2 + `","rating":` + unavailable + `}]}`, 0},
		{"v3 ratings 503", "v3", failing.URL,
			`{"id":"0","podname":"reviews-v1-abc","clustername":"null","reviews":[{"reviewer":"Reviewer1","text":"` + text1 + `","rating":` + unavailable + `},{"reviewer":"Reviewer2","text":"` + text2 + `","rating":` + unavailable + `}]}`, 0},
		{"v2 one reviewer missing", "v2", partial.URL,
			`{"id":"0","podname":"reviews-v1-abc","clustername":"null","reviews":[{"reviewer":"Reviewer1","text":"` + text1 + `","rating":` + unavailable + `},{"reviewer":"Reviewer2","text":"` + text2 + `","rating":{"stars":3,"color":"black"}}]}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls.Store(0)
			cfg := ConfigFromEnv(func(k string) string { return map[string]string{"HOSTNAME": "reviews-v1-abc"}[k] })
			cfg.RatingsURL = tt.ratingsURL
			if err := cfg.SetVersion(tt.version); err != nil {
				t.Fatal(err)
			}
			status, body := get(t, New(cfg), "/reviews/0")
			if status != 200 || body != tt.wantBody {
				t.Errorf("GET /reviews/0 = %d\n%s\nwant 200\n%s", status, body, tt.wantBody)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("ratings called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestRatingsTimeout(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	cfg := Config{RatingsURL: slow.URL, RatingsTimeout: 100 * time.Millisecond}
	cfg.SetVersion("v3")
	start := time.Now()
	_, body := get(t, New(cfg), "/reviews/1")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("GET /reviews/1 took %v with a 100ms ratings timeout", d)
	}
	if want := `"rating":{"error":"Ratings service is currently unavailable"}`; !strings.Contains(body, want) {
		t.Errorf("body %s lacks %s", body, want)
	}
}

func TestOtherRoutes(t *testing.T) {
	h := New(Config{})
	for _, tt := range []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{"/health", 200, `{"status":"Reviews is healthy"}`},
		{"/reviews/abc", 404, "404 page not found\n"},
		{"/reviews/007", 200, `{"id":"7","podname":"","clustername":"","reviews":[{"reviewer":"Reviewer1","text":"` + text1 + `"},{"reviewer":"Reviewer2","text":"` + text2 + `"}]}`},
	} {
		if status, body := get(t, h, tt.path); status != tt.wantStatus || body != tt.wantBody {
			t.Errorf("GET %s = %d %s, want %d %s", tt.path, status, body, tt.wantStatus, tt.wantBody)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{
		"SERVICE_VERSION": "v3", "ENABLE_RATINGS": "True", "STAR_COLOR": "red", "SERVICES_DOMAIN": "bookinfo.svc.cluster.local",
		"RATINGS_HOSTNAME": "stars", "RATINGS_SERVICE_PORT": "8080", "HOSTNAME": "reviews-v3-xyz", "CLUSTER_NAME": "east",
	}
	got := ConfigFromEnv(func(k string) string { return env[k] })
	want := Config{Version: "v3", EnableRatings: true, StarColor: "red", RatingsURL: "http://stars.bookinfo.svc.cluster.local:8080",
		PodName: "reviews-v3-xyz", ClusterName: "east"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ConfigFromEnv() = %+v, want %+v", got, want)
	}
	got = ConfigFromEnv(func(string) string { return "" })
	want = Config{Version: "v1", StarColor: "black", RatingsURL: "http://ratings:9080", ClusterName: "null"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ConfigFromEnv(empty) = %+v, want %+v", got, want)
	}
	if err := got.SetVersion("v4"); err == nil {
		t.Errorf("SetVersion(v4) succeeded")
	}
}
