package l7

// The envoy.filters.http.jwt_authn filter: find a JSON Web Token in the request, verify it against a
// provider's keys (given inline: local_jwks), its issuer, audiences and lifetime, and publish its claims
// as dynamic metadata for RBAC. Requirements combine providers as Envoy's do; Istio generates
// "{provider OR allow_missing}" so that a request without a token passes and one with a bad token is
// refused with 401.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"github.com/go-jose/go-jose/v4"
)

// filterJWTAuthn is the filter's name, and the namespace of the dynamic metadata it writes.
const filterJWTAuthn = "envoy.filters.http.jwt_authn"

// Envoy's messages (jwt_verify_lib), the bodies of its 401 replies.
const (
	jwtMissing          = "Jwt is missing"
	jwtNotYetValid      = "Jwt not yet valid"
	jwtExpired          = "Jwt is expired"
	jwtBadFormat        = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
	jwtHeaderBadBase64  = "Jwt header is an invalid Base64url encoded"
	jwtHeaderBadJSON    = "Jwt header is an invalid JSON"
	jwtPayloadBadBase64 = "Jwt payload is an invalid Base64url encoded"
	jwtPayloadBadJSON   = "Jwt payload is an invalid JSON"
	jwtAlgUnsupported   = "Jwt header [alg] field value is invalid"
	jwtVerifyFails      = "Jwt verification fails"
	jwtUnknownIssuer    = "Jwt issuer is not configured"
	jwtAudienceDenied   = "Audiences in Jwt are not allowed"
	jwtNoMatchingKey    = "Jwks doesn't have key to match kid or alg from Jwt"
)

// jwtAlgorithms are the signature algorithms accepted: Envoy's asymmetric ones (HMAC needs a shared
// secret in the JWKS, which Istio's validation warns about; meshlab does not verify with one).
var jwtAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384,
	jose.PS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// defaultClockSkew is Envoy's clock_skew_seconds default.
const defaultClockSkew = 60 * time.Second

// JWTAuthn is a compiled jwt_authn filter.
type JWTAuthn struct {
	providers  map[string]*jwtProvider
	rules      []jwtRule
	bypassCORS bool
	// clearRouteCache: some provider asks for the route to be chosen again after verification.
	clearRouteCache bool
	// every lists the providers in name order: allow_missing looks for a token wherever any of them would.
	every []*jwtProvider
}

type jwtRule struct {
	match *Route // only its match part is used
	req   *jwtRequirement
}

// jwtRequirement is a compiled JwtRequirement: one provider, any or all of a list, or allow_missing.
type jwtRequirement struct {
	provider     *jwtProvider
	any, all     []*jwtRequirement
	allowMissing bool
	allowFailed  bool // allow_missing_or_failed
}

type jwtProvider struct {
	name              string
	issuer            string
	audiences         []string
	keys              jose.JSONWebKeySet
	forward           bool
	payloadHeader     string
	payloadInMetadata string
	spaceDelimited    []string
	claimHeaders      [][2]string // header, claim
	headers           []jwtHeaderLocation
	params, cookies   []string
	clockSkew         time.Duration
}

type jwtHeaderLocation struct{ name, prefix string }

func compileJWTAuthn(f *jwtv3.JwtAuthentication) (*JWTAuthn, error) {
	if err := checkFields(f, "providers", "rules", "bypass_cors_preflight"); err != nil {
		return nil, err
	}
	out := &JWTAuthn{providers: map[string]*jwtProvider{}, bypassCORS: f.GetBypassCorsPreflight()}
	names := make([]string, 0, len(f.GetProviders()))
	for name := range f.GetProviders() {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p, err := compileJWTProvider(name, f.GetProviders()[name])
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", name, err)
		}
		out.providers[name] = p
		out.every = append(out.every, p)
		out.clearRouteCache = out.clearRouteCache || f.GetProviders()[name].GetClearRouteCache()
	}
	for i, r := range f.GetRules() {
		if err := checkFields(r, "match", "requires"); err != nil {
			return nil, fmt.Errorf("rule %d: %w", i, err)
		}
		m := &Route{}
		if err := m.compileMatch(r.GetMatch()); err != nil {
			return nil, fmt.Errorf("rule %d: match: %w", i, err)
		}
		rule := jwtRule{match: m}
		if r.GetRequires() != nil {
			req, err := out.compileRequirement(r.GetRequires())
			if err != nil {
				return nil, fmt.Errorf("rule %d: requires: %w", i, err)
			}
			rule.req = req
		}
		out.rules = append(out.rules, rule)
	}
	return out, nil
}

func compileJWTProvider(name string, p *jwtv3.JwtProvider) (*jwtProvider, error) {
	if err := checkFields(p, "issuer", "audiences", "local_jwks", "remote_jwks", "forward", "from_headers", "from_params",
		"from_cookies", "forward_payload_header", "payload_in_metadata", "normalize_payload_in_metadata",
		"claim_to_headers", "clock_skew_seconds", "clear_route_cache"); err != nil {
		return nil, err
	}
	out := &jwtProvider{
		name: name, issuer: p.GetIssuer(), audiences: p.GetAudiences(), forward: p.GetForward(),
		payloadHeader: p.GetForwardPayloadHeader(), payloadInMetadata: p.GetPayloadInMetadata(),
		params: p.GetFromParams(), cookies: p.GetFromCookies(), clockSkew: defaultClockSkew,
	}
	if s := p.GetClockSkewSeconds(); s != 0 {
		out.clockSkew = time.Duration(s) * time.Second
	}
	if n := p.GetNormalizePayloadInMetadata(); n != nil {
		if err := checkFields(n, "space_delimited_claims"); err != nil {
			return nil, fmt.Errorf("normalize_payload_in_metadata: %w", err)
		}
		out.spaceDelimited = n.GetSpaceDelimitedClaims()
	}
	for _, h := range p.GetFromHeaders() {
		if err := checkFields(h, "name", "value_prefix"); err != nil {
			return nil, fmt.Errorf("from_headers: %w", err)
		}
		out.headers = append(out.headers, jwtHeaderLocation{name: h.GetName(), prefix: h.GetValuePrefix()})
	}
	for _, c := range p.GetClaimToHeaders() {
		if err := checkFields(c, "header_name", "claim_name"); err != nil {
			return nil, fmt.Errorf("claim_to_headers: %w", err)
		}
		out.claimHeaders = append(out.claimHeaders, [2]string{c.GetHeaderName(), c.GetClaimName()})
	}
	// No location configured: Envoy's defaults, the Authorization header's Bearer token and access_token.
	if len(out.headers) == 0 && len(out.params) == 0 && len(out.cookies) == 0 {
		out.headers = []jwtHeaderLocation{{name: "Authorization", prefix: "Bearer "}}
		out.params = []string{"access_token"}
	}
	local := p.GetLocalJwks()
	if local == nil {
		// remote_jwks would have the proxy fetch keys over the network, which a lab proxy cannot do.
		return nil, fmt.Errorf("only local_jwks is supported")
	}
	if err := checkFields(local, "inline_string"); err != nil {
		return nil, fmt.Errorf("local_jwks: %w", err)
	}
	keys, err := parseJWKS(local.GetInlineString())
	if err != nil {
		return nil, fmt.Errorf("local_jwks: %w", err)
	}
	out.keys = keys
	return out, nil
}

// parseJWKS reads a JSON Web Key Set, or a single key, as Envoy accepts both.
func parseJWKS(s string) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	var doc map[string]json.RawMessage
	if json.Unmarshal([]byte(s), &doc) == nil && doc["keys"] != nil {
		// A set, possibly empty: then no token verifies (what istiod sends when it cannot fetch keys).
		if err := json.Unmarshal([]byte(s), &set); err != nil {
			return set, fmt.Errorf("not a JSON Web Key Set: %w", err)
		}
		return set, nil
	}
	var k jose.JSONWebKey
	if err := json.Unmarshal([]byte(s), &k); err != nil {
		return set, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k}}, nil
}

func (f *JWTAuthn) compileRequirement(r *jwtv3.JwtRequirement) (*jwtRequirement, error) {
	switch t := r.GetRequiresType().(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		p := f.providers[t.ProviderName]
		if p == nil {
			return nil, fmt.Errorf("provider_name %q is not a provider of the filter", t.ProviderName)
		}
		return &jwtRequirement{provider: p}, nil
	case *jwtv3.JwtRequirement_RequiresAny:
		out := &jwtRequirement{}
		for i, c := range t.RequiresAny.GetRequirements() {
			cr, err := f.compileRequirement(c)
			if err != nil {
				return nil, fmt.Errorf("requires_any %d: %w", i, err)
			}
			out.any = append(out.any, cr)
		}
		return out, nil
	case *jwtv3.JwtRequirement_RequiresAll:
		out := &jwtRequirement{}
		for i, c := range t.RequiresAll.GetRequirements() {
			cr, err := f.compileRequirement(c)
			if err != nil {
				return nil, fmt.Errorf("requires_all %d: %w", i, err)
			}
			out.all = append(out.all, cr)
		}
		if out.all == nil {
			out.all = []*jwtRequirement{} // an empty AND is satisfied
		}
		return out, nil
	case *jwtv3.JwtRequirement_AllowMissing:
		return &jwtRequirement{allowMissing: true}, nil
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return &jwtRequirement{allowMissing: true, allowFailed: true}, nil
	case nil:
		return nil, fmt.Errorf("empty requirement")
	default:
		return nil, fmt.Errorf("unsupported requirement %s", oneofName(r))
	}
}

// jwtRequest is one request's progress through the filter: tokens already verified (a token is checked
// once however many requirements name its provider) and what verifying them produced.
type jwtRequest struct {
	f       *JWTAuthn
	r       *http.Request
	now     time.Time
	results map[string]*jwtResult // by provider + token
	// verified lists successful verifications in order; their effects apply if the request passes.
	verified []*jwtResult
}

type jwtResult struct {
	p        *jwtProvider
	loc      jwtFound
	err      string // an Envoy message, empty on success
	claims   map[string]any
	rawClaim string // the payload segment, base64url
}

// jwtFound is where a token was found.
type jwtFound struct {
	token  string
	header string // the header it came from, if any
}

// authenticate runs the filter on r. It returns "" when the request may continue (with metadata and
// header changes applied), else the message of the 401 reply.
func (f *JWTAuthn) authenticate(r *http.Request, now time.Time, meta map[string]map[string]any) string {
	if f == nil {
		return ""
	}
	if f.bypassCORS && r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		return ""
	}
	var req *jwtRequirement
	for _, rule := range f.rules {
		if rule.match.matches(r) {
			req = rule.req
			break
		}
	}
	if req == nil {
		return "" // no rule, or a rule without requirement: nothing is verified
	}
	jr := &jwtRequest{f: f, r: r, now: now, results: map[string]*jwtResult{}}
	if msg := jr.check(req); msg != "" {
		return msg
	}
	for _, res := range jr.verified {
		res.apply(r, meta)
	}
	return ""
}

// check evaluates a requirement: "" if satisfied, else the failure's message.
func (jr *jwtRequest) check(req *jwtRequirement) string {
	switch {
	case req.provider != nil:
		found := jr.find(req.provider)
		if len(found) == 0 {
			return jwtMissing
		}
		return jr.verify(req.provider, found[0])
	case req.any != nil:
		// Envoy reports the first failure that says more than "missing" or "not this provider's issuer"
		// (what every other provider of a multi-provider OR answers).
		failure := ""
		for _, c := range req.any {
			msg := jr.check(c)
			if msg == "" {
				return ""
			}
			if failure == "" || failure == jwtMissing || (failure == jwtUnknownIssuer && msg != jwtMissing) {
				failure = msg
			}
		}
		return failure
	case req.all != nil:
		for _, c := range req.all {
			if msg := jr.check(c); msg != "" {
				return msg
			}
		}
		return ""
	case req.allowMissing:
		// Any token found where some provider looks must verify with the provider its issuer names.
		for _, p := range jr.f.every {
			for _, loc := range jr.find(p) {
				prov := jr.f.byIssuer(loc.token, p)
				if prov == nil {
					if !req.allowFailed {
						return jwtUnknownIssuer
					}
					continue
				}
				if msg := jr.verify(prov, loc); msg != "" && !req.allowFailed {
					return msg
				}
			}
		}
		return ""
	}
	return ""
}

// byIssuer returns the provider whose issuer the token names: the one it was found for when that matches
// (or has no issuer), else any provider with that issuer.
func (f *JWTAuthn) byIssuer(token string, found *jwtProvider) *jwtProvider {
	_, claims, _ := decodeJWT(token)
	iss, _ := claims["iss"].(string)
	if found.issuer == "" || found.issuer == iss {
		return found
	}
	for _, p := range f.every {
		if p.issuer == iss {
			return p
		}
	}
	return nil
}

// find returns the tokens in the request at p's locations.
func (jr *jwtRequest) find(p *jwtProvider) []jwtFound {
	var out []jwtFound
	for _, h := range p.headers {
		for _, v := range jr.r.Header.Values(h.name) {
			if h.prefix != "" {
				i := strings.Index(v, h.prefix)
				if i < 0 {
					continue
				}
				v = v[i+len(h.prefix):]
				// The token ends where the JWT alphabet does (Envoy stops at the first other character).
				if end := strings.IndexFunc(v, func(r rune) bool { return !isJWTChar(r) }); end >= 0 {
					v = v[:end]
				}
			}
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, jwtFound{token: v, header: h.name})
			}
		}
	}
	q := jr.r.URL.Query()
	for _, name := range p.params {
		if v := q.Get(name); v != "" {
			out = append(out, jwtFound{token: v})
		}
	}
	for _, name := range p.cookies {
		if c, err := jr.r.Cookie(name); err == nil && c.Value != "" {
			out = append(out, jwtFound{token: c.Value})
		}
	}
	return out
}

func isJWTChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.=", r)
}

// verify checks one token against one provider, once per request.
func (jr *jwtRequest) verify(p *jwtProvider, loc jwtFound) string {
	key := p.name + "\x00" + loc.token
	if res, ok := jr.results[key]; ok {
		return res.err
	}
	res := &jwtResult{p: p, loc: loc}
	res.err = p.verify(loc.token, jr.now, res)
	jr.results[key] = res
	if res.err == "" {
		jr.verified = append(jr.verified, res)
	}
	return res.err
}

// decodeJWT splits a compact JWS and decodes its header and payload, with Envoy's messages on failure.
func decodeJWT(token string) (header, claims map[string]any, msg string) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, nil, jwtBadFormat
	}
	h, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	if err != nil {
		return nil, nil, jwtHeaderBadBase64
	}
	if json.Unmarshal(h, &header) != nil {
		return nil, nil, jwtHeaderBadJSON
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, nil, jwtPayloadBadBase64
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if d.Decode(&claims) != nil {
		return nil, nil, jwtPayloadBadJSON
	}
	return header, claims, ""
}

// verify checks a token in Envoy's order: format, issuer, lifetime, audiences, then the signature.
func (p *jwtProvider) verify(token string, now time.Time, res *jwtResult) string {
	header, claims, msg := decodeJWT(token)
	if msg != "" {
		return msg
	}
	if iss, _ := claims["iss"].(string); p.issuer != "" && iss != p.issuer {
		return jwtUnknownIssuer
	}
	if exp, ok := numericClaim(claims["exp"]); ok && now.After(time.Unix(exp, 0).Add(p.clockSkew)) {
		return jwtExpired
	}
	if nbf, ok := numericClaim(claims["nbf"]); ok && now.Add(p.clockSkew).Before(time.Unix(nbf, 0)) {
		return jwtNotYetValid
	}
	if len(p.audiences) > 0 && !slices.ContainsFunc(stringList(claims["aud"]), func(a string) bool {
		return slices.Contains(p.audiences, a) || slices.Contains(p.audiences, strings.TrimSuffix(a, "/"))
	}) {
		return jwtAudienceDenied
	}
	alg, _ := header["alg"].(string)
	if !slices.Contains(jwtAlgorithms, jose.SignatureAlgorithm(alg)) {
		return jwtAlgUnsupported
	}
	kid, _ := header["kid"].(string)
	var candidates []jose.JSONWebKey
	for _, k := range p.keys.Keys {
		if (kid == "" || k.KeyID == "" || k.KeyID == kid) && (k.Algorithm == "" || k.Algorithm == alg) && k.Valid() {
			candidates = append(candidates, k.Public())
		}
	}
	if len(candidates) == 0 {
		return jwtNoMatchingKey
	}
	sig, err := jose.ParseSigned(token, jwtAlgorithms)
	if err != nil {
		return jwtVerifyFails
	}
	for _, k := range candidates {
		if _, err := sig.Verify(k); err == nil {
			res.claims = p.normalize(claims)
			res.rawClaim = strings.Split(token, ".")[1]
			return ""
		}
	}
	return jwtVerifyFails
}

// normalize converts JSON numbers to float64 (as protobuf Struct holds them) and splits the
// space-delimited claims (scope, permission) into lists, as Envoy's normalize_payload_in_metadata does.
func (p *jwtProvider) normalize(claims map[string]any) map[string]any {
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		v = structValue(v)
		if s, ok := v.(string); ok && slices.Contains(p.spaceDelimited, k) {
			var list []any
			for _, f := range strings.Fields(s) {
				list = append(list, f)
			}
			v = list
		}
		out[k] = v
	}
	return out
}

func structValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = structValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = structValue(e)
		}
		return out
	}
	return v
}

func numericClaim(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	if err != nil {
		return 0, false
	}
	return int64(f), true
}

// stringList reads a claim that is a string or a list of strings (aud may be either).
func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// apply makes a verified token's effects: the payload in metadata and headers, the token removed unless
// forwarded, claims copied to headers.
func (res *jwtResult) apply(r *http.Request, meta map[string]map[string]any) {
	p := res.p
	if p.payloadInMetadata != "" {
		if meta[filterJWTAuthn] == nil {
			meta[filterJWTAuthn] = map[string]any{}
		}
		meta[filterJWTAuthn][p.payloadInMetadata] = res.claims
	}
	if p.payloadHeader != "" {
		r.Header.Set(p.payloadHeader, res.rawClaim)
	}
	if !p.forward && res.loc.header != "" {
		r.Header.Del(res.loc.header)
	}
	for _, ch := range p.claimHeaders {
		v := res.claims
		var cur any = v
		for _, seg := range strings.Split(ch[1], ".") {
			m, _ := cur.(map[string]any)
			cur = m[seg]
		}
		switch x := cur.(type) {
		case string:
			r.Header.Set(ch[0], x)
		case float64:
			r.Header.Set(ch[0], strconv.FormatFloat(x, 'f', -1, 64))
		case bool:
			r.Header.Set(ch[0], strconv.FormatBool(x))
		}
	}
}

// jwtDenied writes Envoy's 401: the message as body and a WWW-Authenticate challenge naming the URL.
func jwtDenied(w http.ResponseWriter, r *http.Request, msg string) {
	realm := (&url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path}).String()
	challenge := fmt.Sprintf("Bearer realm=%q", realm)
	if msg != jwtMissing {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	localReply(w, http.StatusUnauthorized, msg)
}
