package echo

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// first returns the first value of field in out the way the conformance suite's parser reads it
// (sigs.k8s.io/gateway-api/conformance/utils/echo: regexp FIELD=(.*), first match).
func first(out, field string) string {
	m := regexp.MustCompile(field + "=(.*)").FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startServer runs Serve on a free HTTP port and a free TCP port, and waits until both accept.
func startServer(t *testing.T) (httpPort, tcpPort int) {
	t.Helper()
	httpPort, tcpPort = freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServerOptions{HTTPPorts: []int{httpPort, 8443}, TLSPorts: []int{8443}, TCPPorts: []int{tcpPort}, Version: "v1", Hostname: "echo-v1-abc"})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	for _, p := range []int{httpPort, tcpPort} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("port %d never accepted: %v", p, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return httpPort, tcpPort
}

func TestClientAndServer(t *testing.T) {
	port, _ := startServer(t)
	var out bytes.Buffer
	err := RunClient(context.Background(), ClientOptions{
		URL:     "http://127.0.0.1:" + strconv.Itoa(port) + "/v2/x?animal=whale",
		Method:  "POST",
		Headers: []string{"Version:two", "X-Multi:a", "X-Multi:b", "Host:echo"},
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	o := out.String()
	for field, want := range map[string]string{
		"StatusCode":     "200",
		"ServiceVersion": "v1",
		"ServicePort":    strconv.Itoa(port),
		"URL":            "/v2/x?animal=whale",
		"Host":           "echo",
		"Method":         "POST",
		"Hostname":       "echo-v1-abc",
	} {
		if got := first(o, field); got != want {
			t.Errorf("%s = %q, want %q\n%s", field, got, want, o)
		}
	}
	if !strings.Contains(o, "] ResponseHeader=Content-Type:text/plain\n") {
		t.Errorf("no Content-Type response header:\n%s", o)
	}
	var hdrs []string
	for _, m := range regexp.MustCompile("RequestHeader=(.*)").FindAllStringSubmatch(o, -1) {
		hdrs = append(hdrs, m[1])
	}
	for _, want := range []string{"Version:two", "X-Multi:a", "X-Multi:b"} {
		if !strings.Contains(strings.Join(hdrs, "\n"), want) {
			t.Errorf("request headers %q lack %q", hdrs, want)
		}
	}
	if strings.Contains(o, "\n\n") {
		t.Errorf("one response holds a blank line:\n%s", o)
	}
}

func TestClientCountSeparatesResponses(t *testing.T) {
	port, _ := startServer(t)
	var out bytes.Buffer
	if err := RunClient(context.Background(), ClientOptions{URL: "127.0.0.1:" + strconv.Itoa(port) + "/", Count: 3}, &out); err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(strings.TrimSpace(out.String()), "\n\n")
	if len(blocks) != 3 {
		t.Fatalf("got %d blocks, want 3:\n%s", len(blocks), out.String())
	}
	for i, b := range blocks {
		if first(b, "Hostname") != "echo-v1-abc" || !strings.HasPrefix(b, "["+strconv.Itoa(i)+"] Url=") {
			t.Errorf("block %d:\n%s", i, b)
		}
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://example.org:8083/port", http.StatusMovedPermanently)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	var out bytes.Buffer
	if err := RunClient(context.Background(), ClientOptions{URL: "http://" + ln.Addr().String() + "/port"}, &out); err != nil {
		t.Fatal(err)
	}
	if got := first(out.String(), "StatusCode"); got != "301" {
		t.Errorf("StatusCode = %q, want 301:\n%s", got, out.String())
	}
	if !strings.Contains(out.String(), "ResponseHeader=Location:http://example.org:8083/port") {
		t.Errorf("no Location header:\n%s", out.String())
	}
}

func TestClientFailsWithoutResponse(t *testing.T) {
	port := freePort(t)
	var out bytes.Buffer
	err := RunClient(context.Background(), ClientOptions{URL: "http://127.0.0.1:" + strconv.Itoa(port) + "/", Timeout: time.Second}, &out)
	if err == nil {
		t.Fatalf("no error for a closed port; output:\n%s", out.String())
	}
}

func TestTCPEcho(t *testing.T) {
	_, tcpPort := startServer(t)
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(tcpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err != nil || string(buf) != "ping" {
		t.Errorf("read %q, %v; want ping", buf, err)
	}
}
