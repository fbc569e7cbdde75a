package configgen

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/meshlab/meshlab/controlplane/model"
)

// rbacFilters turns AuthorizationPolicies into Envoy RBAC HTTP filters: one DENY filter then one ALLOW filter,
// which is how Istio orders evaluation (any DENY match denies; with ALLOW policies present, a request must
// match one of them). No policies, no filters.
func rbacFilters(policies []*model.AuthorizationPolicy) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	for _, action := range []string{model.ActionDeny, model.ActionAllow} {
		rules := &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_ALLOW, Policies: map[string]*rbacconfigv3.Policy{}}
		if action == model.ActionDeny {
			rules.Action = rbacconfigv3.RBAC_DENY
		}
		any := false
		for _, p := range policies {
			if p.Action != action {
				continue
			}
			any = true
			for i, r := range p.Rules {
				if pol := rbacPolicy(r, action); pol != nil {
					rules.Policies[fmt.Sprintf("ns[%s]-policy[%s]-rule[%d]", p.Namespace, p.Name, i)] = pol
				}
			}
		}
		// An ALLOW policy without rules allows nothing; an empty ALLOW filter still denies everything.
		if any {
			out = append(out, httpFilter(nameRBAC, &rbacv3.RBAC{Rules: rules}))
		}
	}
	return out
}

// rbacPolicy converts one Istio rule: (any from, each AND the conditions) AND (any to). Conditions on the
// request's JWT (request.auth.*) become metadata principals over what jwt_authn verified. Other conditions
// cannot be evaluated here (validation.Coverage rejects them), so a rule that has one fails closed: it
// never allows, and as a DENY rule it denies without its conditions.
func rbacPolicy(r *securityv1beta1.Rule, action string) *rbacconfigv3.Policy {
	conditions, ok := conditionPrincipals(r.When)
	if !ok {
		if action == model.ActionAllow {
			return nil
		}
		conditions = nil
	}
	pol := &rbacconfigv3.Policy{}
	for _, f := range r.From {
		if f.Source != nil {
			pol.Principals = append(pol.Principals, andPrincipals(append(sourcePrincipals(f.Source), conditions...)))
		}
	}
	if len(pol.Principals) == 0 {
		pol.Principals = []*rbacconfigv3.Principal{andPrincipals(conditions)}
	}
	for _, t := range r.To {
		if t.Operation != nil {
			pol.Permissions = append(pol.Permissions, operationPermission(t.Operation))
		}
	}
	if len(pol.Permissions) == 0 {
		pol.Permissions = []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_Any{Any: true}}}
	}
	return pol
}

// andPrincipals is all of ids: any principal when there are none, the one itself when there is one.
func andPrincipals(ids []*rbacconfigv3.Principal) *rbacconfigv3.Principal {
	switch len(ids) {
	case 0:
		return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Any{Any: true}}
	case 1:
		return ids[0]
	}
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_AndIds{AndIds: &rbacconfigv3.Principal_Set{Ids: ids}}}
}

// principalMatcher matches an Istio principal ("cluster.local/ns/x/sa/y", with * globs) against the peer's
// SPIFFE URI.
func principalMatcher(v string) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://"}}
	case strings.HasPrefix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v[1:]}}
	case strings.HasSuffix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + v[:len(v)-1]}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://" + v}}
}

func authenticated(m *matcherv3.StringMatcher) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Authenticated_{Authenticated: &rbacconfigv3.Principal_Authenticated{PrincipalName: m}}}
}

func orIDs(ids []*rbacconfigv3.Principal) *rbacconfigv3.Principal {
	if len(ids) == 1 {
		return ids[0]
	}
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_OrIds{OrIds: &rbacconfigv3.Principal_Set{Ids: ids}}}
}

func notID(p *rbacconfigv3.Principal) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_NotId{NotId: p}}
}

func cidr(v string) *corev3.CidrRange {
	ip, n, err := net.ParseCIDR(v)
	if err != nil {
		ip = net.ParseIP(v)
		bits := 32
		if ip != nil && ip.To4() == nil {
			bits = 128
		}
		return &corev3.CidrRange{AddressPrefix: v, PrefixLen: wrapperspb.UInt32(uint32(bits))}
	}
	ones, _ := n.Mask.Size()
	return &corev3.CidrRange{AddressPrefix: ip.String(), PrefixLen: wrapperspb.UInt32(uint32(ones))}
}

func principalSet(values []string, conv func(string) *rbacconfigv3.Principal) *rbacconfigv3.Principal {
	var ids []*rbacconfigv3.Principal
	for _, v := range values {
		ids = append(ids, conv(v))
	}
	return orIDs(ids)
}

// sourcePrincipals are the principals a source's fields require, all of which must match.
func sourcePrincipals(s *securityv1beta1.Source) []*rbacconfigv3.Principal {
	var and []*rbacconfigv3.Principal
	add := func(values []string, negate bool, conv func(string) *rbacconfigv3.Principal) {
		if len(values) == 0 {
			return
		}
		p := principalSet(values, conv)
		if negate {
			p = notID(p)
		}
		and = append(and, p)
	}
	principal := func(v string) *rbacconfigv3.Principal { return authenticated(principalMatcher(v)) }
	namespace := func(v string) *rbacconfigv3.Principal {
		return authenticated(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{
			Regex: `.*/ns/` + regexpQuote(v) + `/.*`,
		}}})
	}
	serviceAccount := func(v string) *rbacconfigv3.Principal {
		ns, sa, _ := strings.Cut(v, "/")
		return authenticated(principalMatcher(model.TrustDomain + "/ns/" + ns + "/sa/" + sa))
	}
	directIP := func(v string) *rbacconfigv3.Principal {
		return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_DirectRemoteIp{DirectRemoteIp: cidr(v)}}
	}
	remoteIP := func(v string) *rbacconfigv3.Principal {
		return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_RemoteIp{RemoteIp: cidr(v)}}
	}
	add(s.Principals, false, principal)
	add(s.NotPrincipals, true, principal)
	if len(s.RequestPrincipals) > 0 {
		and = append(and, requestPrincipal(s.RequestPrincipals))
	}
	if len(s.NotRequestPrincipals) > 0 {
		and = append(and, notID(requestPrincipal(s.NotRequestPrincipals)))
	}
	add(s.Namespaces, false, namespace)
	add(s.NotNamespaces, true, namespace)
	add(s.ServiceAccounts, false, serviceAccount)
	add(s.NotServiceAccounts, true, serviceAccount)
	add(s.IpBlocks, false, directIP)
	add(s.NotIpBlocks, true, directIP)
	add(s.RemoteIpBlocks, false, remoteIP)
	add(s.NotRemoteIpBlocks, true, remoteIP)
	return and
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// globMatcher turns an Istio value with a leading or trailing * into a prefix, suffix or exact match.
func globMatcher(v string) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".*"}}}
	case strings.HasSuffix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v[:len(v)-1]}}
	case strings.HasPrefix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v[1:]}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func operationPermission(o *securityv1beta1.Operation) *rbacconfigv3.Permission {
	var and []*rbacconfigv3.Permission
	add := func(values []string, negate bool, conv func(string) *rbacconfigv3.Permission) {
		if len(values) == 0 {
			return
		}
		values = append([]string(nil), values...)
		sort.Strings(values)
		var rules []*rbacconfigv3.Permission
		for _, v := range values {
			rules = append(rules, conv(v))
		}
		p := rules[0]
		if len(rules) > 1 {
			p = &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_OrRules{OrRules: &rbacconfigv3.Permission_Set{Rules: rules}}}
		}
		if negate {
			p = &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_NotRule{NotRule: p}}
		}
		and = append(and, p)
	}
	header := func(name string) func(string) *rbacconfigv3.Permission {
		return func(v string) *rbacconfigv3.Permission {
			return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Header{Header: &routev3.HeaderMatcher{
				Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: globMatcher(v)},
			}}}
		}
	}
	path := func(v string) *rbacconfigv3.Permission {
		return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
			Rule: &matcherv3.PathMatcher_Path{Path: globMatcher(v)},
		}}}
	}
	port := func(v string) *rbacconfigv3.Permission {
		n, _ := strconv.ParseUint(v, 10, 32)
		return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_DestinationPort{DestinationPort: uint32(n)}}
	}
	add(o.Methods, false, header(":method"))
	add(o.NotMethods, true, header(":method"))
	add(o.Paths, false, path)
	add(o.NotPaths, true, path)
	add(o.Hosts, false, header(":authority"))
	add(o.NotHosts, true, header(":authority"))
	add(o.Ports, false, port)
	add(o.NotPorts, true, port)
	if len(and) == 0 {
		return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Any{Any: true}}
	}
	if len(and) == 1 {
		return and[0]
	}
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_AndRules{AndRules: &rbacconfigv3.Permission_Set{Rules: and}}}
}
