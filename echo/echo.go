// Package echo is a stand-in for Istio's echo application (the server and the client in the image the
// Gateway API conformance suite deploys, registry.k8s.io/gateway-api/echo-advanced), written from the
// protocol the suite reads (sigs.k8s.io/gateway-api/conformance/utils/echo) so that the upstream Mesh
// conformance tests can run on a lab that cannot pull that image.
//
// The server answers every HTTP request with text lines, one field a line, as Istio's echo server does:
//
//	ServiceVersion=v1
//	ServicePort=8080
//	StatusCode=200
//	URL=/path?query
//	Host=echo
//	Method=GET
//	Proto=HTTP/1.1
//	IP=10.244.0.7
//	RequestHeader=User-Agent:Go-http-client/1.1     (one line per header value)
//	Hostname=echo-v1-6d8f9c7b5-abcde
//
// The client (`client URL [--method M] [-H K:V]... [--count N]`, what the suite runs with kubectl exec)
// sends the requests without following redirects and prints, per response, Istio's forwarder lines
// ("[i] Url=", "[i] StatusCode=", "[i] ResponseHeader=K:V", then the body as "[i body] LINE"), the
// responses separated by a blank line, which is how the suite splits a --count batch.
//
// Like bookinfo, it knows nothing of the mesh it runs in.
package echo

// DefaultHTTPPort is the port the server listens on when given none (Istio's echo default).
const DefaultHTTPPort = 8080
