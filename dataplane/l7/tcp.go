package l7

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// serveTCP is the tcp_proxy filter: one upstream connection per downstream connection, bytes both ways.
func (e *Engine) serveTCP(ctx context.Context, conn net.Conn, d Downstream, chain *FilterChain) {
	start := time.Now()
	tp := chain.TCP
	name := tp.Cluster
	if len(tp.Weighted) > 0 {
		name = pickWeighted(tp.Weighted, tp.total, e.opts.Rand()).Name
	}
	var sent, recv atomic.Int64
	flags, host := "-", "-"
	defer func() {
		if e.logw.w == nil {
			return
		}
		e.logw.write([]byte(fmt.Sprintf("[%s] \"- - TCP\" 0 %s bytes_sent=%d bytes_received=%d duration_ms=%d upstream_cluster=%s upstream_host=%s source=%s source_identity=%s destination=%s\n",
			start.UTC().Format("2006-01-02T15:04:05.000Z"), flags, sent.Load(), recv.Load(), time.Since(start).Milliseconds(),
			name, host, d.Source, dash(d.Peer), d.Destination)))
	}()
	t := e.Table()
	c := t.Clusters[name]
	if c == nil {
		flags = "NC"
		conn.Close()
		return
	}
	// The circuit breaker's max_connections bounds a TCP cluster's connections; past it the connection is
	// refused at once (Envoy's upstream_cx_overflow: tcp_proxy has no pending queue).
	release, ok := c.breaker.connection()
	if !ok {
		flags = "UO"
		e.metrics.upstreamRqOverflow.WithLabelValues(name).Inc()
		conn.Close()
		return
	}
	defer release()
	ep := c.pick(d.Destination, nil, 0, e.opts.Rand, 0, false)
	if ep == nil {
		flags = "UH"
		conn.Close()
		return
	}
	host = ep.String()
	dctx, cancel := context.WithTimeout(ctx, c.ConnectTimeout)
	up, err := e.opts.Dial(dctx, ep)
	cancel()
	if err != nil {
		e.metrics.upstreamCxFail.WithLabelValues(name).Inc()
		flags = "UF"
		e.opts.Logf("tcp_proxy %s: dialling %s: %v", tp.StatPrefix, ep, err)
		conn.Close()
		return
	}
	e.metrics.upstreamCx.WithLabelValues(name).Inc()
	splice(conn, up, &recv, &sent)
}

// splice copies both ways, half-closing each side when the other finishes, and closes both at the end.
func splice(down, up net.Conn, fromDown, fromUp *atomic.Int64) {
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn, n *atomic.Int64) {
		defer wg.Done()
		c, _ := io.Copy(dst, src)
		n.Add(c)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go cp(up, down, fromDown)
	go cp(down, up, fromUp)
	wg.Wait()
	down.Close()
	up.Close()
}
