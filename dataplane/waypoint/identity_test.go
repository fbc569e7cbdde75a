package waypoint

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshlab/meshlab/dataplane/l7/l7test"
)

// TestWaypointVerifiesEndpointIdentity: the waypoint's HBONE leg to an endpoint must meet the identity the
// endpoint's metadata names (tunnel.identity). The reviews pods' HBONE servers hold valid mesh certificates
// of reviews-v1 and reviews-v2: while the endpoints name bookinfo-ratings they are impostors and the
// waypoint refuses them (503 UF, a log line with both identities); once the endpoints name reviews-v1 and
// reviews-v2, requests pass. (Refusals first: a connection already verified stays open when its
// endpoint's metadata changes, as in Envoy.)
func TestWaypointVerifiesEndpointIdentity(t *testing.T) {
	f := newFixture(t)
	c := client(t, f.ca, "default", "sleep", f.hboneURL)
	all := l7test.Service{FQDN: reviewsFQDN, VIP: "10.96.0.10", Port: 9080}.Name("")
	setIdentities := func(version string, ids map[string]string) {
		t.Helper()
		f.xds.Set(t, nodeID, version, l7test.WithIdentities(f.cfg(), ids))
		deadline := time.Now().Add(5 * time.Second)
		for {
			hosts := f.wp.Engine().Table().Clusters[all].Hosts
			if len(hosts) == 2 && hosts[0].Identity == ids[hosts[0].Address] && hosts[1].Identity == ids[hosts[1].Address] {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("config %s did not reach the waypoint", version)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	const (
		v1ID    = "spiffe://cluster.local/ns/default/sa/reviews-v1"
		v2ID    = "spiffe://cluster.local/ns/default/sa/reviews-v2"
		ratings = "spiffe://cluster.local/ns/default/sa/bookinfo-ratings"
	)

	setIdentities("impostors", map[string]string{f.v1.app: ratings, f.v2.app: ratings})
	for i := 0; i < 4; i++ {
		code, body, _ := get(t, c, "/")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "connection failure") {
			t.Fatalf("GET / to impostors = %d %q, want 503 connection failure", code, body)
		}
	}
	want := "identity verification error: peer did not present the expected SAN (" + ratings + "), got spiffe://cluster.local/ns/default/sa/reviews-v"
	if !strings.Contains(f.events.String(), want) {
		t.Errorf("waypoint log lacks %q:\n%s", want, f.events.String())
	}
	if !regexp.MustCompile(`" 503 [A-Z,]*UF `).MatchString(f.log.String()) {
		t.Errorf("access log has no UF entry:\n%s", f.log.String())
	}

	setIdentities("right", map[string]string{f.v1.app: v1ID, f.v2.app: v2ID})
	for i := 0; i < 10; i++ {
		if code, body, _ := get(t, c, "/"); code != http.StatusOK {
			t.Fatalf("GET / with the right identities = %d %q", code, body)
		}
	}
}
