// Package web holds the plumbing the bookinfo services share: JSON replies, the one-line request log,
// upstream addresses from the sample's environment variables and the HTTP client they call each other with.
package web

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Logf is a printf-style logger; nil means discard.
type Logf func(format string, args ...any)

// OrDiscard returns logf, or a logger that drops everything when logf is nil.
func OrDiscard(logf func(string, ...any)) Logf {
	if logf == nil {
		return func(string, ...any) {}
	}
	return logf
}

// WriteJSON replies with v encoded as JSON and the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	WriteRawJSON(w, status, body)
}

// WriteRawJSON replies with an already encoded JSON body.
func WriteRawJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// LogRequests logs one line per request after it is served: method, path, status, duration and the
// x-request-id the mesh attached (or "-").
func LogRequests(logf Logf, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		rid := r.Header.Get("X-Request-Id")
		if rid == "" {
			rid = "-"
		}
		logf("%s %s %d %s x-request-id=%s", r.Method, r.URL.RequestURI(), sw.status,
			time.Since(start).Round(time.Microsecond), rid)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// UpstreamURL builds a service's base URL the way the upstream sample does:
// http://<$hostVar or defaultHost><.$SERVICES_DOMAIN>:<$portVar or 9080>. Empty variables count as unset.
func UpstreamURL(getenv func(string) string, hostVar, portVar, defaultHost string) string {
	host := getenv(hostVar)
	if host == "" {
		host = defaultHost
	}
	if domain := getenv("SERVICES_DOMAIN"); domain != "" {
		host += "." + domain
	}
	port := getenv(portVar)
	if port == "" {
		port = "9080"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// NewClient returns the client services call each other with. Like upstream's productpage it does not
// pool connections, so every call is a new connection and L4 load balancing spreads calls across versions;
// it ignores proxy environment variables, the mesh is the only proxy.
func NewClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			DialContext:       (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
