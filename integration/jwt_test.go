package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/meshlab/meshlab/controlplane/ingest"
	"github.com/meshlab/meshlab/identity/jwttest"
)

// checkJWT applies, to the running mesh, a RequestAuthentication (jwks inline) and an ALLOW policy
// requiring a request principal, both attached to the flaky Service through the waypoint, and sends
// requests from sleep: a valid token passes, a token from the wrong issuer, an expired one or one signed
// with another key is refused by the waypoint with 401, and no token at all with 403. The objects are
// removed at the end, and flaky answers without a token again.
func (m *testbed) checkJWT(t *testing.T) {
	iss, err := jwttest.New("https://issuer.mesh.example", jose.RS256)
	if err != nil {
		t.Fatal(err)
	}
	forger, err := jwttest.New(iss.Name, jose.RS256) // same issuer name, a key the rule does not list
	if err != nil {
		t.Fatal(err)
	}
	objs, _, err := ingest.Decode("jwt.yaml", []byte(fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: flaky-jwt, namespace: mesh}
spec:
  targetRefs: [{kind: Service, group: "", name: flaky}]
  jwtRules:
  - issuer: %s
    audiences: [flaky]
    jwks: '%s'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: flaky-require-jwt, namespace: mesh}
spec:
  targetRefs: [{kind: Service, group: "", name: flaky}]
  action: ALLOW
  rules: [{from: [{source: {requestPrincipals: ["%s/*"]}}]}]
`, iss.Name, iss.JWKS(), iss.Name)))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if _, err := m.cp.Store.Update(o); err != nil {
			t.Fatal(err)
		}
	}
	removed := false
	remove := func() {
		if removed {
			return
		}
		removed = true
		for _, o := range objs {
			k, _ := ingest.KeyOf(o)
			m.cp.Store.Delete(k)
		}
	}
	defer remove()

	url := "http://" + flakyVIP + "/"
	n := 0
	get := func(token string) (int, string) {
		t.Helper()
		n++
		h := http.Header{tokenHdr: {fmt.Sprintf("jwt-%d", n)}} // a fresh token: flaky answers 503 once, the waypoint retries
		if token != "" {
			h.Set("Authorization", "Bearer "+token)
		}
		st, body, err := request(m.sleep, "GET", url, h)
		if err != nil {
			t.Fatalf("sleep -> flaky: %v", err)
		}
		return st, body
	}
	// The waypoint has the policies once a request without a token is refused.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := get("")
		if st == http.StatusForbidden {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep -> flaky without a token still %d after 10s: the waypoint did not get the policies\nsync: %+v", st, m.cp.XDS.SyncStatus())
		}
		time.Sleep(100 * time.Millisecond)
	}
	valid := iss.Token(map[string]any{"sub": "alice", "aud": "flaky"})
	for _, c := range []struct {
		name   string
		token  string
		status int
		body   string
	}{
		{"valid token", valid, 200, "flaky attempt="},
		{"no token", "", 403, "RBAC: access denied"},
		{"wrong issuer", iss.Token(map[string]any{"iss": "https://elsewhere.example", "sub": "alice", "aud": "flaky"}), 401, "Jwt issuer is not configured"},
		{"expired", iss.Token(map[string]any{"sub": "alice", "aud": "flaky", "exp": time.Now().Add(-time.Hour).Unix()}), 401, "Jwt is expired"},
		{"wrong audience", iss.Token(map[string]any{"sub": "alice", "aud": "web"}), 401, "Audiences in Jwt are not allowed"},
		{"signed with another key", forger.Token(map[string]any{"sub": "alice", "aud": "flaky"}), 401, "Jwks doesn't have key to match kid or alg from Jwt"},
		{"bad signature", valid[:strings.LastIndex(valid, ".")+1] + "AAAA" + valid[strings.LastIndex(valid, ".")+5:], 401, "Jwt verification fails"},
	} {
		from := m.wp.out.len()
		st, body := get(c.token)
		if st != c.status || !strings.HasPrefix(body, c.body) {
			t.Errorf("%s: sleep -> flaky = %d %q, want %d %q", c.name, st, body, c.status, c.body)
		}
		if line, ok := m.wp.out.waitLine(from, fmt.Sprintf(`"GET / HTTP/1.1" %d`, c.status)); !ok {
			t.Errorf("%s: the waypoint logged no %d:\n%s", c.name, c.status, m.wp.out.String()[from:])
		} else {
			t.Logf("%s: %s", c.name, line)
		}
	}

	remove()
	deadline = time.Now().Add(10 * time.Second)
	for {
		st, _ := get("")
		if st == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep -> flaky without a token still %d 10s after the policies were removed", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
