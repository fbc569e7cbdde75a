package explain

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// tree writes an indented tree: each hop a heading, its facts below.
type tree struct {
	b strings.Builder
}

func (t *tree) line(depth int, format string, args ...any) {
	t.b.WriteString(strings.Repeat("   ", depth))
	fmt.Fprintf(&t.b, format, args...)
	t.b.WriteByte('\n')
}

// WriteText prints the report as a readable tree, hop by hop.
func (r *Report) WriteText(w io.Writer) error {
	t := &tree{}
	t.line(0, "%s %s from %s", r.Request.Method, r.Request.URL, r.Request.From)
	keys := make([]string, 0, len(r.Request.Headers))
	for k := range r.Request.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.line(1, "header %s: %s", k, strings.Join(r.Request.Headers[k], ", "))
	}

	s := r.Source
	t.line(0, "")
	t.line(0, "source  %s  %s on %s", s.Pod, s.IP, s.Node)
	if s.Identity != "" {
		t.line(1, "identity  %s", s.Identity)
	} else {
		t.line(1, "identity  none (outside the mesh)")
	}
	t.line(1, "captured  %s: %s", s.Capture, s.Why)

	d := r.Destination
	t.line(0, "")
	dest := "destination  " + d.Host + " -> " + d.Address
	if d.Service != "" {
		dest += "  (VIP of Service " + d.Service + ")"
	} else if d.Pod != "" {
		dest += "  (pod " + d.Pod + ")"
	}
	t.line(0, "%s", dest)

	if z := r.Ztunnel; z != nil {
		t.line(0, "")
		t.line(0, "%s  outbound", z.Proxy)
		if z.Service != "" {
			t.line(1, "service   %s", z.Service)
		}
		if z.Waypoint != "" {
			t.line(1, "waypoint  %s: %s", z.Waypoint, z.WaypointWhy)
		} else if z.WaypointWhy != "" {
			t.line(1, "waypoint  none: %s", z.WaypointWhy)
		}
		switch {
		case z.Error != "":
			t.line(1, "error     %s", z.Error)
		case z.HBONE:
			t.line(1, "HBONE     CONNECT %s via %s, expecting %s", z.Target, z.Via, z.ExpectedIdentity)
		default:
			t.line(1, "plaintext to %s", z.Via)
		}
	}

	if p := r.Proxy; p != nil {
		t.line(0, "")
		t.line(0, "%s  (%s)", p.Proxy, p.Identity)
		t.line(1, "entry         %s", p.Entry)
		t.line(1, "listener      %s", p.Listener)
		if p.FilterChain != "" {
			kind := "HTTP"
			if p.TCP {
				kind = "TCP"
			}
			t.line(1, "filter chain  %s  (%s; selected by %s)", p.FilterChain, kind, strings.Join(p.ChainMatch, " -> "))
		} else if len(p.ChainMatch) > 0 {
			t.line(1, "filter chain  none  (%s)", strings.Join(p.ChainMatch, " -> "))
		}
		if p.RouteConfig != "" {
			t.line(1, "route config  %s", p.RouteConfig)
		}
		if p.VirtualHost != "" {
			t.line(1, "virtual host  %s", p.VirtualHost)
		}
		for _, rc := range p.Routes {
			if rc.Matched {
				t.line(2, "match     route %s  [%s]", rc.Name, rc.Match)
			} else {
				t.line(2, "no match  route %s  [%s]: %s", rc.Name, rc.Match, rc.Why)
			}
		}
		if rt := p.Route; rt != nil {
			src := "generated default route (no VirtualService or HTTPRoute)"
			if rt.Source != "" {
				src = rt.Source
				if rt.Rule != "" {
					src += " " + rt.Rule
				}
			}
			t.line(1, "route         %s  from %s", rt.Name, src)
			if rt.Timeout != "" {
				t.line(2, "timeout  %s", rt.Timeout)
			}
			if rt.Retries != "" {
				t.line(2, "retries  %s", rt.Retries)
			}
		}
		if len(p.Authorization) == 0 && !p.TCP && p.FilterChain != "" {
			t.line(1, "authz (L7)    no AuthorizationPolicy applies (no RBAC filter)")
		}
		for _, a := range p.Authorization {
			verdict := "allows"
			if !a.Allowed {
				verdict = "DENIES"
			}
			pol := a.Policy
			switch {
			case pol == "":
				pol = "no policy matched"
			case a.Source != "":
				pol = a.Source + "  (" + a.Policy + ")"
			}
			t.line(1, "authz (L7)    %s filter %s: %s", a.Action, verdict, pol)
		}
		if p.Fault != "" {
			t.line(1, "fault         %s", p.Fault)
		}
	}

	if len(r.Backends) > 0 {
		t.line(0, "")
		t.line(0, "backends")
	}
	for _, b := range r.Backends {
		head := fmt.Sprintf("%.4g%%  %s", b.Probability*100, b.Cluster)
		if b.Weight != 0 {
			head += fmt.Sprintf("  (weight %d)", b.Weight)
		}
		if b.Subset != "" {
			head += "  subset " + b.Subset
			if len(b.SubsetLabels) > 0 {
				head += " " + labels(b.SubsetLabels)
			}
		}
		if b.Missing {
			head += "  MISSING: the proxy has no such cluster"
		}
		t.line(1, "%s", head)
		if len(b.Endpoints) == 0 && !b.Missing {
			t.line(2, "no endpoints")
		}
		for _, ep := range b.Endpoints {
			where := ep.Address
			if ep.Pod != "" {
				where += "  " + ep.Pod + " on " + ep.Node
			}
			if !ep.Healthy {
				where += "  UNHEALTHY"
			}
			t.line(2, "%s  (%s)", where, ep.Tunnel)
			if in := ep.Inbound; in != nil {
				verdict := "allowed"
				if !in.Allowed {
					verdict = "DENIED"
				}
				who := in.Proxy
				if who == "" {
					who = "destination"
				}
				layer := ""
				if in.Layer != "" {
					layer = " " + in.Layer
				}
				rule := ""
				if in.Rule != "" {
					rule = " " + in.Rule
				}
				peer := ""
				if in.Peer != "" {
					peer = " for " + in.Peer
				}
				t.line(3, "%s inbound%s: %s%s: %s%s", who, layer, verdict, peer, in.Reason, rule)
			}
		}
	}

	t.line(0, "")
	status := ""
	if r.Result.Status != 0 {
		status = fmt.Sprintf(" %d", r.Result.Status)
	}
	t.line(0, "result  %s%s: %s", r.Result.Outcome, status, r.Result.Summary)
	for _, n := range r.Notes {
		t.line(0, "note    %s", n)
	}
	if len(r.ConfigFrom) > 0 {
		t.line(0, "")
		t.line(0, "config read from")
		for _, c := range r.ConfigFrom {
			t.line(1, "%s", c)
		}
	}
	_, err := io.WriteString(w, t.b.String())
	return err
}

func labels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return "{" + strings.Join(parts, ",") + "}"
}
