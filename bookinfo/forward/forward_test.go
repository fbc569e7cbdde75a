package forward

import (
	"net/http"
	"reflect"
	"testing"
)

func TestCopy(t *testing.T) {
	src := http.Header{}
	src.Set("X-Request-Id", "rid")
	src.Set("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7")
	src.Set("B3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")
	src.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	src.Set("End-User", "jason")
	src.Add("Cookie", "a=1")
	src.Add("Cookie", "b=2")
	src.Set("Authorization", "Bearer t")
	src.Set("User-Agent", "curl/8")
	src.Set("Accept", "text/html")        // not propagated
	src.Set("X-Forwarded-For", "1.2.3.4") // not propagated

	dst := http.Header{}
	dst.Set("X-Request-Id", "overwritten")
	Copy(dst, src)

	want := http.Header{
		"X-Request-Id":  {"rid"},
		"X-B3-Traceid":  {"80f198ee56343ba864fe8b2a57d3eff7"},
		"B3":            {"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"},
		"Traceparent":   {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"End-User":      {"jason"},
		"Cookie":        {"a=1", "b=2"},
		"Authorization": {"Bearer t"},
		"User-Agent":    {"curl/8"},
	}
	if !reflect.DeepEqual(dst, want) {
		t.Errorf("Copy() = %v, want %v", dst, want)
	}
	// The copy must not alias src's slices.
	dst["Cookie"][0] = "changed"
	if src.Get("Cookie") != "a=1" {
		t.Errorf("Copy() aliased the source header values")
	}
}

func TestHeadersIncludeUpstreamList(t *testing.T) {
	have := map[string]bool{}
	for _, h := range Headers {
		if have[h] {
			t.Errorf("header %q listed twice", h)
		}
		have[h] = true
	}
	for _, h := range []string{"x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
		"x-b3-flags", "b3", "traceparent", "tracestate", "end-user", "cookie", "authorization", "user-agent"} {
		if !have[h] {
			t.Errorf("Headers lacks %q", h)
		}
	}
}
