package echo

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPeerIdentity(t *testing.T) {
	for xfcc, want := range map[string]string{
		"": "",
		"By=spiffe://cluster.local/ns/apps/sa/echo;Hash=abc;Subject=\"\";URI=spiffe://cluster.local/ns/default/sa/sleep": "spiffe://cluster.local/ns/default/sa/sleep",
		// APPEND_FORWARD: the last element is the nearest proxy's.
		"URI=spiffe://cluster.local/ns/a/sa/first,By=x;URI=spiffe://cluster.local/ns/b/sa/second": "spiffe://cluster.local/ns/b/sa/second",
		// Quoted values may hold separators.
		`Subject="CN=a,O=b;c";uri="spiffe://td/ns/q/sa/quoted"`: "spiffe://td/ns/q/sa/quoted",
		"Hash=abc;DNS=echo.apps":                                "",
	} {
		if got := PeerIdentity(xfcc); got != want {
			t.Errorf("PeerIdentity(%q) = %q, want %q", xfcc, got, want)
		}
	}
}

// meshlab's own fields come after Hostname, so that the conformance suite's first-match parsing of the
// fields it knows never lands in them.
func TestLinesCarryNamespaceAndPeerIdentityLast(t *testing.T) {
	r := httptest.NewRequest("GET", "http://echo:8080/x", nil)
	r.Header.Set("X-Forwarded-Client-Cert", "By=spiffe://td/ns/apps/sa/echo;URI=spiffe://td/ns/default/sa/sleep")
	out := Lines(r, 8080, Instance{Version: "v2", Hostname: "echo-v2-abc", Namespace: "apps"})
	if !strings.HasSuffix(out, "Hostname=echo-v2-abc\nNamespace=apps\nPeerIdentity=spiffe://td/ns/default/sa/sleep\n") {
		t.Errorf("lines end wrong:\n%s", out)
	}
	if first(out, "ServiceVersion") != "v2" {
		t.Errorf("ServiceVersion = %q:\n%s", first(out, "ServiceVersion"), out)
	}
}
