package productpage

import (
	"bytes"
	"html/template"
	"net/http"
)

// pageData is what the product page shows.
type pageData struct {
	Product      Product
	User         string
	DetailsOK    bool
	Details      map[string]any
	DetailsError string
	ReviewsOK    bool
	Reviews      reviewsView
	ReviewsError string
}

// reviewsView is the part of the reviews answer the page shows.
type reviewsView struct {
	PodName     string `json:"podname"`
	ClusterName string `json:"clustername"`
	Reviews     []struct {
		Reviewer string `json:"reviewer"`
		Text     string `json:"text"`
		Rating   *struct {
			Stars *int   `json:"stars"`
			Color string `json:"color"`
			Error string `json:"error"`
		} `json:"rating"`
	} `json:"reviews"`
}

type indexData struct{ Services []service }

type service struct {
	Name, URL string
	Children  []service
}

var funcs = template.FuncMap{
	"html": func(s string) template.HTML { return template.HTML(s) },
	// stars returns n items (for a range) clamped to 0..5.
	"stars": func(n int) []struct{} { return make([]struct{}, min(max(n, 0), 5)) },
	"deref": func(p *int) int { return *p },
	// unstarred is the rest of five.
	"unstarred": func(n int) []struct{} { return make([]struct{}, 5-min(max(n, 0), 5)) },
}

// render executes t into a buffer first so that a template error becomes a clean 500.
func (s *server) render(w http.ResponseWriter, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		s.logf("rendering %s: %v", t.Name(), err)
		http.Error(w, "rendering page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

const style = `<style>
body { font-family: sans-serif; margin: 0; color: #222; }
nav { background: #1f2937; color: #fff; padding: 1em 2em; display: flex; justify-content: space-between; }
nav a { color: #ddd; }
main { padding: 1em 2em; max-width: 60em; }
h1 { color: #1e3a8a; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: .4em .8em; text-align: left; }
th { background: #466bb0; color: #fff; }
.error { color: #dc2626; }
.reviews { display: flex; gap: 2em; flex-wrap: wrap; }
.review { padding: 1em; background: #eff6ff; max-width: 25em; }
.stars { font-size: 1.4em; }
.served { font-family: monospace; color: #555; }
</style>`

var productTemplate = template.Must(template.New("productpage").Funcs(funcs).Parse(`<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Simple Bookstore App</title>
` + style + `
</head>
<body>
<nav>
  <a href="/">BookInfo Sample</a>
  {{- if .User}}
  <span>{{.User}} <a href="logout">Sign out</a></span>
  {{- else}}
  <form method="post" action="login" name="login_form">
    <input name="username" placeholder="Username" required>
    <input name="passwd" type="password" placeholder="Password">
    <button type="submit">Sign in</button>
  </form>
  {{- end}}
</nav>
<main>
<h1>{{.Product.Title}}</h1>
<p>{{html .Product.DescriptionHTML}}</p>

<section id="details">
{{- if .DetailsOK}}
<h4>Book Details</h4>
<table>
  <thead><tr><th>ISBN-10</th><th>Publisher</th><th>Pages</th><th>Type</th><th>Language</th></tr></thead>
  <tbody><tr>
    <td>{{index .Details "ISBN-10"}}</td>
    <td>{{index .Details "publisher"}}</td>
    <td>{{index .Details "pages"}}</td>
    <td>{{index .Details "type"}}</td>
    <td>{{index .Details "language"}}</td>
  </tr></tbody>
</table>
{{- else}}
<h4 class="error">Error fetching product details</h4>
<p>{{.DetailsError}}</p>
{{- end}}
</section>

<section id="reviews">
{{- if .ReviewsOK}}
<h4>Book Reviews</h4>
<div class="reviews">
{{- range .Reviews.Reviews}}
<div class="review">
  {{- with .Rating}}
  {{- if .Stars}}
  <div class="stars"><font color="{{.Color}}">
    {{- range stars (deref .Stars)}}<span class="glyphicon glyphicon-star">&#9733;</span>{{end -}}
    {{- range unstarred (deref .Stars)}}<span class="glyphicon glyphicon-star-empty">&#9734;</span>{{end -}}
  </font></div>
  {{- else if .Error}}
  <p class="error">{{.Error}}</p>
  {{- end}}
  {{- end}}
  <blockquote><p>"{{.Text}}"</p></blockquote>
  <div><b>{{.Reviewer}}</b></div>
  <div class="served">Reviews served by: {{$.Reviews.PodName}}
  {{- if and $.Reviews.ClusterName (ne $.Reviews.ClusterName "null")}} on cluster {{$.Reviews.ClusterName}}{{end}}</div>
</div>
{{- end}}
</div>
{{- else}}
<h4 class="error">Error fetching product reviews</h4>
<p>{{.ReviewsError}}</p>
{{- end}}
</section>
</main>
</body>
</html>
`))

var indexTemplate = template.Must(template.New("index").Funcs(funcs).Parse(`<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Simple Bookstore App</title>
` + style + `
</head>
<body>
<main>
<h3>Hello! This is a simple bookstore application consisting of three services as shown below</h3>
{{template "services" .Services}}
<p>Click on one of the links below to auto generate a request to the backend as a real user or a tester</p>
<ul>
  <li><a href="/productpage?u=normal">Normal user</a></li>
  <li><a href="/productpage?u=test">Test user</a></li>
</ul>
</main>
</body>
</html>
{{define "services"}}<table>
  <thead><tr><th>name</th><th>endpoint</th><th>children</th></tr></thead>
  <tbody>
  {{- range .}}
  <tr><td>{{.Name}}</td><td>{{.URL}}</td><td>{{if .Children}}{{template "services" .Children}}{{end}}</td></tr>
  {{- end}}
  </tbody>
</table>{{end}}
`))
