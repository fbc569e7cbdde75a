package fidelity

import (
	"fmt"
	"sort"
	"strings"

	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// summarizeHTTPFilter adds what a user compares of the security filters: jwt_authn's providers (name,
// issuer, audiences, token locations, outputs, key source) and requirement, RBAC's action and each
// policy's principals and permissions, as compact expressions.
func summarizeHTTPFilter(f Facts, ck string, hf *hcmv3.HttpFilter) {
	tc := hf.GetTypedConfig()
	if tc == nil {
		return
	}
	msg, err := tc.UnmarshalNew()
	if err != nil {
		return
	}
	switch c := msg.(type) {
	case *jwtv3.JwtAuthentication:
		for name, p := range c.Providers {
			k := fmt.Sprintf("%s: jwt_provider[%s]", ck, name)
			f.add("%s issuer=%s audiences=%s", k, p.Issuer, strings.Join(p.Audiences, ","))
			var from []string
			for _, h := range p.FromHeaders {
				from = append(from, "header:"+h.Name+":"+h.ValuePrefix)
			}
			for _, q := range p.FromParams {
				from = append(from, "param:"+q)
			}
			for _, c := range p.FromCookies {
				from = append(from, "cookie:"+c)
			}
			f.add("%s from=%s", k, strings.Join(from, ","))
			f.add("%s forward=%t payload_header=%s payload_in_metadata=%s clear_route_cache=%t", k, p.Forward, p.ForwardPayloadHeader, p.PayloadInMetadata, p.ClearRouteCache)
			for _, ch := range p.ClaimToHeaders {
				f.add("%s claim_to_header=%s:%s", k, ch.ClaimName, ch.HeaderName)
			}
			f.add("%s space_delimited=%s", k, strings.Join(p.GetNormalizePayloadInMetadata().GetSpaceDelimitedClaims(), ","))
			switch {
			case p.GetLocalJwks() != nil:
				f.add("%s jwks=local", k)
			case p.GetRemoteJwks() != nil:
				f.add("%s jwks=remote", k)
			}
		}
		for i, r := range c.Rules {
			f.add("%s: jwt_rule[%d] match=%s requires=%s", ck, i, routeMatch(r.Match), jwtRequirement(r.GetRequires()))
		}
		f.add("%s: jwt bypass_cors_preflight=%t", ck, c.BypassCorsPreflight)
	case *rbacv3.RBAC:
		rules := c.GetRules()
		if rules == nil {
			return
		}
		names := make([]string, 0, len(rules.Policies))
		for name := range rules.Policies {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			p := rules.Policies[name]
			k := fmt.Sprintf("%s: rbac[%s] %s", ck, rules.Action, name)
			for i, pr := range p.Principals {
				f.add("%s principal[%d]=%s", k, i, rbacPrincipal(pr))
			}
			for i, pm := range p.Permissions {
				f.add("%s permission[%d]=%s", k, i, rbacPermission(pm))
			}
		}
	}
}

func jwtRequirement(r *jwtv3.JwtRequirement) string {
	switch t := r.GetRequiresType().(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		return t.ProviderName
	case *jwtv3.JwtRequirement_AllowMissing:
		return "allow_missing"
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return "allow_missing_or_failed"
	case *jwtv3.JwtRequirement_RequiresAny:
		return opList("any", t.RequiresAny.Requirements, jwtRequirement)
	case *jwtv3.JwtRequirement_RequiresAll:
		return opList("all", t.RequiresAll.Requirements, jwtRequirement)
	}
	return "?"
}

// opList writes a combinator and its operands, each written by f: op(a,b,...).
func opList[T any](op string, xs []T, f func(T) string) string {
	parts := make([]string, 0, len(xs))
	for _, x := range xs {
		parts = append(parts, f(x))
	}
	return op + "(" + strings.Join(parts, ",") + ")"
}

func rbacPrincipal(p *rbacconfigv3.Principal) string {
	switch id := p.GetIdentifier().(type) {
	case *rbacconfigv3.Principal_Any:
		return "any"
	case *rbacconfigv3.Principal_AndIds:
		return opList("and", id.AndIds.Ids, rbacPrincipal)
	case *rbacconfigv3.Principal_OrIds:
		return opList("or", id.OrIds.Ids, rbacPrincipal)
	case *rbacconfigv3.Principal_NotId:
		return "not(" + rbacPrincipal(id.NotId) + ")"
	case *rbacconfigv3.Principal_Authenticated_:
		return "authenticated:" + stringMatch(id.Authenticated.PrincipalName)
	case *rbacconfigv3.Principal_Metadata:
		return "metadata:" + metadataMatch(id.Metadata)
	case *rbacconfigv3.Principal_Header:
		return "header:" + id.Header.Name + headerMatch(id.Header)
	case *rbacconfigv3.Principal_DirectRemoteIp:
		return fmt.Sprintf("direct_remote_ip:%s/%d", id.DirectRemoteIp.AddressPrefix, id.DirectRemoteIp.GetPrefixLen().GetValue())
	case *rbacconfigv3.Principal_RemoteIp:
		return fmt.Sprintf("remote_ip:%s/%d", id.RemoteIp.AddressPrefix, id.RemoteIp.GetPrefixLen().GetValue())
	case *rbacconfigv3.Principal_FilterState:
		return "filter_state:" + id.FilterState.Key
	}
	return fmt.Sprintf("%T", p.GetIdentifier())
}

func rbacPermission(p *rbacconfigv3.Permission) string {
	switch r := p.GetRule().(type) {
	case *rbacconfigv3.Permission_Any:
		return "any"
	case *rbacconfigv3.Permission_AndRules:
		return opList("and", r.AndRules.Rules, rbacPermission)
	case *rbacconfigv3.Permission_OrRules:
		return opList("or", r.OrRules.Rules, rbacPermission)
	case *rbacconfigv3.Permission_NotRule:
		return "not(" + rbacPermission(r.NotRule) + ")"
	case *rbacconfigv3.Permission_Header:
		return "header:" + r.Header.Name + headerMatch(r.Header)
	case *rbacconfigv3.Permission_UrlPath:
		return "url_path:" + stringMatch(r.UrlPath.GetPath())
	case *rbacconfigv3.Permission_DestinationPort:
		return fmt.Sprintf("destination_port:%d", r.DestinationPort)
	}
	return fmt.Sprintf("%T", p.GetRule())
}

func metadataMatch(m *matcherv3.MetadataMatcher) string {
	var path []string
	for _, s := range m.Path {
		path = append(path, s.GetKey())
	}
	inv := ""
	if m.Invert {
		inv = "!"
	}
	return m.Filter + "[" + strings.Join(path, ".") + "]" + inv + "=" + valueMatch(m.Value)
}

func valueMatch(v *matcherv3.ValueMatcher) string {
	switch p := v.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_StringMatch:
		return stringMatch(p.StringMatch)
	case *matcherv3.ValueMatcher_ListMatch:
		return "list_one_of(" + valueMatch(p.ListMatch.GetOneOf()) + ")"
	case *matcherv3.ValueMatcher_OrMatch:
		var parts []string
		for _, c := range p.OrMatch.ValueMatchers {
			parts = append(parts, valueMatch(c))
		}
		return "or(" + strings.Join(parts, ",") + ")"
	case *matcherv3.ValueMatcher_PresentMatch:
		return fmt.Sprintf("present:%t", p.PresentMatch)
	case *matcherv3.ValueMatcher_BoolMatch:
		return fmt.Sprintf("bool:%t", p.BoolMatch)
	}
	return fmt.Sprintf("%T", v.GetMatchPattern())
}
