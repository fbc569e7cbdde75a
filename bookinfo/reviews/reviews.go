// Package reviews is bookinfo's reviews service: GET /reviews/<id> answers two reviews of the book. Like
// upstream's three images it comes in three versions, chosen by configuration: v1 shows no stars and never
// calls ratings; v2 and v3 call ratings:9080/ratings/<id> and show black or red stars. When ratings cannot
// be reached, each review's rating becomes {"error":"Ratings service is currently unavailable"}.
package reviews

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshlab/meshlab/bookinfo/forward"
	"github.com/meshlab/meshlab/bookinfo/internal/web"
)

// The two reviews upstream serves for every book.
var reviews = []struct{ reviewer, text string }{
	{"Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},
	{"Reviewer2", "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."},
}

// RatingsUnavailable is the rating error shown when ratings cannot be reached.
const RatingsUnavailable = "Ratings service is currently unavailable"

// Config configures the reviews service.
type Config struct {
	// Version is the service version (SERVICE_VERSION), only logged; EnableRatings and StarColor decide.
	Version string
	// EnableRatings (ENABLE_RATINGS) makes reviews call ratings and show stars (v2, v3).
	EnableRatings bool
	// StarColor (STAR_COLOR) is the stars' colour: black for v2, red for v3.
	StarColor string
	// RatingsURL is ratings' base URL, http://ratings:9080 by default.
	RatingsURL string
	// PodName (HOSTNAME) and ClusterName (CLUSTER_NAME) are echoed in every answer; upstream prints an
	// unset CLUSTER_NAME as "null", and so does ConfigFromEnv.
	PodName, ClusterName string
	// RatingsTimeout bounds a ratings call; 0 means upstream's: 10 s with black stars, 2.5 s otherwise.
	RatingsTimeout time.Duration
	// Client calls ratings; nil uses an unpooled client.
	Client *http.Client
	// Logf receives one line per request and ratings failures; nil discards.
	Logf func(format string, args ...any)
}

// ConfigFromEnv returns the Config the sample's environment describes: SERVICE_VERSION, ENABLE_RATINGS,
// STAR_COLOR, SERVICES_DOMAIN, RATINGS_HOSTNAME, RATINGS_SERVICE_PORT, HOSTNAME and CLUSTER_NAME.
func ConfigFromEnv(getenv func(string) string) Config {
	cfg := Config{
		Version:       getenv("SERVICE_VERSION"),
		EnableRatings: strings.EqualFold(getenv("ENABLE_RATINGS"), "true"),
		StarColor:     getenv("STAR_COLOR"),
		RatingsURL:    web.UpstreamURL(getenv, "RATINGS_HOSTNAME", "RATINGS_SERVICE_PORT", "ratings"),
		PodName:       getenv("HOSTNAME"),
		ClusterName:   getenv("CLUSTER_NAME"),
	}
	if cfg.Version == "" {
		cfg.Version = "v1"
	}
	if cfg.StarColor == "" {
		cfg.StarColor = "black"
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = "null"
	}
	return cfg
}

// SetVersion applies the settings upstream bakes into each version's image: v1 without ratings, v2 with
// black stars, v3 with red stars.
func (c *Config) SetVersion(version string) error {
	switch version {
	case "v1":
		c.EnableRatings = false
	case "v2":
		c.EnableRatings, c.StarColor = true, "black"
	case "v3":
		c.EnableRatings, c.StarColor = true, "red"
	default:
		return fmt.Errorf("unknown reviews version %q (want v1, v2 or v3)", version)
	}
	c.Version = version
	return nil
}

// Response is the JSON document GET /reviews/<id> returns. Upstream sends the id as a string.
type Response struct {
	ID          string   `json:"id"`
	PodName     string   `json:"podname"`
	ClusterName string   `json:"clustername"`
	Reviews     []Review `json:"reviews"`
}

// Review is one review; Rating is absent in v1.
type Review struct {
	Reviewer string  `json:"reviewer"`
	Text     string  `json:"text"`
	Rating   *Rating `json:"rating,omitempty"`
}

// Rating is either stars and their colour or, when ratings failed, an error.
type Rating struct {
	Stars *int   `json:"stars,omitempty"`
	Color string `json:"color,omitempty"`
	Error string `json:"error,omitempty"`
}

type server struct {
	cfg    Config
	client *http.Client
	logf   web.Logf
}

// New returns the reviews service's handler.
func New(cfg Config) http.Handler {
	if cfg.StarColor == "" {
		cfg.StarColor = "black"
	}
	if cfg.RatingsURL == "" {
		cfg.RatingsURL = "http://ratings:9080"
	}
	if cfg.RatingsTimeout == 0 {
		// Upstream's v3 gives up on ratings sooner, which the request-timeouts exercise relies on.
		cfg.RatingsTimeout = 2500 * time.Millisecond
		if cfg.StarColor == "black" {
			cfg.RatingsTimeout = 10 * time.Second
		}
	}
	s := &server{cfg: cfg, client: cfg.Client, logf: web.OrDiscard(cfg.Logf)}
	if s.client == nil {
		s.client = web.NewClient()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		web.WriteJSON(w, http.StatusOK, map[string]string{"status": "Reviews is healthy"})
	})
	mux.HandleFunc("GET /reviews/{id}", s.reviews)
	return web.LogRequests(s.logf, mux)
}

func (s *server) reviews(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		// JAX-RS answers 404 when an int path parameter does not parse.
		http.NotFound(w, r)
		return
	}
	resp := Response{ID: strconv.Itoa(id), PodName: s.cfg.PodName, ClusterName: s.cfg.ClusterName}
	var stars map[string]int
	if s.cfg.EnableRatings {
		stars = s.ratings(r, id)
	}
	for _, rv := range reviews {
		review := Review{Reviewer: rv.reviewer, Text: rv.text}
		if s.cfg.EnableRatings {
			if n, ok := stars[rv.reviewer]; ok {
				review.Rating = &Rating{Stars: &n, Color: s.cfg.StarColor}
			} else {
				review.Rating = &Rating{Error: RatingsUnavailable}
			}
		}
		resp.Reviews = append(resp.Reviews, review)
	}
	web.WriteJSON(w, http.StatusOK, resp)
}

// ratings fetches the stars per reviewer, or nil when ratings fails in any way.
func (s *server) ratings(in *http.Request, id int) map[string]int {
	ctx, cancel := context.WithTimeout(in.Context(), s.cfg.RatingsTimeout)
	defer cancel()
	url := fmt.Sprintf("%s/ratings/%d", s.cfg.RatingsURL, id)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		s.logf("Error: unable to contact %s: %v", url, err)
		return nil
	}
	forward.Copy(req.Header, in.Header)
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		s.logf("Error: unable to contact %s: %v", url, err)
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.logf("Error: unable to contact %s got status of %d", url, resp.StatusCode)
		return nil
	}
	var body struct {
		Ratings map[string]int `json:"ratings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		s.logf("Error: reading ratings from %s: %v", url, err)
		return nil
	}
	return body.Ratings
}
