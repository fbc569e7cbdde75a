// Package modeltest holds the mesh fixtures that model, generate and render tests share (bookinfo with a
// reviews waypoint, and its 90/10 routing as a VirtualService or as an HTTPRoute), and helpers to load them.
package modeltest

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/controlplane/model"
)

// Fixture files, relative to Dir.
const (
	Bookinfo         = "bookinfo.yaml"          // namespace, services, pods, reviews-waypoint
	ReviewsVS        = "reviews-vs.yaml"        // VirtualService 90/10 and DestinationRule v1/v2/v3
	ReviewsHTTPRoute = "reviews-httproute.yaml" // HTTPRoute 90/10 to reviews-v1/reviews-v2 Services
	// ReviewsVSFilters (in a subdirectory, so that Dir stays one consistent mesh) is a VirtualService with redirects, rewrites and header operations.
	ReviewsVSFilters = "filters/reviews-vs-filters.yaml"
	// ReviewsHTTPRouteFilters is an HTTPRoute with RequestRedirect, URLRewrite and header modifiers.
	ReviewsHTTPRouteFilters = "filters/reviews-httproute-filters.yaml"
	// ReviewsVSMirror is a VirtualService with mirror, mirrorPercentage, mirrorPercent, mirrors[] and
	// retries.perTryTimeout.
	ReviewsVSMirror = "filters/reviews-vs-mirror.yaml"
	// ReviewsVSCORS is a VirtualService with CORS policies (origins of each match kind, unmatchedPreflights
	// IGNORE, a redirect rule with a policy) and the DestinationRule of its subsets.
	ReviewsVSCORS = "filters/reviews-vs-cors.yaml"
	// ReviewsHTTPRouteMirror is an HTTPRoute with RequestMirror, retry and timeouts.backendRequest.
	ReviewsHTTPRouteMirror = "filters/reviews-httproute-mirror.yaml"
	// PeerAuthentication is STRICT for the default namespace, with reviews' 9080 left PERMISSIVE by a
	// workload policy.
	PeerAuthentication = "peer-authentication.yaml"
	// ReviewsDRPolicy is a DestinationRule with traffic policies (consistent hashes, a connection pool,
	// outlier detection; subset and port-level overrides), one subset per VirtualService path.
	ReviewsDRPolicy = "filters/reviews-dr-policy.yaml"
	// ReviewsJWT has RequestAuthentications (reviews through its waypoint, productpage's sidecar) and
	// AuthorizationPolicies on request principals and request.auth.* conditions.
	ReviewsJWT = "filters/reviews-jwt.yaml"
	// BookinfoGateway is Istio's bookinfo-gateway sample (a Gateway of class istio and the HTTPRoute bookinfo),
	// the gateway's pod, and an HTTPRoute on hostname details.example.com.
	BookinfoGateway = "gateway/bookinfo-gateway.yaml"
	// GreeterGRPCRoute is a gRPC Service (greeter, port grpc 9090, pods v1 and v2, on the reviews waypoint)
	// and a GRPCRoute with each kind of method match, a header match, header modifiers and a 90/10 split.
	GreeterGRPCRoute = "grpc/greeter-grpcroute.yaml"
	// EchoTCPRoute is a TCP echo Service (tcp-echo: HTTP 8080 and TCP 9000, on the reviews waypoint) with
	// backends tcp-echo-v1..v3 and a TCPRoute on port 9000 splitting 80/20/0.
	EchoTCPRoute = "tcp/echo-tcproute.yaml"
	// EchoTCPGateway is an ingress Gateway tcp-gateway (HTTP 80, TCP 9000) and a TCPRoute on its TCP
	// listener splitting 50/50 between tcp-echo-v1 and tcp-echo-v2; load it with EchoTCPRoute.
	EchoTCPGateway = "tcp/echo-gateway.yaml"
)

// Dir returns the absolute directory holding the fixture files.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata")
}

// Path returns the absolute path of a fixture file.
func Path(name string) string { return filepath.Join(Dir(), name) }

// Load reads fixture files and returns a snapshot; it fails the test on any loader error.
func Load(t testing.TB, names ...string) *model.Snapshot {
	t.Helper()
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = Path(n)
	}
	store, _, err := ingest.LoadFiles(paths...)
	if err != nil {
		t.Fatalf("LoadFiles() = %v", err)
	}
	return model.Build(store.Objects())
}

// LoadBookinfoWith loads bookinfo and more files: fixture names (relative to Dir), or paths of the test's
// own files when they start with "testdata/" or "../".
func LoadBookinfoWith(t testing.TB, files ...string) *model.Snapshot {
	t.Helper()
	paths := []string{Path(Bookinfo)}
	for _, f := range files {
		if strings.HasPrefix(f, "testdata/") || strings.HasPrefix(f, "../") {
			paths = append(paths, f)
		} else {
			paths = append(paths, Path(f))
		}
	}
	store, _, err := ingest.LoadFiles(paths...)
	if err != nil {
		t.Fatalf("LoadFiles() = %v", err)
	}
	return model.Build(store.Objects())
}

// FromYAML builds a snapshot from inline YAML documents; it fails the test on any decoding error.
func FromYAML(t testing.TB, docs ...string) *model.Snapshot {
	t.Helper()
	store := ingest.NewStore()
	for i, d := range docs {
		objs, _, err := ingest.Decode("inline", []byte(d))
		if err != nil {
			t.Fatalf("Decode(doc %d) = %v", i, err)
		}
		for _, o := range objs {
			if _, err := store.Add(o); err != nil {
				t.Fatalf("Add() = %v", err)
			}
		}
	}
	return model.Build(store.Objects())
}
