package echo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// ClientOptions are the client's arguments, as the conformance suite passes them to Istio's client.
type ClientOptions struct {
	URL     string
	Method  string   // default GET
	Headers []string // "Key:Value"; a Host header sets the request's host
	Count   int      // requests to send, default 1
	Timeout time.Duration
}

// RunClient sends opts.Count requests one after the other and writes each response in Istio's forwarder
// format to out, separated by blank lines. It fails on the first request that gets no response at all.
func RunClient(ctx context.Context, opts ClientOptions, out io.Writer) error {
	if opts.URL == "" {
		return fmt.Errorf("no URL")
	}
	if !strings.Contains(opts.URL, "://") {
		opts.URL = "http://" + opts.URL
	}
	method := opts.Method
	if method == "" {
		method = http.MethodGet
	}
	count := max(opts.Count, 1)
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	hdr := make(http.Header)
	var host string
	for _, h := range opts.Headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("header %q: want KEY:VALUE", h)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if strings.EqualFold(k, "Host") {
			host = v
			continue
		}
		hdr.Add(k, v)
	}
	client := &http.Client{
		Timeout:       timeout,
		Transport:     &http.Transport{Proxy: nil, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	w := bufio.NewWriter(out)
	defer w.Flush()
	for i := range count {
		req, err := http.NewRequestWithContext(ctx, method, opts.URL, nil)
		if err != nil {
			return err
		}
		req.Header = hdr.Clone()
		if host != "" {
			req.Host = host
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("request %d to %s: %w", i, opts.URL, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("request %d to %s: reading body: %w", i, opts.URL, err)
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		writeResponse(w, i, opts.URL, resp, body)
	}
	return nil
}

// writeResponse writes one response as Istio's forwarder does; the body's empty lines are left out, so a
// blank line only ever separates two responses.
func writeResponse(w io.Writer, i int, url string, resp *http.Response, body []byte) {
	fmt.Fprintf(w, "[%d] Url=%s\n", i, url)
	fmt.Fprintf(w, "[%d] StatusCode=%d\n", i, resp.StatusCode)
	keys := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range resp.Header[k] {
			fmt.Fprintf(w, "[%d] ResponseHeader=%s:%s\n", i, k, v)
		}
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if line = strings.TrimRight(line, "\r"); line != "" {
			fmt.Fprintf(w, "[%d body] %s\n", i, line)
		}
	}
}
