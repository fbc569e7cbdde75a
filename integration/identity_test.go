package integration

import (
	"strings"
	"testing"

	"github.com/meshlab/meshlab/controlplane/server/servertest"
)

// TestSidecarRefusesImpostor: b-1's endpoint, as the control plane generates it, names b-1's identity
// (shop/sa/b). A proxy holding a valid mesh certificate of shop/sa/a on b-1's address does not get a's
// request for b: a's sidecar refuses the handshake (503, a log line with both identities). The real b-1
// then serves the same request.
func TestSidecarRefusesImpostor(t *testing.T) {
	cp := servertest.Start(t, meshYAML, servertest.Options{PlainAddr: "127.0.0.1:0"})
	serveLoopbackApp(t, "b", "127.31.0.3:9080")
	a := startSidecar(t, cp, "a-1", "a", "127.31.0.2")
	impostor := startSidecar(t, cp, "b-1", "a", "127.31.0.3")

	code, body := a.call(t, "outbound", "10.96.7.7:9080", "/secret")
	if code != 503 || !strings.Contains(body, "connection failure") {
		t.Fatalf("a -> b through an impostor = %d %q, want 503 connection failure", code, body)
	}
	want := "identity verification error: peer did not present the expected SAN (spiffe://cluster.local/ns/shop/sa/b), got spiffe://cluster.local/ns/shop/sa/a"
	if !strings.Contains(a.events.String(), want) {
		t.Errorf("a's sidecar log lacks %q:\n%s", want, a.events)
	}
	if strings.Contains(impostor.log.String(), "/secret") {
		t.Errorf("the impostor received the request:\n%s", impostor.log)
	}

	impostor.sc.Close()
	startSidecar(t, cp, "b-1", "b", "127.31.0.3")
	if code, body := a.call(t, "outbound", "10.96.7.7:9080", "/secret"); code != 200 || !strings.HasPrefix(body, "b from=") {
		t.Errorf("a -> b with b's identity = %d %q, want b's answer", code, body)
	}
}
