package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// checkIngressGateway opens productpage from the host as Istio's getting-started does: `kubectl
// port-forward svc/bookinfo-gateway-istio 8080:80` (on a free port here), then GET /productpage through
// the gateway; and, with istioctl, reads the gateway pod's routes.
func checkIngressGateway(t *testing.T, ctx context.Context) {
	kc := kubectl(t)
	wait := exec.CommandContext(ctx, kc, "--context", "kind-"+clusterName, "wait", "--for=condition=Programmed",
		"--timeout=120s", "gateway/bookinfo-gateway")
	if out, err := wait.CombinedOutput(); err != nil {
		t.Fatalf("kubectl wait gateway programmed: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	pfCtx, stop := context.WithCancel(ctx)
	pf := exec.CommandContext(pfCtx, kc, "--context", "kind-"+clusterName, "port-forward", "svc/bookinfo-gateway-istio", port+":80")
	stdout, err := pf.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	pf.Stderr = os.Stderr
	if err := pf.Start(); err != nil {
		t.Fatalf("kubectl port-forward: %v", err)
	}
	defer func() {
		stop() // ends kubectl port-forward; only then can Wait return
		pf.Wait()
	}()
	// kubectl prints "Forwarding from 127.0.0.1:PORT -> 80" once it listens.
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Forwarding from") {
				ready <- true
				break
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("kubectl port-forward did not start within 30s")
	}

	hc := &http.Client{Timeout: 10 * time.Second}
	var code int
	var page string
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := hc.Get("http://127.0.0.1:" + port + "/productpage")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code, page = resp.StatusCode, string(b)
			if code == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /productpage through the gateway: %d %v\n%s", code, err, lastLines(page, 10))
		}
		time.Sleep(time.Second)
	}
	if !strings.Contains(page, "<title>Simple Bookstore App</title>") || !strings.Contains(page, "The Comedy of Errors") {
		t.Errorf("the page through the gateway is not productpage's:\n%s", lastLines(page, 20))
	}
	// A path the HTTPRoute does not route is the gateway's 404, not productpage's.
	if resp, err := hc.Get("http://127.0.0.1:" + port + "/health"); err != nil || resp.StatusCode != 404 {
		t.Errorf("GET /health through the gateway = %v %v, want 404 (not in HTTPRoute bookinfo)", resp, err)
	} else {
		resp.Body.Close()
	}

	if os.Getenv("MESHLAB_ISTIOCTL") == "" {
		t.Log("MESHLAB_ISTIOCTL is not set: not reading the gateway's routes with istioctl")
		return
	}
	routes := mustIstioctl(t, ctx, "proxy-config", "routes", "deploy/bookinfo-gateway-istio")
	if !hasRow(routes, "http.80", `\*:80`, `\*`, "/productpage", `\S+`) {
		t.Errorf("istioctl proxy-config routes on the gateway has no http.80 row for /productpage:\n%s", routes)
	}
}
