package integration

import (
	"net/http"
	"testing"

	"github.com/meshlab/meshlab/controlplane/model/modeltest"
)

// TestGeneratedCORS sends preflights and cross-origin requests through the engine running the config
// generated for a VirtualService with CORS policies (modeltest ReviewsVSCORS).
func TestGeneratedCORS(t *testing.T) {
	addr := generatedWaypoint(t, modeltest.Load(t, modeltest.Bookinfo, modeltest.ReviewsVSCORS))
	preflight := func(origin string) http.Header {
		return http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"POST"}}
	}

	ex := sendMethod(t, addr, "OPTIONS", "reviews:9080", "/api/1", preflight("https://shop.example.com"))
	if ex.status != 200 || ex.seen != nil {
		t.Errorf("preflight from an allowed origin: %d, backend answered %v; want 200 from the waypoint", ex.status, ex.seen != nil)
	}
	checkValues(t, "preflight", ex.header, "Access-Control-Allow-Origin", "https://shop.example.com")
	checkValues(t, "preflight", ex.header, "Access-Control-Allow-Methods", "GET,POST")
	checkValues(t, "preflight", ex.header, "Access-Control-Allow-Headers", "x-custom,content-type")
	checkValues(t, "preflight", ex.header, "Access-Control-Max-Age", "86400")
	checkValues(t, "preflight", ex.header, "Access-Control-Allow-Credentials", "true")

	ex = sendMethod(t, addr, "OPTIONS", "reviews:9080", "/api/1", preflight("https://a.example.org"))
	checkValues(t, "preflight from a regex-matched origin", ex.header, "Access-Control-Allow-Origin", "https://a.example.org")

	ex = sendMethod(t, addr, "OPTIONS", "reviews:9080", "/api/1", preflight("https://evil.example"))
	if ex.seen == nil || ex.seen.Version != "v1" {
		t.Errorf("preflight from another origin: %d, want it forwarded to reviews v1 (unmatchedPreflights FORWARD)", ex.status)
	}
	ex = sendMethod(t, addr, "OPTIONS", "reviews:9080", "/strict/1", preflight("https://evil.example"))
	if ex.status != 200 || ex.seen != nil {
		t.Errorf("IGNORE preflight from another origin: %d, backend answered %v; want 200 from the waypoint", ex.status, ex.seen != nil)
	}
	checkValues(t, "IGNORE preflight", ex.header, "Access-Control-Allow-Origin")

	ex = sendMethod(t, addr, "GET", "reviews:9080", "/api/1", http.Header{"Origin": {"https://app.shop.example"}})
	checkSeen(t, ex, "cross-origin GET", "v1", "/api/1", "reviews:9080")
	checkValues(t, "cross-origin GET", ex.header, "Access-Control-Allow-Origin", "https://app.shop.example")
	checkValues(t, "cross-origin GET", ex.header, "Access-Control-Expose-Headers", "x-exposed")

	ex = sendMethod(t, addr, "GET", "reviews:9080", "/old", http.Header{"Origin": {"https://shop.example.com"}})
	if ex.status != 301 {
		t.Errorf("GET /old: %d, want the redirect", ex.status)
	}
	checkValues(t, "redirect", ex.header, "Access-Control-Allow-Origin", "https://shop.example.com")
}
