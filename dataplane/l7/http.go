package l7

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"
)

// Envoy's local replies.
const (
	bodyRBACDenied    = "RBAC: access denied"
	bodyFaultAbort    = "fault filter abort"
	bodyNoHealthy     = "no healthy upstream"
	bodyTimeout       = "upstream request timeout"
	bodyConnectFailed = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	bodyReset         = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
	bodyOverflow      = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
)

// reqLog is what the access log records about one request.
type reqLog struct {
	start        time.Time
	r            *http.Request
	d            *Downstream
	status       int
	flags        []string
	route        string
	cluster      string
	upstreamHost string
	upstreamPeer string
	attempts     int
	bytesSent    int64
}

func (l *reqLog) flag(f string) { l.flags = append(l.flags, f) }

// upstreamCtx travels in the request context to the transport's dialer.
type upstreamCtx struct {
	ep      *Endpoint
	cluster *Cluster
}

type upstreamKey struct{}

// dialError marks a failure to open the upstream connection (connect-failure for retries).
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func (e *Engine) dialHTTP(ctx context.Context, _, addr string) (net.Conn, error) {
	u, _ := ctx.Value(upstreamKey{}).(*upstreamCtx)
	if u == nil {
		return nil, &dialError{fmt.Errorf("no endpoint for %s", addr)}
	}
	dctx, cancel := context.WithTimeout(ctx, u.cluster.ConnectTimeout)
	defer cancel()
	c, err := e.opts.Dial(dctx, u.ep)
	if err != nil {
		e.metrics.upstreamCxFail.WithLabelValues(u.cluster.Name).Inc()
		e.opts.Logf("cluster %s: dialling %s: %v", u.cluster.Name, u.ep, err)
		return nil, &dialError{err}
	}
	e.metrics.upstreamCx.WithLabelValues(u.cluster.Name).Inc()
	return c, nil
}

func (e *Engine) serveHTTP(w http.ResponseWriter, r *http.Request) {
	dc, _ := r.Context().Value(downstreamKey{}).(*downstreamConn)
	if dc == nil {
		http.Error(w, "no downstream", http.StatusInternalServerError)
		return
	}
	d := &dc.d
	lw := &countingWriter{ResponseWriter: w}
	rl := &reqLog{start: time.Now(), r: r, d: d}
	t := e.Table()
	chain := t.Chain(d.Listener, d.Destination)
	prefix := ""
	defer func() {
		rl.status = lw.status
		rl.bytesSent = lw.n
		e.logRequest(rl)
		e.metrics.downstreamRq.WithLabelValues(prefix, strconv.Itoa(rl.status/100)+"xx").Inc()
	}()
	if chain == nil || chain.HTTP == nil {
		// The listener changed under a kept-alive connection and no longer sends it to HTTP.
		rl.flag("NR")
		localReply(lw, http.StatusServiceUnavailable, "no filter chain")
		return
	}
	h := chain.HTTP
	prefix = h.StatPrefix
	h.xfcc.apply(r, d)
	if h.generateRequestID && r.Header.Get("X-Request-Id") == "" {
		r.Header.Set("X-Request-Id", newUUID())
	}
	var route *Route
	rt := t.RouteTableFor(h)
	if rt != nil {
		route = rt.Match(r)
	}
	if route != nil {
		rl.route = route.Name
	}
	// jwt_authn, then (clear_route_cache) the route again: headers it set (claim_to_headers) may match.
	var meta map[string]map[string]any
	if h.jwt != nil {
		meta = map[string]map[string]any{}
		if msg := h.jwt.authenticate(r, time.Now(), meta); msg != "" {
			e.metrics.jwtDenied.WithLabelValues(h.StatPrefix).Inc()
			jwtDenied(lw, r, msg)
			return
		}
		if h.jwt.clearRouteCache && rt != nil {
			if route = rt.Match(r); route != nil {
				rl.route = route.Name
			}
		}
	}

	// Then RBAC, fault, and the router.
	ri := &requestInfo{r: r, down: d, meta: meta}
	for _, f := range h.rbac {
		if ok, _ := f.allowed(ri); !ok {
			e.metrics.rbacDenied.WithLabelValues(h.StatPrefix).Inc()
			rl.flag("RBAC")
			localReply(lw, http.StatusForbidden, bodyRBACDenied)
			return
		}
	}
	if fault := h.fault; fault != nil {
		if route != nil && route.Fault != nil {
			fault = route.Fault
		}
		if fault.Delay > 0 && hit(fault.DelayPPM, e.opts.Rand) {
			e.metrics.faultDelays.WithLabelValues(h.StatPrefix).Inc()
			rl.flag("DI")
			select {
			case <-time.After(fault.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if fault.AbortStatus != 0 && hit(fault.AbortPPM, e.opts.Rand) {
			e.metrics.faultAborts.WithLabelValues(h.StatPrefix).Inc()
			rl.flag("FI")
			localReply(lw, fault.AbortStatus, bodyFaultAbort)
			return
		}
	}
	if route == nil {
		rl.flag("NR")
		localReply(lw, http.StatusNotFound, "")
		return
	}
	if h.cors && route.cors != nil {
		answered, resp := route.cors.decide(lw, r, e.opts.Rand)
		if answered {
			return
		}
		lw.cors = resp
	}
	if route.Direct != nil {
		route.respHeaders.apply(lw.Header())
		localReply(lw, route.Direct.Status, route.Direct.Body)
		return
	}
	if route.Redirect != nil {
		route.answerRedirect(lw, r)
		return
	}
	e.forward(lw, r, route, h, d, t, rl)
}

// forward is the router: pick a cluster and a host, send, retry per the route's policy, copy the answer.
func (e *Engine) forward(w *countingWriter, r *http.Request, route *Route, h *HTTPManager, d *Downstream, t *Table, rl *reqLog) {
	name, wc := route.pick(e.opts.Rand)
	rl.cluster = name
	// localReply for the router's own answers: they carry the route's response headers, as Envoy's do.
	localReply := func(w *countingWriter, status int, body string) {
		applyResponse(w.Header(), route, wc)
		localReply(w, status, body)
	}
	c := t.Clusters[name]
	if c == nil {
		rl.flag("NC")
		localReply(w, http.StatusServiceUnavailable, "")
		return
	}
	ctx := r.Context()
	if route.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, route.Timeout)
		defer cancel()
	}
	policy := route.Retry
	retries := 0
	if policy != nil {
		retries = policy.NumRetries
	}
	body, replayable, err := e.bufferBody(r, retries > 0 || len(route.mirrors) > 0)
	if err != nil {
		rl.flag("DPE")
		localReply(w, http.StatusBadRequest, "reading request body: "+err.Error())
		return
	}
	header := upstreamHeader(r, h, d, route)
	target := upstreamTarget{host: r.Host, path: r.URL.Path, rawPath: r.URL.RawPath}
	if wc != nil {
		wc.reqHeaders.apply(header)
		if wc.hostRewrite != "" {
			target.host = wc.hostRewrite
		}
	}
	route.reqHeaders.apply(header)
	if route.hostRewrite != "" {
		target.host = route.hostRewrite
	}
	if p, raw, ok := route.upstreamPath(r); ok {
		if !h.suppressEnvoyHeaders {
			header.Set("X-Envoy-Original-Path", r.URL.RequestURI()) // as the router does on a path rewrite
		}
		target.path, target.rawPath = p, raw
	}
	if len(route.mirrors) > 0 && replayable {
		e.mirror(t, route, r, target, header, body, d)
	}
	var hash uint64
	var hashed bool
	if len(route.hash) > 0 {
		var cookie string
		hash, hashed, cookie = requestHash(route.hash, r, d)
		if cookie != "" {
			w.Header().Add("Set-Cookie", cookie)
		}
	}
	// The circuit breaker admits the request (it may wait as pending) for as long as it is forwarded.
	if !c.breaker.acquire(ctx, e.transport(c, r) == http.RoundTripper(e.h1)) {
		if ctx.Err() != nil && r.Context().Err() == nil {
			rl.flag("UT")
			e.metrics.upstreamRq.WithLabelValues(name, "504").Inc()
			localReply(w, http.StatusGatewayTimeout, bodyTimeout)
			return
		}
		rl.flag("UO")
		e.metrics.upstreamRqOverflow.WithLabelValues(name).Inc()
		e.metrics.upstreamRq.WithLabelValues(name, "503").Inc()
		if !h.suppressEnvoyHeaders {
			w.Header().Set("X-Envoy-Overloaded", "true")
		}
		localReply(w, http.StatusServiceUnavailable, bodyOverflow)
		return
	}
	defer c.breaker.release()
	tried := map[string]bool{}
	retryDone := func() {}
	defer func() { retryDone() }()
	for attempt := 1; ; attempt++ {
		rl.attempts = attempt
		var avoid map[string]bool
		reselect := 0
		if policy != nil && policy.PreviousHosts {
			avoid, reselect = tried, policy.HostSelectMax
		}
		ep := c.pick(d.Destination, avoid, reselect, e.opts.Rand, hash, hashed)
		if ep == nil {
			rl.flag("UH")
			e.metrics.upstreamRq.WithLabelValues(name, "503").Inc()
			localReply(w, http.StatusServiceUnavailable, bodyNoHealthy)
			return
		}
		tried[ep.Address] = true
		rl.upstreamHost = ep.String()
		if route.attemptCount && !h.suppressEnvoyHeaders {
			header.Set("X-Envoy-Attempt-Count", strconv.Itoa(attempt))
		}
		resp, fail, cancelTry := e.attempt(ctx, r, target, header, body, ep, c, policy, rl)
		retryDone()
		if c.outlier != nil && r.Context().Err() == nil { // a client that went away says nothing of the host
			if c.outlier.report(ep, fail.outlierStatus(), len(c.Hosts)) {
				e.metrics.outlierEjections.WithLabelValues(name).Inc()
			}
		}
		if ctx.Err() != nil && r.Context().Err() == nil {
			// The route timeout covers every attempt.
			cancelTry()
			rl.flag("UT")
			e.metrics.upstreamRq.WithLabelValues(name, "504").Inc()
			localReply(w, http.StatusGatewayTimeout, bodyTimeout)
			return
		}
		retryOK := false
		if attempt <= retries && replayable && policy.shouldRetry(fail) {
			// max_retries bounds the retries in flight to the cluster; past it the answer stands.
			if retryDone, retryOK = c.breaker.retry(); !retryOK {
				retryDone = func() {}
				e.metrics.upstreamRetryOverflow.WithLabelValues(name).Inc()
			}
		}
		if retryOK {
			if resp != nil {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				e.metrics.upstreamRq.WithLabelValues(name, strconv.Itoa(resp.StatusCode)).Inc()
			}
			cancelTry()
			e.metrics.upstreamRetry.WithLabelValues(name).Inc()
			select {
			case <-time.After(policy.backoff(attempt, e.opts.Rand)):
			case <-ctx.Done():
			}
			continue
		}
		defer cancelTry()
		if attempt > 1 && fail.retriable() {
			rl.flag("URX")
		}
		if resp == nil {
			code, msg := http.StatusServiceUnavailable, bodyReset
			switch {
			case fail.connect:
				rl.flag("UF")
				msg = bodyConnectFailed
			case fail.timeout:
				rl.flag("UT")
				code, msg = http.StatusGatewayTimeout, bodyTimeout
			default:
				rl.flag("UC")
			}
			e.metrics.upstreamRq.WithLabelValues(name, strconv.Itoa(code)).Inc()
			localReply(w, code, msg)
			return
		}
		e.metrics.upstreamRq.WithLabelValues(name, strconv.Itoa(resp.StatusCode)).Inc()
		copyResponse(w, resp, h.suppressEnvoyHeaders, time.Since(rl.start), route, wc)
		return
	}
}

// outlierStatus is the status outlier detection counts for an attempt: the upstream's, 503 for a
// connection failure or reset and 504 for a timeout (Envoy's non-split mode).
func (f attemptFailure) outlierStatus() int {
	switch {
	case f.status != 0:
		return f.status
	case f.timeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusServiceUnavailable
}

func (f attemptFailure) retriable() bool {
	return f.connect || f.refused || f.reset || f.timeout || f.status >= 500
}

// attempt sends one try. The returned cancel must be called once the response body is consumed.
// upstreamTarget is the authority and path sent upstream, after the route's rewrites.
type upstreamTarget struct{ host, path, rawPath string }

func (e *Engine) attempt(ctx context.Context, r *http.Request, target upstreamTarget, header http.Header, body []byte, ep *Endpoint, c *Cluster, policy *RetryPolicy, rl *reqLog) (*http.Response, attemptFailure, context.CancelFunc) {
	actx := context.WithValue(ctx, upstreamKey{}, &upstreamCtx{ep: ep, cluster: c})
	cancel := context.CancelFunc(func() {})
	if policy != nil && policy.PerTryTimeout > 0 {
		actx, cancel = context.WithTimeout(actx, policy.PerTryTimeout)
	}
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if p, ok := info.Conn.(interface{ PeerID() spiffeid.ID }); ok {
			rl.upstreamPeer = p.PeerID().String()
		}
	}})
	out := upstreamRequest(r, target.host, target, header, body, ep)
	if body == nil && r.Body != nil && r.Body != http.NoBody {
		out.Body = r.Body // streamed: not buffered, so not retried
	}
	if out.ContentLength == 0 {
		out.Body = nil
	}
	out = out.WithContext(actx)
	// The request counts as active on ep (LEAST_REQUEST) until its response has been read, as in Envoy.
	ep.active.Add(1)
	resp, err := e.transport(c, r).RoundTrip(out)
	if err != nil {
		ep.active.Add(-1)
		return nil, classify(err, actx, ctx), cancel
	}
	var once sync.Once
	cancelTry := cancel
	cancel = func() {
		once.Do(func() { ep.active.Add(-1) })
		cancelTry()
	}
	return resp, attemptFailure{status: resp.StatusCode, grpc: resp.Header.Get("Grpc-Status")}, cancel
}

// upstreamRequest is the request sent to ep for r: target's path, host as the authority, a copy of
// header, and the buffered body when there is one (replayable, for retries and mirrors).
func upstreamRequest(r *http.Request, host string, target upstreamTarget, header http.Header, body []byte, ep *Endpoint) *http.Request {
	out := &http.Request{
		Method: r.Method,
		URL: &url.URL{Scheme: "http", Host: ep.Address, Path: target.path, RawPath: target.rawPath,
			RawQuery: r.URL.RawQuery},
		Host:          host,
		Header:        header.Clone(),
		ContentLength: r.ContentLength,
		Proto:         "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
	if body != nil {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return out
}

// transport is the round tripper for requests of r to cluster c: HTTP/2 when the cluster says so, or
// when it follows the downstream protocol and r came over HTTP/2; else HTTP/1.1.
func (e *Engine) transport(c *Cluster, r *http.Request) http.RoundTripper {
	if c.upstreamProto == "http2" || (c.upstreamProto == "downstream" && r.ProtoMajor == 2) {
		return e.h2
	}
	return e.h1
}

func classify(err error, actx, ctx context.Context) attemptFailure {
	var de *dialError
	var se http2.StreamError
	switch {
	case errors.As(err, &de):
		return attemptFailure{connect: true}
	case errors.As(err, &se) && se.Code == http2.ErrCodeRefusedStream:
		return attemptFailure{refused: true}
	case actx.Err() != nil && ctx.Err() == nil:
		return attemptFailure{timeout: true}
	}
	return attemptFailure{reset: true}
}

// bufferBody reads a request body that may have to be replayed. replayable is false when a body too
// large to keep was streamed instead (then no retry can happen).
func (e *Engine) bufferBody(r *http.Request, retry bool) (body []byte, replayable bool, err error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, true, nil
	}
	if !retry || r.ContentLength > e.opts.MaxRetryBuffer {
		return nil, false, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, e.opts.MaxRetryBuffer+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(b)) > e.opts.MaxRetryBuffer {
		// Unknown length and too big: stream what was read followed by the rest.
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), r.Body), r.Body}
		return nil, false, nil
	}
	if b == nil {
		b = []byte{}
	}
	return b, true, nil
}

// hopHeaders are connection-level and never forwarded (RFC 9110 section 7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Te", "Trailer"}

func stripHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			h.Del(strings.TrimSpace(f))
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// upstreamHeader is the request header sent upstream, with the headers Envoy adds.
func upstreamHeader(r *http.Request, h *HTTPManager, d *Downstream, route *Route) http.Header {
	out := r.Header.Clone()
	stripHop(out)
	if out.Get("X-Forwarded-Proto") == "" {
		out.Set("X-Forwarded-Proto", "http")
	}
	if h.useRemoteAddress && !h.skipXFFAppend && d.Source.IsValid() {
		ip := d.Source.Addr().Unmap().String()
		if prior := out.Get("X-Forwarded-For"); prior != "" {
			ip = prior + ", " + ip
		}
		out.Set("X-Forwarded-For", ip)
	}
	if !h.suppressEnvoyHeaders {
		// The per-try timeout when it is the shorter bound, as Envoy's router sets it.
		expected := route.Timeout
		if p := route.Retry; p != nil && p.PerTryTimeout > 0 && (expected == 0 || p.PerTryTimeout < expected) {
			expected = p.PerTryTimeout
		}
		if expected > 0 {
			out.Set("X-Envoy-Expected-Rq-Timeout-Ms", strconv.FormatInt(expected.Milliseconds(), 10))
		}
	}
	return out
}

// applyResponse applies the picked weighted cluster's response header mutations, then the route's.
func applyResponse(hdr http.Header, route *Route, wc *WeightedCluster) {
	if wc != nil {
		wc.respHeaders.apply(hdr)
	}
	route.respHeaders.apply(hdr)
}

func copyResponse(w *countingWriter, resp *http.Response, suppress bool, elapsed time.Duration, route *Route, wc *WeightedCluster) {
	defer resp.Body.Close()
	hdr := w.Header()
	for k, vs := range resp.Header {
		hdr[k] = vs
	}
	stripHop(hdr)
	if !suppress {
		hdr.Set("X-Envoy-Upstream-Service-Time", strconv.FormatInt(elapsed.Milliseconds(), 10))
	}
	applyResponse(hdr, route, wc)
	for k := range resp.Trailer {
		hdr.Add("Trailer", k)
	}
	w.WriteHeader(resp.StatusCode)
	// A pooled buffer: io.Copy would allocate 32 KB for every response (countingWriter has no ReadFrom),
	// most of the waypoint's allocation and so of its GC work.
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	if resp.ContentLength >= 0 {
		io.CopyBuffer(w, resp.Body, buf)
	} else {
		// Unknown length: maybe a stream; flush as it arrives.
		rc := http.NewResponseController(w)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				rc.Flush()
			}
			if err != nil {
				break
			}
		}
	}
	for k, vs := range resp.Trailer {
		for _, v := range vs {
			hdr.Add(http.TrailerPrefix+k, v)
		}
	}
}

func localReply(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// countingWriter records the status and body size for the access log.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
	// cors, when set, is added to the response headers as they are written (the CORS filter's encode side).
	cors *corsResponse
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
		if c.cors != nil {
			c.cors.apply(c.Header())
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// newUUID returns a random (version 4) UUID, Envoy's x-request-id format.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// logRequest writes an Envoy-style access-log line followed by the identities:
// [START] "METHOD PATH PROTO" STATUS FLAGS ... key=value.
func (e *Engine) logRequest(l *reqLog) {
	if e.logw.w == nil {
		return
	}
	flags := "-"
	if len(l.flags) > 0 {
		flags = strings.Join(l.flags, ",")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %q %d %s bytes_sent=%d duration_ms=%d route=%s upstream_cluster=%s upstream_host=%s attempts=%d request_id=%s authority=%s source=%s source_identity=%s destination=%s destination_identity=%s\n",
		l.start.UTC().Format("2006-01-02T15:04:05.000Z"),
		l.r.Method+" "+l.r.URL.RequestURI()+" "+l.r.Proto, l.status, flags, l.bytesSent,
		time.Since(l.start).Milliseconds(), dash(l.route), dash(l.cluster), dash(l.upstreamHost), l.attempts,
		dash(l.r.Header.Get("X-Request-Id")), dash(l.r.Host), l.d.Source, dash(l.d.Peer), l.d.Destination, dash(l.upstreamPeer))
	e.logw.write([]byte(b.String()))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
