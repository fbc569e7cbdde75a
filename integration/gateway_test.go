package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshlab/meshlab/controlplane/server/servertest"
	"github.com/meshlab/meshlab/dataplane/gateway"
	"github.com/meshlab/meshlab/dataplane/l7xds"
)

// gatewayYAML is meshYAML's mesh with an ingress gateway: Gateway shop-gateway (class istio, port 80), its
// pod, and HTTPRoutes sending /b to the injected pod b (over HBONE, to b's sidecar) and host
// plain.example to the pod outside the mesh (in plain text), as Istio's gateway would.
const gatewayYAML = meshYAML + `---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: shop-gateway, namespace: shop}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: shop}
spec:
  parentRefs: [{name: shop-gateway}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /b}}]
    backendRefs: [{name: b, port: 9080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: plain-by-host, namespace: shop}
spec:
  parentRefs: [{name: shop-gateway, sectionName: http}]
  hostnames: [plain.example]
  rules:
  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-via, value: shop-gateway}]}}]
    backendRefs: [{name: plain, port: 9080}]
---
apiVersion: v1
kind: Pod
metadata:
  name: shop-gateway-istio-1
  namespace: shop
  labels: {gateway.networking.k8s.io/gateway-name: shop-gateway, istio.io/dataplane-mode: none}
spec: {serviceAccountName: shop-gateway-istio, nodeName: node, containers: [{name: istio-proxy, image: meshlab}]}
status: {phase: Running, podIP: 127.31.0.20, conditions: [{type: Ready, status: "True"}]}
`

// TestIngressGatewayRoutesByHTTPRoute runs the control plane and an ingress gateway (dataplane/gateway, as
// `meshlab proxy router` does, with Istio's router node ID): the gateway opens the listener it is sent
// and routes each request by the generated http.80 to its backend.
func TestIngressGatewayRoutesByHTTPRoute(t *testing.T) {
	cp := servertest.Start(t, gatewayYAML, servertest.Options{PlainAddr: "127.0.0.1:0"})
	serveLoopbackApp(t, "b", "127.31.0.3:9080")
	plainHeaders := make(chan http.Header, 4)
	startHeaderApp(t, "127.31.0.4:9080", plainHeaders)
	startSidecar(t, cp, "b-1", "b", "127.31.0.3") // terminates the gateway's HBONE for b

	id, _ := cp.CA.WorkloadID("shop", "shop-gateway-istio")
	svid, err := cp.CA.Issue(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuf{}
	gw, err := gateway.New(gateway.Options{
		RouterOptions: l7xds.RouterOptions{
			XDSAddress: cp.PlainAddr, Namespace: "shop", Name: "shop-gateway", Pod: "shop-gateway-istio-1", IPs: []string{"127.31.0.20"},
			SVID: svid, Bundle: cp.CA.Bundle(),
			AdminAddress: "127.0.0.1:0", HealthAddress: "off",
			AccessLog: log, Logf: t.Logf,
		},
		ListenAddress: func(netip.AddrPort) string { return "127.31.0.20:0" },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for !gw.Ready() || gw.Addr("0.0.0.0_80") == nil {
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready: %v", gw.XDS().Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	addr := gw.Addr("0.0.0.0_80").String()
	get := func(host, path string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Host = host
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("a path of the HTTPRoute reaches the injected pod over HBONE", func(t *testing.T) {
		code, body := get("shop.example:8080", "/b/items")
		if code != 200 || !strings.HasPrefix(body, "b from=127.0.0.6:") || !strings.Contains(body, "path=/b/items") {
			t.Fatalf("got %d %q, want b's answer", code, body)
		}
		for _, want := range []string{"upstream_cluster=outbound|9080||b.shop.svc.cluster.local",
			"upstream_host=envoy://connect_originate/127.31.0.3:9080", "destination_identity=spiffe://cluster.local/ns/shop/sa/b"} {
			if !strings.Contains(log.String(), want) {
				t.Errorf("the gateway's access log lacks %s:\n%s", want, log)
			}
		}
	})
	t.Run("a path no route matches is 404", func(t *testing.T) {
		if code, body := get("shop.example", "/nothing"); code != 404 {
			t.Errorf("got %d %q, want 404", code, body)
		}
	})
	t.Run("the hostname's virtual host reaches the pod outside the mesh in plain text, with the filter", func(t *testing.T) {
		code, body := get("plain.example", "/anything")
		if code != 200 || body != "ok" {
			t.Fatalf("got %d %q", code, body)
		}
		h := <-plainHeaders
		if h.Get("X-Via") != "shop-gateway" || h.Get("X-Request-Id") == "" {
			t.Errorf("plain saw headers %v, want x-via: shop-gateway and a request id", h)
		}
		if !strings.Contains(log.String(), "upstream_host=127.31.0.4:9080") {
			t.Errorf("the gateway's access log lacks the plain endpoint:\n%s", log)
		}
	})
	t.Run("the control plane knows the gateway by Istio's router node ID", func(t *testing.T) {
		st := cp.XDS.SyncStatus()
		found := false
		for _, p := range st.Proxies {
			if strings.HasPrefix(p.ID, "router~127.31.0.20~shop-gateway-istio-1.shop~") && p.Kind == "gateway" {
				found = true
			}
		}
		if !found {
			t.Errorf("no router proxy for the gateway in %+v", st.Proxies)
		}
	})
}

// startHeaderApp answers "ok" and hands each request's headers to seen.
func startHeaderApp(t *testing.T, addr string, seen chan<- http.Header) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- r.Header.Clone():
		default:
		}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}
