package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// sendFromHost sends req from this machine, not from a pod: the connection goes to req.Via (an ingress
// gateway's address on a node) and the URL's host is the Host header, as a user's browser or curl reaches
// the mesh through its ingress. Failures get curl's exit codes, so the Expect* checks read them the same.
func sendFromHost(ctx context.Context, req Request) Response {
	start := time.Now()
	fail := func(code int, err error) Response {
		return Response{ExitCode: code, Stderr: err.Error(), Elapsed: time.Since(start)}
	}
	target := req.URL
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fail(3, fmt.Errorf("URL %q: %v", req.URL, err)) // curl's "URL malformed"
	}
	for i := 0; i < len(req.Args); i++ {
		if req.Args[i] != "-H" || i+1 >= len(req.Args) {
			return fail(2, fmt.Errorf("from the host only -H headers can be sent, got %q", req.Args[i]))
		}
		k, v, _ := strings.Cut(req.Args[i+1], ":")
		if strings.EqualFold(strings.TrimSpace(k), "host") {
			hreq.Host = strings.TrimSpace(v)
		} else {
			hreq.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
		i++
	}
	maxTime := req.MaxTime
	if maxTime <= 0 {
		maxTime = 5 * time.Second
	}
	dialer := &net.Dialer{Timeout: maxTime}
	client := &http.Client{
		Timeout: maxTime,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, req.Via)
			},
			DisableKeepAlives: true,
			Proxy:             nil, // never a proxy from the environment: the gateway is on this machine
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, // curl without -L
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return fail(curlExitCode(err), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fail(56, fmt.Errorf("reading the body: %w", err))
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(body), Elapsed: time.Since(start)}
}

// curlExitCode maps a Go client error to the exit code curl gives for it.
func curlExitCode(err error) int {
	var nerr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return 7
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return 28
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return 52
	}
	return 56 // reset, or anything else on the way: curl's "failure receiving network data"
}
