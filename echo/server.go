package echo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ServerOptions are the echo server's flags, named as Istio's echo server names them.
type ServerOptions struct {
	// HTTPPorts get the HTTP echo handler (--port); a port also listed in TLSPorts is skipped (no TLS here).
	HTTPPorts []int
	// TLSPorts are the --tls ports: accepted for compatibility with the suite's manifests, not served.
	TLSPorts []int
	// TCPPorts echo back every byte received (--tcp).
	TCPPorts []int
	// Version is written as ServiceVersion (--version).
	Version string
	// Hostname is written as Hostname; the pod name in Kubernetes.
	Hostname string
	// Namespace is written as Namespace: the pod's namespace (the manifest passes it as $POD_NAMESPACE).
	Namespace string
	// Logf, if set, reports listeners and errors.
	Logf func(format string, args ...any)
}

// Instance is who answers: the version, pod name and namespace the echo lines carry.
type Instance struct {
	Version, Hostname, Namespace string
}

// Handler answers every request with the echo lines for a server on port.
func Handler(port int, in Instance) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read (and drop) the body so the connection can be reused.
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, Lines(r, port, in))
	})
}

// Lines returns the body the server answers r with: the fields Istio's echo writes, then meshlab's own
// (Namespace, PeerIdentity) last, so that the conformance suite's first-match parsing never meets them
// before the fields it reads.
func Lines(r *http.Request, port int, in Instance) string {
	var b strings.Builder
	field := func(k, v string) { fmt.Fprintf(&b, "%s=%s\n", k, v) }
	field("ServiceVersion", in.Version)
	field("ServicePort", strconv.Itoa(port))
	field("StatusCode", strconv.Itoa(http.StatusOK))
	field("URL", r.URL.RequestURI())
	field("Host", r.Host)
	field("Method", r.Method)
	field("Proto", r.Proto)
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	field("IP", ip)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range r.Header[k] {
			field("RequestHeader", k+":"+v)
		}
	}
	field("Hostname", in.Hostname)
	field("Namespace", in.Namespace)
	field("PeerIdentity", PeerIdentity(r.Header.Get("X-Forwarded-Client-Cert")))
	return b.String()
}

// Serve listens on every port in opts and serves until ctx ends. It returns the first listen error, or
// nil once ctx is done and the listeners are closed.
func Serve(ctx context.Context, opts ServerOptions) error {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	tls := map[int]bool{}
	for _, p := range opts.TLSPorts {
		tls[p] = true
	}
	httpPorts := opts.HTTPPorts
	if len(httpPorts) == 0 {
		httpPorts = []int{DefaultHTTPPort}
	}
	var lc net.ListenConfig
	var closers []io.Closer
	var wg sync.WaitGroup
	errc := make(chan error, len(httpPorts)+len(opts.TCPPorts))
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	for _, p := range httpPorts {
		if tls[p] {
			logf("port %d: TLS is not served by meshlab's echo stand-in; skipped", p)
			continue
		}
		ln, err := lc.Listen(ctx, "tcp", ":"+strconv.Itoa(p))
		if err != nil {
			closeAll()
			return fmt.Errorf("listening on HTTP port %d: %w", p, err)
		}
		srv := &http.Server{Handler: Handler(p, Instance{Version: opts.Version, Hostname: opts.Hostname, Namespace: opts.Namespace}), ReadHeaderTimeout: 10 * time.Second}
		closers = append(closers, srv)
		logf("HTTP on %s", ln.Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	for _, p := range opts.TCPPorts {
		ln, err := lc.Listen(ctx, "tcp", ":"+strconv.Itoa(p))
		if err != nil {
			closeAll()
			return fmt.Errorf("listening on TCP port %d: %w", p, err)
		}
		closers = append(closers, ln)
		logf("TCP echo on %s", ln.Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveTCP(ln)
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	closeAll()
	wg.Wait()
	return err
}

// serveTCP copies every connection's bytes back to it until the listener closes.
func serveTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}
