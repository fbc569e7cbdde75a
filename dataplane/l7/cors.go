package l7

import (
	"fmt"
	"net/http"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
)

// corsPolicy is a route's envoy.filters.http.cors policy (typed_per_filter_config), executed as Envoy's CORS
// filter does: it acts only on requests with an Origin header. A preflight (OPTIONS with
// Access-Control-Request-Method) is answered by the proxy with 200 and the Access-Control-* headers;
// from an origin that is not allowed it is forwarded to the service instead when
// forward_not_matching_preflights is set (Envoy's and Istio's default). Any other request from an allowed
// origin gets Access-Control-Allow-Origin (and -Credentials, -Expose-Headers) on its response.
type corsPolicy struct {
	origins                      []*stringMatch
	allowMethods, allowHeaders   string
	exposeHeaders, maxAge        string
	allowCredentials             bool
	forwardNotMatchingPreflights bool
	enabledPPM                   uint64
}

func compileCORS(p *corsv3.CorsPolicy) (*corsPolicy, error) {
	if err := checkFields(p, "allow_origin_string_match", "allow_methods", "allow_headers", "expose_headers",
		"max_age", "allow_credentials", "filter_enabled", "forward_not_matching_preflights"); err != nil {
		return nil, err
	}
	c := &corsPolicy{
		allowMethods:                 p.GetAllowMethods(),
		allowHeaders:                 p.GetAllowHeaders(),
		exposeHeaders:                p.GetExposeHeaders(),
		maxAge:                       p.GetMaxAge(),
		allowCredentials:             p.GetAllowCredentials().GetValue(),
		forwardNotMatchingPreflights: p.GetForwardNotMatchingPreflights() == nil || p.GetForwardNotMatchingPreflights().GetValue(),
	}
	for i, o := range p.GetAllowOriginStringMatch() {
		m, err := compileString(o)
		if err != nil {
			return nil, fmt.Errorf("allow_origin_string_match %d: %w", i, err)
		}
		c.origins = append(c.origins, m)
	}
	// Without filter_enabled the policy is on for every request, as in Envoy.
	if fe := p.GetFilterEnabled(); fe != nil {
		if err := checkFields(fe, "default_value"); err != nil {
			return nil, fmt.Errorf("filter_enabled: %w", err)
		}
		ppm, err := perMillion(fe.GetDefaultValue())
		if err != nil {
			return nil, fmt.Errorf("filter_enabled: %w", err)
		}
		c.enabledPPM = ppm
	} else {
		c.enabledPPM = 1_000_000
	}
	return c, nil
}

// originAllowed reports whether an origin is allowed; a matcher that accepts "*" allows every origin.
func (c *corsPolicy) originAllowed(origin string) bool {
	for _, m := range c.origins {
		if m.match("*") || m.match(origin) {
			return true
		}
	}
	return false
}

// corsResponse is what the CORS filter adds to the response of a request it let through.
type corsResponse struct {
	origin, exposeHeaders string
	credentials           bool
}

func (a *corsResponse) apply(h http.Header) {
	h.Set("Access-Control-Allow-Origin", a.origin)
	if a.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if a.exposeHeaders != "" {
		h.Set("Access-Control-Expose-Headers", a.exposeHeaders)
	}
}

// decide runs the filter on a request. answered is true when it wrote the preflight answer itself; otherwise
// resp, when not nil, must be applied to the response the request gets.
func (c *corsPolicy) decide(w http.ResponseWriter, r *http.Request, rnd func() uint64) (answered bool, resp *corsResponse) {
	origin := r.Header.Get("Origin")
	if origin == "" || !hit(c.enabledPPM, rnd) {
		return false, nil
	}
	allowed := c.originAllowed(origin)
	if allowed {
		resp = &corsResponse{origin: origin, exposeHeaders: c.exposeHeaders, credentials: c.allowCredentials}
	}
	reqMethod := r.Header.Get("Access-Control-Request-Method")
	if r.Method != http.MethodOptions || reqMethod == "" {
		return false, resp
	}
	if !allowed && c.forwardNotMatchingPreflights {
		return false, nil
	}
	h := w.Header()
	if allowed {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if c.allowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if c.allowMethods == "*" {
		h.Set("Access-Control-Allow-Methods", reqMethod)
	} else if c.allowMethods != "" {
		h.Set("Access-Control-Allow-Methods", c.allowMethods)
	}
	if c.allowHeaders == "*" {
		h.Set("Access-Control-Allow-Headers", r.Header.Get("Access-Control-Request-Headers"))
	} else if c.allowHeaders != "" {
		h.Set("Access-Control-Allow-Headers", c.allowHeaders)
	}
	if c.maxAge != "" {
		h.Set("Access-Control-Max-Age", c.maxAge)
	}
	w.WriteHeader(http.StatusOK)
	return true, nil
}
