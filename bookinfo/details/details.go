// Package details is bookinfo's details service: GET /details/<id> answers the book's details as JSON,
// the same fixed record upstream's details.rb serves for every numeric id.
package details

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/meshlab/meshlab/bookinfo/internal/web"
)

// Config configures the details service. The upstream sample reads no variables for its default
// behaviour (ENABLE_EXTERNAL_BOOK_SERVICE would call Google Books, which a sandbox never does).
type Config struct {
	// Logf receives one line per request; nil discards.
	Logf func(format string, args ...any)
}

// ConfigFromEnv returns the Config the sample's environment describes.
func ConfigFromEnv(getenv func(string) string) Config { return Config{} }

// Details is the JSON document GET /details/<id> returns, fields in upstream's order.
type Details struct {
	ID        int    `json:"id"`
	Author    string `json:"author"`
	Year      int    `json:"year"`
	Type      string `json:"type"`
	Pages     int    `json:"pages"`
	Publisher string `json:"publisher"`
	Language  string `json:"language"`
	ISBN10    string `json:"ISBN-10"`
	ISBN13    string `json:"ISBN-13"`
}

// Book returns the details of book id: upstream has one book, whatever the id.
func Book(id int) Details {
	return Details{
		ID:        id,
		Author:    "William Shakespeare",
		Year:      1595,
		Type:      "paperback",
		Pages:     200,
		Publisher: "PublisherA",
		Language:  "English",
		ISBN10:    "1234567890",
		ISBN13:    "123-1234567890",
	}
}

// New returns the details service's handler.
func New(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		web.WriteJSON(w, http.StatusOK, map[string]string{"status": "Details is healthy"})
	})
	// Like WEBrick's mount on /details, any path below it is served and the last segment is the id.
	details := func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.TrimRight(r.URL.Path, "/"), "/")
		id, err := strconv.Atoi(parts[len(parts)-1])
		if err != nil {
			web.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product id"})
			return
		}
		web.WriteJSON(w, http.StatusOK, Book(id))
	}
	mux.HandleFunc("/details", details)
	mux.HandleFunc("/details/", details)
	return web.LogRequests(web.OrDiscard(cfg.Logf), mux)
}
