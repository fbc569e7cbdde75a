// Package bookinfo is meshlab's Go rendition of Istio's bookinfo sample: four services (productpage,
// details, reviews v1/v2/v3, ratings), all on port 9080, that behave and answer like the upstream Python,
// Ruby, Java and Node.js applications so that routing, fault-injection and policy exercises read the same.
//
// Each service is an http.Handler built from a Config that is read from the sample's own environment
// variables; the subpackages are:
//
//   - productpage: the HTML page and the /api/v1 JSON API, calling details and reviews
//   - details: the book's details
//   - reviews: two reviews, with ratings stars from v2 (black) and v3 (red)
//   - ratings: the stars per reviewer
//   - forward: the trace and identity headers every service propagates
//
// The names of its Services, Deployments and service accounts are here; the Kubernetes objects that run
// the sample (and the sleep client) from meshlab's image are in package manifests.
package bookinfo

// Port is the port every bookinfo service listens on.
const Port = 9080
