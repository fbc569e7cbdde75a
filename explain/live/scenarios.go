package live

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"

	"k8s.io/client-go/rest"

	"github.com/meshlab/meshlab/explain"
	"github.com/meshlab/meshlab/scenarios"
)

// Explainer is scenarios.Env.Explain for the lab cfg reaches: it predicts the path of a request a
// scenario or check file sent from a pod, from the config each proxy holds now, as `meshlab explain`
// prints it. Of the request's curl flags it reads -X and -H, the ones that steer routing.
func Explainer(cfg *rest.Config) func(ctx context.Context, req scenarios.Request) (string, error) {
	return func(ctx context.Context, req scenarios.Request) (string, error) {
		if req.Pod == "" {
			return "", fmt.Errorf("the request names no pod")
		}
		src, _, err := Connect(ctx, cfg)
		if err != nil {
			return "", err
		}
		r, err := explain.Explain(src, explainRequest(req))
		if err != nil {
			return "", err
		}
		r.ConfigFrom = src.Origins()
		var b bytes.Buffer
		if err := r.WriteText(&b); err != nil {
			return "", err
		}
		return b.String(), nil
	}
}

// explainRequest is the explain request for a scenario's curl request.
func explainRequest(req scenarios.Request) explain.Request {
	out := explain.Request{From: req.Namespace + "/" + req.Pod, URL: req.URL, Headers: http.Header{}}
	for i := 0; i+1 < len(req.Args); i++ {
		switch req.Args[i] {
		case "-X", "--request":
			out.Method = req.Args[i+1]
			i++
		case "-H", "--header":
			if k, v, ok := strings.Cut(req.Args[i+1], ":"); ok {
				out.Headers.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			i++
		}
	}
	return out
}
