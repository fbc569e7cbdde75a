// Package ratings is bookinfo's ratings service: GET /ratings/<id> answers how many stars each reviewer
// gave, {"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}, as upstream's ratings.js does without a database.
// POST /ratings/<id> replaces a product's ratings in memory; SERVICE_VERSION v-faulty and v-delayed make
// half of the answers a 503 or 7 s late, for fault and timeout exercises.
package ratings

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/meshlab/meshlab/bookinfo/internal/web"
)

// Service versions with special behaviour (SERVICE_VERSION); anything else serves normally.
const (
	VersionFaulty  = "v-faulty"  // half of the requests answer 503
	VersionDelayed = "v-delayed" // half of the requests answer after Delay
)

// Config configures the ratings service.
type Config struct {
	// ServiceVersion is SERVICE_VERSION: "v1" by default, or VersionFaulty or VersionDelayed.
	ServiceVersion string
	// Delay is how late v-delayed answers; 0 means upstream's 7 s.
	Delay time.Duration
	// Rand returns a number in [0,1) deciding which requests misbehave; nil uses math/rand.
	Rand func() float64
	// Logf receives one line per request; nil discards.
	Logf func(format string, args ...any)
}

// ConfigFromEnv returns the Config the sample's environment describes.
func ConfigFromEnv(getenv func(string) string) Config {
	v := getenv("SERVICE_VERSION")
	if v == "" {
		v = "v1"
	}
	return Config{ServiceVersion: v}
}

// Response is the JSON document GET /ratings/<id> returns.
type Response struct {
	ID      int            `json:"id"`
	Ratings map[string]int `json:"ratings"`
}

// Default returns upstream's ratings for any product.
func Default(id int) Response {
	return Response{ID: id, Ratings: map[string]int{"Reviewer1": 5, "Reviewer2": 4}}
}

type server struct {
	cfg Config
	mu  sync.Mutex
	// posted holds ratings users POSTed, by product id, as the JSON they sent.
	posted map[int]json.RawMessage
}

// New returns the ratings service's handler.
func New(cfg Config) http.Handler {
	if cfg.Delay == 0 {
		cfg.Delay = 7 * time.Second
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	s := &server{cfg: cfg, posted: map[int]json.RawMessage{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		web.WriteJSON(w, http.StatusOK, map[string]string{"status": "Ratings is healthy"})
	})
	mux.HandleFunc("GET /ratings/{id}", s.get)
	mux.HandleFunc("POST /ratings/{id}", s.post)
	return web.LogRequests(web.OrDiscard(cfg.Logf), mux)
}

func productID(w http.ResponseWriter, r *http.Request) (int, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		web.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product ID"})
		return 0, false
	}
	return id, true
}

func (s *server) get(w http.ResponseWriter, r *http.Request) {
	id, ok := productID(w, r)
	if !ok {
		return
	}
	switch s.cfg.ServiceVersion {
	case VersionFaulty:
		if s.cfg.Rand() < 0.5 {
			web.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "Service unavailable"})
			return
		}
	case VersionDelayed:
		if s.cfg.Rand() < 0.5 {
			select {
			case <-time.After(s.cfg.Delay):
			case <-r.Context().Done():
				return
			}
		}
	}
	s.writeRatings(w, id)
}

func (s *server) post(w http.ResponseWriter, r *http.Request) {
	id, ok := productID(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var ratings map[string]any
	if err != nil || json.Unmarshal(body, &ratings) != nil {
		web.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide valid ratings JSON"})
		return
	}
	s.mu.Lock()
	s.posted[id] = json.RawMessage(body)
	s.mu.Unlock()
	s.writeRatings(w, id)
}

func (s *server) writeRatings(w http.ResponseWriter, id int) {
	s.mu.Lock()
	posted, ok := s.posted[id]
	s.mu.Unlock()
	if ok {
		web.WriteJSON(w, http.StatusOK, struct {
			ID      int             `json:"id"`
			Ratings json.RawMessage `json:"ratings"`
		}{id, posted})
		return
	}
	web.WriteJSON(w, http.StatusOK, Default(id))
}
