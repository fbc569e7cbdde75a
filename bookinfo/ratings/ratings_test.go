package ratings

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRatings(t *testing.T) {
	srv := httptest.NewServer(New(ConfigFromEnv(func(string) string { return "" })))
	defer srv.Close()

	tests := []struct {
		method, path, body string
		wantStatus         int
		wantBody           string
	}{
		{"GET", "/ratings/0", "", 200, `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`},
		{"GET", "/ratings/3", "", 200, `{"id":3,"ratings":{"Reviewer1":5,"Reviewer2":4}}`},
		{"GET", "/ratings/x", "", 400, `{"error":"please provide numeric product ID"}`},
		{"GET", "/health", "", 200, `{"status":"Ratings is healthy"}`},
		{"POST", "/ratings/1", `{"Reviewer1":1,"Reviewer2":2}`, 200, `{"id":1,"ratings":{"Reviewer1":1,"Reviewer2":2}}`},
		{"GET", "/ratings/1", "", 200, `{"id":1,"ratings":{"Reviewer1":1,"Reviewer2":2}}`},
		{"GET", "/ratings/0", "", 200, `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`},
		{"POST", "/ratings/1", `not json`, 400, `{"error":"please provide valid ratings JSON"}`},
	}
	for _, tt := range tests {
		status, body := do(t, tt.method, srv.URL+tt.path, tt.body)
		if status != tt.wantStatus || body != tt.wantBody {
			t.Errorf("%s %s = %d %s, want %d %s", tt.method, tt.path, status, body, tt.wantStatus, tt.wantBody)
		}
	}
}

func TestFaultyAndDelayedVersions(t *testing.T) {
	// Rand alternates misbehave (0.1) and behave (0.9).
	alternate := func() func() float64 {
		n := 0
		return func() float64 {
			n++
			if n%2 == 1 {
				return 0.1
			}
			return 0.9
		}
	}

	faulty := httptest.NewServer(New(Config{ServiceVersion: VersionFaulty, Rand: alternate()}))
	defer faulty.Close()
	var got []int
	for range 4 {
		status, _ := do(t, "GET", faulty.URL+"/ratings/0", "")
		got = append(got, status)
	}
	if want := []int{503, 200, 503, 200}; !slices.Equal(got, want) {
		t.Errorf("v-faulty statuses = %v, want %v", got, want)
	}

	delayed := httptest.NewServer(New(Config{ServiceVersion: VersionDelayed, Delay: 200 * time.Millisecond, Rand: alternate()}))
	defer delayed.Close()
	for i, wantSlow := range []bool{true, false} {
		start := time.Now()
		status, _ := do(t, "GET", delayed.URL+"/ratings/0", "")
		slow := time.Since(start) >= 200*time.Millisecond
		if status != 200 || slow != wantSlow {
			t.Errorf("v-delayed request %d: status %d, slow %v; want 200, slow %v", i, status, slow, wantSlow)
		}
	}
}
