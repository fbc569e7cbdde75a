package l7

import (
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/meshlab/meshlab/dataplane/l7/l7test"
	"github.com/meshlab/meshlab/identity/jwttest"
)

// istioJWTFilter is the jwt_authn filter in the shape istiod generates for RequestAuthentications: one
// provider per rule named origins-N, and the requirement "each provider's token, if present, is valid".
func istioJWTFilter(providers ...*jwtv3.JwtProvider) *hcmv3.HttpFilter {
	f := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}, BypassCorsPreflight: true}
	var inner, outer []*jwtv3.JwtRequirement
	for i, p := range providers {
		name := "origins-" + string(rune('0'+i))
		f.Providers[name] = p
		byName := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}}
		inner = append(inner, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{
			Requirements: []*jwtv3.JwtRequirement{byName, {RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}}},
		}}})
		outer = append(outer, byName)
	}
	req := inner[0]
	if len(inner) > 1 {
		req = &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{
			Requirements: append(outer, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{RequiresAll: &jwtv3.JwtRequirementAndList{Requirements: inner}}}),
		}}}
	}
	f.Rules = []*jwtv3.RequirementRule{{
		Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: req},
	}}
	return l7test.HTTPFilter("envoy.filters.http.jwt_authn", f)
}

func provider(iss *jwttest.Issuer, audiences ...string) *jwtv3.JwtProvider {
	return &jwtv3.JwtProvider{
		Issuer: iss.Name, Audiences: audiences, PayloadInMetadata: "payload",
		JwksSourceSpecifier:        &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: iss.JWKS()}}},
		NormalizePayloadInMetadata: &jwtv3.JwtProvider_NormalizePayload{SpaceDelimitedClaims: []string{"permission", "scope"}},
	}
}

// claimPrincipal is the RBAC principal istiod generates for request.auth.claims[name] / requestPrincipals:
// a metadata matcher on the jwt_authn payload that accepts a string claim or a list containing the value.
func claimPrincipal(claim, value string) *rbacconfigv3.Principal {
	exact := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: value}}}}
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
		Filter: "envoy.filters.http.jwt_authn",
		Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "payload"}}, {Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: claim}}},
		Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{ValueMatchers: []*matcherv3.ValueMatcher{
			{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: exact}}}}, exact,
		}}}},
	}}}
}

func andIDs(ids ...*rbacconfigv3.Principal) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_AndIds{AndIds: &rbacconfigv3.Principal_Set{Ids: ids}}}
}

// TestEngineJWT runs the jwt_authn filter and RBAC on request principals over real sockets: a valid
// token passes (and reaches RBAC as iss/sub and claims), a present but invalid one is refused with
// Envoy's 401 and message, a missing one passes jwt_authn and is refused by an ALLOW policy.
func TestEngineJWT(t *testing.T) {
	rsaIss, err := jwttest.New("https://issuer.example.com", jose.RS256)
	if err != nil {
		t.Fatal(err)
	}
	ecIss, err := jwttest.New("ec-issuer", jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := jwttest.New("https://issuer.example.com", jose.RS256) // same name, other key
	if err != nil {
		t.Fatal(err)
	}
	var seenAuth, seenGroup string
	backend := echoServer(t, "a", func(w http.ResponseWriter, r *http.Request) bool {
		seenAuth, seenGroup = r.Header.Get("Authorization"), r.Header.Get("X-Group")
		return false
	})
	svc := l7test.Service{FQDN: "reviews.default.svc.cluster.local", VIP: "10.96.0.10", Port: 9080}
	rsaProvider := provider(rsaIss, "reviews")
	rsaProvider.ClaimToHeaders = []*jwtv3.JwtClaimToHeader{{HeaderName: "x-group", ClaimName: "group"}}
	svc.Filters = []*hcmv3.HttpFilter{
		istioJWTFilter(rsaProvider, provider(ecIss)),
		l7test.RBACFilter("ALLOW", map[string]*rbacconfigv3.Policy{
			// requestPrincipals: ["https://issuer.example.com/alice"]
			"ns[default]-policy[require-jwt]-rule[0]": l7test.Policy([]*rbacconfigv3.Principal{
				andIDs(claimPrincipal("iss", rsaIss.Name), claimPrincipal("sub", "alice"))}),
			// requestPrincipals: ["ec-issuer/*"] with when request.auth.claims[scope]: ["write"]
			"ns[default]-policy[require-jwt]-rule[1]": l7test.Policy([]*rbacconfigv3.Principal{
				andIDs(claimPrincipal("iss", ecIss.Name), claimPrincipal("scope", "write"))}),
		}),
	}
	cfg := Config(l7test.Waypoint([]l7test.Service{svc}, nil, map[string][]string{svc.Name(""): {backend}}, nil))
	f := newEngineFixture(t, cfg, netip.MustParseAddrPort("10.96.0.10:9080"))

	get := func(target string, header http.Header) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+f.addr+target, nil)
		req.Host = "reviews:9080"
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	hour := time.Hour
	for _, tt := range []struct {
		name   string
		header http.Header
		target string
		code   int
		body   string
	}{
		{"valid RS256 token, allowed principal", bearer(rsaIss.Token(map[string]any{"sub": "alice", "aud": "reviews", "group": "dev"})), "/", 200, "a / "},
		{"valid token in access_token", nil, "/?access_token=" + rsaIss.Token(map[string]any{"sub": "alice", "aud": []string{"x", "reviews"}}), 200, "a / "},
		{"valid ES256 token with the scope", bearer(ecIss.Token(map[string]any{"sub": "bob", "scope": "read write"})), "/", 200, "a / "},
		{"valid token, principal not allowed", bearer(rsaIss.Token(map[string]any{"sub": "mallory", "aud": "reviews"})), "/", 403, bodyRBACDenied},
		{"valid ES256 token without the scope", bearer(ecIss.Token(map[string]any{"sub": "bob", "scope": "read"})), "/", 403, bodyRBACDenied},
		{"no token", nil, "/", 403, bodyRBACDenied},
		{"expired", bearer(rsaIss.Token(map[string]any{"sub": "alice", "aud": "reviews", "exp": time.Now().Add(-2 * hour).Unix()})), "/", 401, jwtExpired},
		{"not yet valid", bearer(rsaIss.Token(map[string]any{"sub": "alice", "aud": "reviews", "nbf": time.Now().Add(hour).Unix()})), "/", 401, jwtNotYetValid},
		{"wrong audience", bearer(rsaIss.Token(map[string]any{"sub": "alice", "aud": "ratings"})), "/", 401, jwtAudienceDenied},
		{"unknown issuer", bearer(rsaIss.Token(map[string]any{"iss": "https://evil.example.com", "sub": "alice", "aud": "reviews"})), "/", 401, jwtUnknownIssuer},
		{"bad signature", bearer(stranger.Token(map[string]any{"sub": "alice", "aud": "reviews"})), "/", 401, jwtNoMatchingKey},
		{"tampered payload", bearer(tamper(rsaIss.Token(map[string]any{"sub": "mallory", "aud": "reviews"}), rsaIss.Token(map[string]any{"sub": "alice", "aud": "reviews"}))), "/", 401, jwtVerifyFails},
		{"not a JWT", bearer("deadbeef"), "/", 401, jwtBadFormat},
	} {
		seenAuth, seenGroup = "", ""
		code, body, hdr := get(tt.target, tt.header)
		if code != tt.code || !strings.HasPrefix(body, tt.body) {
			t.Errorf("%s: got %d %q, want %d %q", tt.name, code, body, tt.code, tt.body)
		}
		if code == 401 && hdr.Get("Www-Authenticate") != `Bearer realm="http://reviews:9080/", error="invalid_token"` {
			t.Errorf("%s: WWW-Authenticate = %q", tt.name, hdr.Get("Www-Authenticate"))
		}
		if code == 200 && seenAuth != "" {
			t.Errorf("%s: the backend saw the token (%q); forward is false, so it must be removed", tt.name, seenAuth)
		}
		if tt.name == "valid RS256 token, allowed principal" && seenGroup != "dev" {
			t.Errorf("%s: x-group = %q, want the group claim copied (claim_to_headers)", tt.name, seenGroup)
		}
	}
	if !strings.Contains(f.log.String(), `"GET / HTTP/1.1" 401`) {
		t.Errorf("access log lacks the 401s:\n%s", f.log.String())
	}
}

// tamper keeps a's header and signature with b's payload: a well-formed token whose signature is wrong.
func tamper(a, b string) string {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	return pa[0] + "." + pb[1] + "." + pa[2]
}

// TestJWTRequirements: Envoy's requirement combinators, decided on tokens' presence and validity.
func TestJWTRequirements(t *testing.T) {
	iss, err := jwttest.New("iss-a", jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	p := provider(iss)
	p.FromHeaders = []*jwtv3.JwtHeader{{Name: "x-jwt"}}
	p.Forward = true
	p.ForwardPayloadHeader = "x-payload"
	byName := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "a"}}
	orFailed := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissingOrFailed{AllowMissingOrFailed: &emptypb.Empty{}}}
	good, expired := iss.Token(map[string]any{"sub": "s"}), iss.Token(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	for _, tt := range []struct {
		name  string
		req   *jwtv3.JwtRequirement
		token string
		want  string
	}{
		{"provider, token", byName, good, ""},
		{"provider, no token", byName, "", jwtMissing},
		{"provider, expired", byName, expired, jwtExpired},
		{"allow_missing_or_failed, expired", orFailed, expired, ""},
		{"allow_missing_or_failed, none", orFailed, "", ""},
	} {
		f, err := compileJWTAuthn(&jwtv3.JwtAuthentication{
			Providers: map[string]*jwtv3.JwtProvider{"a": p},
			Rules: []*jwtv3.RequirementRule{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				RequirementType: &jwtv3.RequirementRule_Requires{Requires: tt.req}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := http.NewRequest("GET", "http://x/", nil)
		if tt.token != "" {
			r.Header.Set("x-jwt", tt.token)
		}
		meta := map[string]map[string]any{}
		if got := f.authenticate(r, time.Now(), meta); got != tt.want {
			t.Errorf("%s: authenticate = %q, want %q", tt.name, got, tt.want)
		}
		if tt.want == "" && tt.token == good {
			if r.Header.Get("x-jwt") != good || r.Header.Get("x-payload") != strings.Split(good, ".")[1] {
				t.Errorf("%s: forward/forward_payload_header not applied: %v", tt.name, r.Header)
			}
			if sub := meta["envoy.filters.http.jwt_authn"]["payload"].(map[string]any)["sub"]; sub != "s" {
				t.Errorf("%s: payload sub = %v", tt.name, sub)
			}
		}
	}
	// remote_jwks cannot be fetched from a lab proxy: refused rather than failing every token.
	remote := provider(iss)
	remote.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{}}
	if _, err := compileJWTAuthn(&jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"a": remote}}); err == nil || !strings.Contains(err.Error(), "only local_jwks") {
		t.Errorf("remote_jwks: err = %v, want only local_jwks is supported", err)
	}
}
