package l7

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// hashPolicy is one of a route's hash policies (route.hash_policy): what of a request a consistent-hash
// load balancer (RING_HASH, MAGLEV) hashes to pick a host, so that requests with the same value go to the
// same host.
type hashPolicy struct {
	header     string // request header name (canonical)
	cookie     string // cookie name
	cookieTTL  time.Duration
	cookiePath string
	cookieSet  bool     // ttl given: a request without the cookie gets one, as Envoy issues it
	cookieAttr []string // "name=value" (or "name") attributes of an issued cookie
	sourceIP   bool
	query      string
}

func compileHashPolicies(hps []*routev3.RouteAction_HashPolicy) ([]hashPolicy, error) {
	var out []hashPolicy
	for i, hp := range hps {
		if err := checkFields(hp, "header", "cookie", "connection_properties", "query_parameter"); err != nil {
			return nil, fmt.Errorf("hash_policy %d: %w", i, err)
		}
		var p hashPolicy
		switch s := hp.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_Header_:
			if err := checkFields(s.Header, "header_name"); err != nil {
				return nil, fmt.Errorf("hash_policy %d: header: %w", i, err)
			}
			p.header = http.CanonicalHeaderKey(s.Header.GetHeaderName())
		case *routev3.RouteAction_HashPolicy_Cookie_:
			if err := checkFields(s.Cookie, "name", "ttl", "path", "attributes"); err != nil {
				return nil, fmt.Errorf("hash_policy %d: cookie: %w", i, err)
			}
			p.cookie, p.cookiePath = s.Cookie.GetName(), s.Cookie.GetPath()
			for _, a := range s.Cookie.GetAttributes() {
				attr := a.GetName()
				if a.GetValue() != "" {
					attr += "=" + a.GetValue()
				}
				p.cookieAttr = append(p.cookieAttr, attr)
			}
			if t := s.Cookie.GetTtl(); t != nil {
				p.cookieTTL, p.cookieSet = t.AsDuration(), true
			}
		case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
			if err := checkFields(s.ConnectionProperties, "source_ip"); err != nil {
				return nil, fmt.Errorf("hash_policy %d: connection_properties: %w", i, err)
			}
			p.sourceIP = s.ConnectionProperties.GetSourceIp()
		case *routev3.RouteAction_HashPolicy_QueryParameter_:
			if err := checkFields(s.QueryParameter, "name"); err != nil {
				return nil, fmt.Errorf("hash_policy %d: query_parameter: %w", i, err)
			}
			p.query = s.QueryParameter.GetName()
		default:
			return nil, fmt.Errorf("hash_policy %d: unsupported policy %T", i, s)
		}
		out = append(out, p)
	}
	return out, nil
}

// requestHash is the hash of r under the route's policies, combined as Envoy combines several (rotate,
// then xor); ok is false when no policy found a value (the balancer then picks at random). A cookie policy
// with a ttl whose cookie is missing makes one from the client's address and returns it to be set on the
// response.
func requestHash(policies []hashPolicy, r *http.Request, d *Downstream) (hash uint64, ok bool, setCookie string) {
	for _, p := range policies {
		var v string
		found := false
		switch {
		case p.header != "":
			if vs := r.Header.Values(p.header); len(vs) > 0 {
				v, found = vs[0], true
			}
		case p.cookie != "":
			if c, err := r.Cookie(p.cookie); err == nil {
				v, found = c.Value, true
			} else if p.cookieSet {
				v, found = strconv.FormatUint(xxhash.Sum64String(d.Source.String()), 16), true
				setCookie = cookieHeader(p, v)
			}
		case p.sourceIP:
			if d.Source.IsValid() {
				v, found = d.Source.Addr().String(), true
			}
		case p.query != "":
			if q := r.URL.Query(); q.Has(p.query) {
				v, found = q.Get(p.query), true
			}
		}
		if !found {
			continue
		}
		h := xxhash.Sum64String(v)
		if ok {
			h ^= hash<<1 | hash>>63
		}
		hash, ok = h, true
	}
	return hash, ok, setCookie
}

// cookieHeader is the Set-Cookie value Envoy sends with a cookie it generated for hashing.
func cookieHeader(p hashPolicy, value string) string {
	s := p.cookie + `="` + value + `"`
	if p.cookieTTL > 0 {
		s += "; Max-Age=" + strconv.FormatInt(int64(p.cookieTTL/time.Second), 10)
	}
	if p.cookiePath != "" {
		s += "; Path=" + p.cookiePath
	}
	for _, a := range p.cookieAttr {
		s += "; " + a
	}
	return s + "; HttpOnly"
}
