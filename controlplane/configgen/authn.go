package configgen

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/emptypb"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/meshlab/meshlab/controlplane/model"
)

// jwtPayloadKey is where jwt_authn puts a verified token's claims in dynamic metadata, under the filter's
// name; the RBAC principals for request principals and claims read them there.
const jwtPayloadKey = "payload"

// noKeys is the key set of a rule without inline jwks: meshlab cannot fetch jwksUri or the issuer's
// discovery document, so, as istiod does when its fetch fails, the rule gets keys that verify nothing.
const noKeys = `{"keys":[]}`

// jwtFilter turns RequestAuthentications into the envoy.filters.http.jwt_authn filter as istiod generates
// it: one provider per JWT rule, rules sorted by issuer and named origins-0, origins-1...; the requirement
// is that a token, where a provider looks for one, is valid for some provider, and none at all is allowed.
// clearRouteCache is set for waypoints (istiod sets it for every proxy but sidecars). No rules, no filter.
func jwtFilter(policies []*model.RequestAuthentication, clearRouteCache bool) *hcmv3.HttpFilter {
	var rules []*securityv1beta1.JWTRule
	for _, p := range policies {
		rules = append(rules, p.Rules...)
	}
	if len(rules) == 0 {
		return nil
	}
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].GetIssuer() < rules[j].GetIssuer() })
	cfg := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}, BypassCorsPreflight: true}
	var eachOptional, anyProvider []*jwtv3.JwtRequirement
	for i, r := range rules {
		name := fmt.Sprintf("origins-%d", i)
		cfg.Providers[name] = jwtProvider(r, clearRouteCache)
		byName := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}}
		eachOptional = append(eachOptional, requiresAny(byName,
			&jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}}))
		anyProvider = append(anyProvider, byName)
	}
	// One provider: its token or none. Several: a token valid for one of them (providers may share a
	// location, where the others would fail it), or every provider's token valid or missing.
	req := eachOptional[0]
	if len(rules) > 1 {
		req = requiresAny(append(anyProvider, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{
			RequiresAll: &jwtv3.JwtRequirementAndList{Requirements: eachOptional}}})...)
	}
	cfg.Rules = []*jwtv3.RequirementRule{{
		Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: req},
	}}
	return httpFilter(nameJWTAuthn, cfg)
}

func requiresAny(reqs ...*jwtv3.JwtRequirement) *jwtv3.JwtRequirement {
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: reqs}}}
}

func jwtProvider(r *securityv1beta1.JWTRule, clearRouteCache bool) *jwtv3.JwtProvider {
	p := &jwtv3.JwtProvider{
		Issuer:               r.Issuer,
		Audiences:            r.Audiences,
		Forward:              r.ForwardOriginalToken,
		ForwardPayloadHeader: r.OutputPayloadToHeader,
		PayloadInMetadata:    jwtPayloadKey,
		NormalizePayloadInMetadata: &jwtv3.JwtProvider_NormalizePayload{
			SpaceDelimitedClaims: spaceDelimitedClaims(r.SpaceDelimitedClaims),
		},
		ClearRouteCache: clearRouteCache,
		FromParams:      r.FromParams,
		FromCookies:     r.FromCookies,
	}
	for _, c := range r.OutputClaimToHeaders {
		p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: c.Header, ClaimName: c.Claim})
	}
	for _, h := range r.FromHeaders {
		p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.Name, ValuePrefix: h.Prefix})
	}
	keys := r.Jwks
	if keys == "" {
		keys = noKeys
	}
	p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
		Specifier: &corev3.DataSource_InlineString{InlineString: keys}}}
	return p
}

// spaceDelimitedClaims are the claims whose string value is split into a list in the metadata: scope and
// permission always, plus the rule's own, sorted (as istiod lists them).
func spaceDelimitedClaims(extra []string) []string {
	out := []string{"permission", "scope"}
	if extra == nil {
		return out
	}
	for _, c := range extra {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// Request principals and JWT conditions in RBAC: metadata matchers over the payload jwt_authn verified.

// jwtClaimMatcher matches claim (a path into the payload) against value.
func jwtClaimMatcher(path []string, value *matcherv3.ValueMatcher) *rbacconfigv3.Principal {
	segs := []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: jwtPayloadKey}}}
	for _, k := range path {
		segs = append(segs, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}})
	}
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
		Filter: nameJWTAuthn, Path: segs, Value: value,
	}}}
}

func stringValue(m *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}}
}

// anyOfValues matches one of the values (Istio's * globs: "*" any non-empty, "x*" prefix, "*x" suffix).
func anyOfValues(values []string) *matcherv3.ValueMatcher {
	var ms []*matcherv3.ValueMatcher
	for _, v := range values {
		ms = append(ms, stringValue(claimValueMatcher(v)))
	}
	if len(ms) == 1 {
		return ms[0]
	}
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{ValueMatchers: ms}}}
}

// listOrValue matches a claim that is either a list containing a match or itself a match (aud, scope,
// groups may be either).
func listOrValue(v *matcherv3.ValueMatcher) *matcherv3.ValueMatcher {
	list := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
		MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: v}}}}
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{ValueMatchers: []*matcherv3.ValueMatcher{list, v}}}}
}

func claimValueMatcher(v string) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return anyNonEmpty()
	case strings.HasPrefix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v[1:]}}
	case strings.HasSuffix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v[:len(v)-1]}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func anyNonEmpty() *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".+"}}}
}

// requestPrincipal matches any of Istio's request principals, "<iss>/<sub>" with * globs: the issuer and
// subject claims, split at the last / (issuers are often URLs).
func requestPrincipal(values []string) *rbacconfigv3.Principal {
	var or []*rbacconfigv3.Principal
	for _, v := range values {
		i := strings.LastIndex(v, "/")
		iss, sub, split := v, "", i >= 0
		if split {
			iss, sub = v[:i], v[i+1:]
		}
		exact := func(s string) *matcherv3.StringMatcher {
			return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
		}
		var mIss, mSub *matcherv3.StringMatcher
		switch {
		case v == "*":
			mIss, mSub = anyNonEmpty(), anyNonEmpty()
		case strings.HasPrefix(v, "*") && split:
			mIss, mSub = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: strings.TrimPrefix(iss, "*")}}, exact(sub)
			if iss == "*" {
				mIss = anyNonEmpty()
			}
		case strings.HasPrefix(v, "*"):
			mIss, mSub = anyNonEmpty(), &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v[1:]}}
		case strings.HasSuffix(v, "*") && split:
			mIss, mSub = exact(iss), &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: strings.TrimSuffix(sub, "*")}}
			if sub == "*" {
				mSub = anyNonEmpty()
			}
		case strings.HasSuffix(v, "*"):
			mIss, mSub = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v[:len(v)-1]}}, anyNonEmpty()
		default:
			mIss, mSub = exact(iss), exact(sub)
		}
		or = append(or, &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_AndIds{AndIds: &rbacconfigv3.Principal_Set{Ids: []*rbacconfigv3.Principal{
			jwtClaimMatcher([]string{"iss"}, stringValue(mIss)), jwtClaimMatcher([]string{"sub"}, stringValue(mSub)),
		}}}})
	}
	return orIDs(or)
}

// conditionPrincipals turns a rule's request.auth.* conditions into principals, all of which must match
// (notValues negated). ok is false when a condition has another key, which meshlab does not evaluate.
func conditionPrincipals(when []*securityv1beta1.Condition) (ids []*rbacconfigv3.Principal, ok bool) {
	for _, c := range when {
		var build func(values []string) *rbacconfigv3.Principal
		switch {
		case c.Key == "request.auth.principal":
			build = requestPrincipal
		case c.Key == "request.auth.audiences":
			build = func(vs []string) *rbacconfigv3.Principal {
				return jwtClaimMatcher([]string{"aud"}, listOrValue(anyOfValues(vs)))
			}
		case c.Key == "request.auth.presenter":
			build = func(vs []string) *rbacconfigv3.Principal {
				return jwtClaimMatcher([]string{"azp"}, listOrValue(anyOfValues(vs)))
			}
		case strings.HasPrefix(c.Key, "request.auth.claims["):
			path := claimPath(strings.TrimPrefix(c.Key, "request.auth.claims"))
			if path == nil {
				return nil, false
			}
			build = func(vs []string) *rbacconfigv3.Principal { return jwtClaimMatcher(path, listOrValue(anyOfValues(vs))) }
		default:
			return nil, false
		}
		if len(c.Values) > 0 {
			ids = append(ids, build(c.Values))
		}
		if len(c.NotValues) > 0 {
			ids = append(ids, notID(build(c.NotValues)))
		}
	}
	return ids, true
}

// claimPath reads "[name]" or, for a nested claim, "[a][b]" into its names; nil if malformed.
func claimPath(s string) []string {
	var out []string
	for s != "" {
		if !strings.HasPrefix(s, "[") {
			return nil
		}
		end := strings.Index(s, "]")
		if end <= 1 {
			return nil
		}
		out = append(out, s[1:end])
		s = s[end+1:]
	}
	return out
}
