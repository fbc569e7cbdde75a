// Package productpage is bookinfo's front end: GET /productpage renders the book with its details (from
// details:9080/details/<id>) and reviews (from reviews:9080/reviews/<id>), and /api/v1/products... answers
// the same data as JSON. As upstream's productpage.py, every call has a 3 s timeout, reviews are tried
// twice, unavailable services turn into the sample's "Sorry, ..." messages, and trace and identity
// headers are forwarded; a user signed in through /login is sent on as the end-user header.
package productpage

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meshlab/meshlab/bookinfo/forward"
	"github.com/meshlab/meshlab/bookinfo/internal/web"
)

// The error texts upstream shows when a backend is unavailable.
const (
	DetailsUnavailable = "Sorry, product details are currently unavailable for this book."
	ReviewsUnavailable = "Sorry, product reviews are currently unavailable for this book."
	RatingsUnavailable = "Sorry, product ratings are currently unavailable for this book."
)

// userCookie holds the signed-in user's name.
const userCookie = "user"

// Config configures the productpage service.
type Config struct {
	// DetailsURL, ReviewsURL and RatingsURL are the backends' base URLs, e.g. http://details:9080.
	DetailsURL, ReviewsURL, RatingsURL string
	// Timeout bounds each backend call; 0 means upstream's 3 s.
	Timeout time.Duration
	// ReviewsAttempts is how many times reviews is tried; 0 means upstream's 2 (one retry), the
	// deliberate "bug" Istio's fault-injection task shows.
	ReviewsAttempts int
	// Client makes backend calls; nil uses an unpooled client.
	Client *http.Client
	// Logf receives one line per request and backend failures; nil discards.
	Logf func(format string, args ...any)
}

// ConfigFromEnv returns the Config the sample's environment describes: SERVICES_DOMAIN, DETAILS_HOSTNAME,
// DETAILS_SERVICE_PORT, REVIEWS_HOSTNAME, REVIEWS_SERVICE_PORT, RATINGS_HOSTNAME and RATINGS_SERVICE_PORT.
func ConfigFromEnv(getenv func(string) string) Config {
	return Config{
		DetailsURL: web.UpstreamURL(getenv, "DETAILS_HOSTNAME", "DETAILS_SERVICE_PORT", "details"),
		ReviewsURL: web.UpstreamURL(getenv, "REVIEWS_HOSTNAME", "REVIEWS_SERVICE_PORT", "reviews"),
		RatingsURL: web.UpstreamURL(getenv, "RATINGS_HOSTNAME", "RATINGS_SERVICE_PORT", "ratings"),
	}
}

// Product is an entry of GET /api/v1/products.
type Product struct {
	ID              int    `json:"id"`
	Title           string `json:"title"`
	DescriptionHTML string `json:"descriptionHtml"`
}

// Products returns the catalogue: upstream sells one book.
func Products() []Product {
	return []Product{{
		ID:    0,
		Title: "The Comedy of Errors",
		DescriptionHTML: `<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: ` +
			`The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and one of ` +
			`his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, ` +
			`in addition to puns and word play.`,
	}}
}

type server struct {
	cfg    Config
	client *http.Client
	logf   web.Logf
}

// New returns the productpage service's handler.
func New(cfg Config) http.Handler {
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.ReviewsAttempts == 0 {
		cfg.ReviewsAttempts = 2
	}
	if cfg.DetailsURL == "" || cfg.ReviewsURL == "" || cfg.RatingsURL == "" {
		def := ConfigFromEnv(func(string) string { return "" })
		cfg.DetailsURL = orDefault(cfg.DetailsURL, def.DetailsURL)
		cfg.ReviewsURL = orDefault(cfg.ReviewsURL, def.ReviewsURL)
		cfg.RatingsURL = orDefault(cfg.RatingsURL, def.RatingsURL)
	}
	s := &server{cfg: cfg, client: cfg.Client, logf: web.OrDiscard(cfg.Logf)}
	if s.client == nil {
		s.client = web.NewClient()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /index.html", s.index)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "Product page is healthy")
	})
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("GET /logout", s.logout)
	mux.HandleFunc("GET /productpage", s.productPage)
	mux.HandleFunc("GET /api/v1/products", func(w http.ResponseWriter, r *http.Request) {
		web.WriteJSON(w, http.StatusOK, Products())
	})
	mux.HandleFunc("GET /api/v1/products/{id}", s.apiDetails)
	mux.HandleFunc("GET /api/v1/products/{id}/reviews", s.apiReviews)
	mux.HandleFunc("GET /api/v1/products/{id}/ratings", s.apiRatings)
	return web.LogRequests(s.logf, mux)
}

func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// forwardHeaders returns the headers to send to backends for the incoming request r.
func forwardHeaders(r *http.Request) http.Header {
	h := http.Header{}
	forward.Copy(h, r.Header)
	if c, err := r.Cookie(userCookie); err == nil && c.Value != "" {
		h.Set("End-User", c.Value)
	}
	return h
}

// call GETs url once within the timeout. It returns the body when the answer is a 200 with JSON, and
// otherwise the status to report: the backend's, or 500 when there was no answer.
func (s *server) call(ctx context.Context, url string, headers http.Header) (json.RawMessage, int) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		s.logf("calling %s: %v", url, err)
		return nil, http.StatusInternalServerError
	}
	req.Header = headers.Clone()
	resp, err := s.client.Do(req)
	if err != nil {
		s.logf("calling %s: %v", url, err)
		return nil, http.StatusInternalServerError
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		s.logf("reading %s: %v", url, err)
		return nil, http.StatusInternalServerError
	}
	if resp.StatusCode != http.StatusOK {
		s.logf("calling %s: status %d", url, resp.StatusCode)
		return nil, resp.StatusCode
	}
	if !json.Valid(body) {
		s.logf("calling %s: answer is not JSON", url)
		return nil, http.StatusInternalServerError
	}
	return body, http.StatusOK
}

// backendError is the JSON body sent in place of a backend's answer.
func backendError(msg string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return b
}

func (s *server) details(ctx context.Context, id string, h http.Header) (json.RawMessage, int) {
	body, status := s.call(ctx, s.cfg.DetailsURL+"/details/"+url.PathEscape(id), h)
	if status != http.StatusOK {
		return backendError(DetailsUnavailable), status
	}
	return body, status
}

func (s *server) reviews(ctx context.Context, id string, h http.Header) (json.RawMessage, int) {
	var status int
	for range s.cfg.ReviewsAttempts {
		var body json.RawMessage
		body, status = s.call(ctx, s.cfg.ReviewsURL+"/reviews/"+url.PathEscape(id), h)
		if status == http.StatusOK {
			return body, status
		}
	}
	return backendError(ReviewsUnavailable), status
}

func (s *server) ratings(ctx context.Context, id string, h http.Header) (json.RawMessage, int) {
	body, status := s.call(ctx, s.cfg.RatingsURL+"/ratings/"+url.PathEscape(id), h)
	if status != http.StatusOK {
		return backendError(RatingsUnavailable), status
	}
	return body, status
}

func (s *server) apiDetails(w http.ResponseWriter, r *http.Request) {
	body, status := s.details(r.Context(), r.PathValue("id"), forwardHeaders(r))
	web.WriteRawJSON(w, status, body)
}

func (s *server) apiReviews(w http.ResponseWriter, r *http.Request) {
	body, status := s.reviews(r.Context(), r.PathValue("id"), forwardHeaders(r))
	web.WriteRawJSON(w, status, body)
}

func (s *server) apiRatings(w http.ResponseWriter, r *http.Request) {
	body, status := s.ratings(r.Context(), r.PathValue("id"), forwardHeaders(r))
	web.WriteRawJSON(w, status, body)
}

func (s *server) login(w http.ResponseWriter, r *http.Request) {
	user := strings.TrimSpace(r.FormValue("username"))
	http.SetCookie(w, &http.Cookie{Name: userCookie, Value: url.QueryEscape(user), Path: "/", HttpOnly: true})
	http.Redirect(w, r, back(r), http.StatusFound)
}

func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: userCookie, Value: "", Path: "/", MaxAge: -1})
	http.Redirect(w, r, back(r), http.StatusFound)
}

// back is where login and logout return to: the page the form was on.
func back(r *http.Request) string {
	if ref := r.Referer(); ref != "" {
		return ref
	}
	return "/productpage"
}

// user returns the signed-in user, if any.
func user(r *http.Request) string {
	c, err := r.Cookie(userCookie)
	if err != nil {
		return ""
	}
	name, err := url.QueryUnescape(c.Value)
	if err != nil {
		return ""
	}
	return name
}

func (s *server) index(w http.ResponseWriter, r *http.Request) {
	s.render(w, indexTemplate, indexData{Services: []service{
		{Name: "productpage", URL: "http://productpage:9080/productpage", Children: []service{
			{Name: "details", URL: s.cfg.DetailsURL + "/details"},
			{Name: "reviews", URL: s.cfg.ReviewsURL + "/reviews", Children: []service{
				{Name: "ratings", URL: s.cfg.RatingsURL + "/ratings"},
			}},
		}},
	}})
}

func (s *server) productPage(w http.ResponseWriter, r *http.Request) {
	const id = 0 // upstream shows its only book
	h := forwardHeaders(r)
	page := pageData{Product: Products()[id], User: user(r)}
	body, status := s.details(r.Context(), fmt.Sprint(id), h)
	page.DetailsOK = status == http.StatusOK
	if page.DetailsOK {
		page.DetailsOK = json.Unmarshal(body, &page.Details) == nil
	}
	if !page.DetailsOK {
		page.DetailsError = DetailsUnavailable
	}
	body, status = s.reviews(r.Context(), fmt.Sprint(id), h)
	page.ReviewsOK = status == http.StatusOK
	if page.ReviewsOK {
		page.ReviewsOK = json.Unmarshal(body, &page.Reviews) == nil
	}
	if !page.ReviewsOK {
		page.ReviewsError = ReviewsUnavailable
	}
	s.render(w, productTemplate, page)
}
