package l7

import (
	"fmt"
	"net/http"
	"net/netip"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// RBAC is a compiled RBAC HTTP filter: with action ALLOW a request must match a policy, with DENY it must
// match none.
type RBAC struct {
	Deny     bool
	policies []rbacPolicy
}

type rbacPolicy struct {
	name        string
	principals  []predicate
	permissions []predicate
}

// predicate is a compiled principal or permission: a test of one request.
type predicate func(*requestInfo) bool

// requestInfo is what RBAC evaluates.
type requestInfo struct {
	r    *http.Request
	down *Downstream
	// meta is the request's dynamic metadata by filter name (what jwt_authn verified).
	meta map[string]map[string]any
}

func compileRBAC(f *rbacv3.RBAC) (*RBAC, error) {
	if err := checkFields(f, "rules"); err != nil {
		return nil, err
	}
	rules := f.GetRules()
	out := &RBAC{}
	if rules == nil {
		return out, nil // no rules: the filter is a no-op, as in Envoy
	}
	if err := checkFields(rules, "action", "policies"); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	switch rules.GetAction() {
	case rbacconfigv3.RBAC_ALLOW:
	case rbacconfigv3.RBAC_DENY:
		out.Deny = true
	default:
		return nil, fmt.Errorf("rules.action: unsupported action %s", rules.GetAction())
	}
	names := make([]string, 0, len(rules.GetPolicies()))
	for name := range rules.GetPolicies() {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := rules.GetPolicies()[name]
		if err := checkFields(p, "principals", "permissions"); err != nil {
			return nil, fmt.Errorf("policy %s: %w", name, err)
		}
		principals, err := compileEach(p.GetPrincipals(), compilePrincipal)
		if err != nil {
			return nil, fmt.Errorf("policy %s: principals %w", name, err)
		}
		permissions, err := compileEach(p.GetPermissions(), compilePermission)
		if err != nil {
			return nil, fmt.Errorf("policy %s: permissions %w", name, err)
		}
		out.policies = append(out.policies, rbacPolicy{name: name, principals: principals, permissions: permissions})
	}
	return out, nil
}

// allowed evaluates the filter; policy names the matching policy, if any.
func (f *RBAC) allowed(ri *requestInfo) (ok bool, policy string) {
	if f == nil {
		return true, ""
	}
	for _, p := range f.policies {
		if anyOf(p.principals, ri) && anyOf(p.permissions, ri) {
			return !f.Deny, p.name
		}
	}
	// No policy matched: DENY lets the request through, ALLOW refuses it.
	return f.Deny, ""
}

// anyOf reports whether one of ps matches (Envoy's or_ids, or_rules, and a policy's lists).
func anyOf(ps []predicate, ri *requestInfo) bool {
	for _, p := range ps {
		if p(ri) {
			return true
		}
	}
	return false
}

// allOf reports whether every one of ps matches (Envoy's and_ids, and_rules).
func allOf(ps []predicate, ri *requestInfo) bool {
	for _, p := range ps {
		if !p(ri) {
			return false
		}
	}
	return true
}

// compileEach compiles a list of principals or permissions; an error names the failing index.
func compileEach[T any](items []T, compile func(T) (predicate, error)) ([]predicate, error) {
	var out []predicate
	for i, it := range items {
		c, err := compile(it)
		if err != nil {
			return nil, fmt.Errorf("%d: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func compilePrincipal(p *rbacconfigv3.Principal) (predicate, error) {
	switch id := p.GetIdentifier().(type) {
	case *rbacconfigv3.Principal_Any:
		return func(*requestInfo) bool { return true }, nil
	case *rbacconfigv3.Principal_Authenticated_:
		if err := checkFields(id.Authenticated, "principal_name"); err != nil {
			return nil, fmt.Errorf("authenticated: %w", err)
		}
		if id.Authenticated.GetPrincipalName() == nil {
			// No name: any authenticated peer.
			return func(ri *requestInfo) bool { return ri.down.Peer != "" }, nil
		}
		m, err := compileString(id.Authenticated.GetPrincipalName())
		if err != nil {
			return nil, fmt.Errorf("authenticated.principal_name: %w", err)
		}
		return func(ri *requestInfo) bool { return ri.down.Peer != "" && m.match(ri.down.Peer) }, nil
	case *rbacconfigv3.Principal_OrIds:
		set, err := compileEach(id.OrIds.GetIds(), compilePrincipal)
		if err != nil {
			return nil, fmt.Errorf("or_ids: %w", err)
		}
		return func(ri *requestInfo) bool { return anyOf(set, ri) }, nil
	case *rbacconfigv3.Principal_AndIds:
		set, err := compileEach(id.AndIds.GetIds(), compilePrincipal)
		if err != nil {
			return nil, fmt.Errorf("and_ids: %w", err)
		}
		return func(ri *requestInfo) bool { return allOf(set, ri) }, nil
	case *rbacconfigv3.Principal_NotId:
		inner, err := compilePrincipal(id.NotId)
		if err != nil {
			return nil, fmt.Errorf("not_id: %w", err)
		}
		return func(ri *requestInfo) bool { return !inner(ri) }, nil
	case *rbacconfigv3.Principal_DirectRemoteIp:
		pfx, err := cidrPrefix(id.DirectRemoteIp)
		if err != nil {
			return nil, fmt.Errorf("direct_remote_ip: %w", err)
		}
		return func(ri *requestInfo) bool { return pfx.Contains(ri.down.Source.Addr()) }, nil
	case *rbacconfigv3.Principal_RemoteIp:
		pfx, err := cidrPrefix(id.RemoteIp)
		if err != nil {
			return nil, fmt.Errorf("remote_ip: %w", err)
		}
		return func(ri *requestInfo) bool { return pfx.Contains(ri.down.Source.Addr()) }, nil
	case *rbacconfigv3.Principal_SourceIp:
		pfx, err := cidrPrefix(id.SourceIp)
		if err != nil {
			return nil, fmt.Errorf("source_ip: %w", err)
		}
		return func(ri *requestInfo) bool { return pfx.Contains(ri.down.Source.Addr()) }, nil
	case *rbacconfigv3.Principal_Header:
		hm, err := compileHeader(id.Header)
		if err != nil {
			return nil, fmt.Errorf("header: %w", err)
		}
		return func(ri *requestInfo) bool { return hm.match(ri.r) }, nil
	case *rbacconfigv3.Principal_Metadata:
		m, err := compileMetadata(id.Metadata)
		if err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
		return m, nil
	case nil:
		return nil, fmt.Errorf("empty principal")
	default:
		return nil, fmt.Errorf("unsupported principal %s", oneofName(p))
	}
}

func compilePermission(p *rbacconfigv3.Permission) (predicate, error) {
	switch r := p.GetRule().(type) {
	case *rbacconfigv3.Permission_Any:
		return func(*requestInfo) bool { return true }, nil
	case *rbacconfigv3.Permission_Header:
		hm, err := compileHeader(r.Header)
		if err != nil {
			return nil, fmt.Errorf("header: %w", err)
		}
		return func(ri *requestInfo) bool { return hm.match(ri.r) }, nil
	case *rbacconfigv3.Permission_UrlPath:
		if err := checkFields(r.UrlPath, "path"); err != nil {
			return nil, fmt.Errorf("url_path: %w", err)
		}
		m, err := compileString(r.UrlPath.GetPath())
		if err != nil {
			return nil, fmt.Errorf("url_path.path: %w", err)
		}
		// url_path is the path without the query string.
		return func(ri *requestInfo) bool { return m.match(ri.r.URL.Path) }, nil
	case *rbacconfigv3.Permission_DestinationPort:
		port := uint16(r.DestinationPort)
		return func(ri *requestInfo) bool { return ri.down.Destination.Port() == port }, nil
	case *rbacconfigv3.Permission_DestinationPortRange:
		lo, hi := r.DestinationPortRange.GetStart(), r.DestinationPortRange.GetEnd()
		return func(ri *requestInfo) bool {
			p := int32(ri.down.Destination.Port())
			return p >= lo && p < hi
		}, nil
	case *rbacconfigv3.Permission_DestinationIp:
		pfx, err := cidrPrefix(r.DestinationIp)
		if err != nil {
			return nil, fmt.Errorf("destination_ip: %w", err)
		}
		return func(ri *requestInfo) bool { return pfx.Contains(ri.down.Destination.Addr()) }, nil
	case *rbacconfigv3.Permission_AndRules:
		set, err := compileEach(r.AndRules.GetRules(), compilePermission)
		if err != nil {
			return nil, fmt.Errorf("and_rules: %w", err)
		}
		return func(ri *requestInfo) bool { return allOf(set, ri) }, nil
	case *rbacconfigv3.Permission_OrRules:
		set, err := compileEach(r.OrRules.GetRules(), compilePermission)
		if err != nil {
			return nil, fmt.Errorf("or_rules: %w", err)
		}
		return func(ri *requestInfo) bool { return anyOf(set, ri) }, nil
	case *rbacconfigv3.Permission_NotRule:
		inner, err := compilePermission(r.NotRule)
		if err != nil {
			return nil, fmt.Errorf("not_rule: %w", err)
		}
		return func(ri *requestInfo) bool { return !inner(ri) }, nil
	case nil:
		return nil, fmt.Errorf("empty permission")
	default:
		return nil, fmt.Errorf("unsupported permission %s", oneofName(p))
	}
}

func cidrPrefix(c *corev3.CidrRange) (netip.Prefix, error) {
	a, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("address %q: %w", c.GetAddressPrefix(), err)
	}
	bits := a.BitLen()
	if c.GetPrefixLen() != nil {
		bits = int(c.GetPrefixLen().GetValue())
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("prefix %s/%d: %w", a, bits, err)
	}
	return p, nil
}

// oneofName names the populated field of a message's only oneof, for error messages.
func oneofName(m proto.Message) string {
	var name string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		name = string(fd.Name())
		return false
	})
	return name
}
