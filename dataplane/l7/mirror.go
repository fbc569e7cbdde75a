package l7

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// mirrorPolicy is a compiled RouteAction.RequestMirrorPolicy: a copy of a fraction of the route's requests
// goes to cluster.
type mirrorPolicy struct {
	cluster string
	ppm     uint64 // parts per million of requests mirrored
}

func compileMirrors(ps []*routev3.RouteAction_RequestMirrorPolicy) ([]mirrorPolicy, error) {
	var out []mirrorPolicy
	for i, p := range ps {
		// trace_sampled is accepted and has no effect: the engine does not trace.
		if err := checkFields(p, "cluster", "runtime_fraction", "trace_sampled"); err != nil {
			return nil, fmt.Errorf("request_mirror_policies %d: %w", i, err)
		}
		if p.GetCluster() == "" {
			return nil, fmt.Errorf("request_mirror_policies %d: empty cluster", i)
		}
		m := mirrorPolicy{cluster: p.GetCluster(), ppm: 1_000_000}
		if rf := p.GetRuntimeFraction(); rf != nil {
			// No runtime: the default value is the fraction.
			if err := checkFields(rf, "default_value"); err != nil {
				return nil, fmt.Errorf("request_mirror_policies %d: runtime_fraction: %w", i, err)
			}
			ppm, err := perMillion(rf.GetDefaultValue())
			if err != nil {
				return nil, fmt.Errorf("request_mirror_policies %d: runtime_fraction: %w", i, err)
			}
			m.ppm = ppm
		}
		out = append(out, m)
	}
	return out, nil
}

// shadowHost is the authority of a mirrored request: Envoy appends "-shadow" to the host, before the port.
func shadowHost(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && i > strings.LastIndexByte(host, ']') {
		return host[:i] + "-shadow" + host[i:]
	}
	return host + "-shadow"
}

// mirror sends, for each of the route's mirror policies that samples this request, a copy of the upstream
// request (after the route's header changes and rewrites) to the policy's cluster, fire and forget: it
// never delays the request nor changes its answer, and the mirror's response is read and discarded. Like
// Envoy's shadows it is not retried and is bounded by the route's timeout only. A request whose body could
// not be buffered (over Options.MaxRetryBuffer) is not mirrored.
func (e *Engine) mirror(t *Table, route *Route, r *http.Request, target upstreamTarget, header http.Header, body []byte, d *Downstream) {
	for _, m := range route.mirrors {
		if !hit(m.ppm, e.opts.Rand) {
			continue
		}
		c := t.Clusters[m.cluster]
		if c == nil {
			continue
		}
		ep := c.pick(d.Destination, nil, 0, e.opts.Rand, 0, false)
		if ep == nil {
			e.metrics.upstreamRq.WithLabelValues(c.Name, "503").Inc()
			continue
		}
		out := upstreamRequest(r, shadowHost(target.host), target, header, body, ep)
		if len(body) == 0 { // only a buffered body is copied (the caller mirrors replayable requests only)
			out.Body, out.GetBody, out.ContentLength = nil, nil, 0
		}
		go e.sendShadow(e.transport(c, r), out, ep, c, route.Timeout)
	}
}

func (e *Engine) sendShadow(rt http.RoundTripper, out *http.Request, ep *Endpoint, c *Cluster, timeout time.Duration) {
	ctx := context.WithValue(context.Background(), upstreamKey{}, &upstreamCtx{ep: ep, cluster: c})
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	ep.active.Add(1)
	defer ep.active.Add(-1)
	resp, err := rt.RoundTrip(out.WithContext(ctx))
	if err != nil {
		code := "503"
		if ctx.Err() != nil {
			code = "504"
		}
		e.metrics.upstreamRq.WithLabelValues(c.Name, code).Inc()
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	e.metrics.upstreamRq.WithLabelValues(c.Name, strconv.Itoa(resp.StatusCode)).Inc()
}
