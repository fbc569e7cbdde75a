// Package curl implements `meshlab curl URL`, the small curl the sleep pod uses to send requests through
// the mesh. It speaks the subset of curl the Istio docs and meshlab's scenarios use (-H, -s, -S, -v, -i,
// -o, -m, -X, -d, -w, -f, -L, -k, -I) and exits with curl's codes: 0 for any HTTP answer, 6 when the
// name does not resolve, 7 when the connection fails, 28 on timeout, 22 for a status >= 400 with --fail.
package curl

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
)

// userAgent is sent unless -H replaces it.
const userAgent = "curl/meshlab"

// Exit codes, as curl's.
const (
	exitUnsupportedProtocol = 1
	exitMalformedURL        = 3
	exitResolve             = 6
	exitConnect             = 7
	exitPartialFile         = 18
	exitHTTPError           = 22
	exitWrite               = 23
	exitReadFile            = 26
	exitTimeout             = 28
	exitTLSConnect          = 35
	exitTooManyRedirects    = 47
	exitEmptyReply          = 52
	exitRecv                = 56
	exitPeerCert            = 60
)

type flagpole struct {
	Headers        []string
	Data           []string
	Method         string
	Output         string
	WriteOut       string
	MaxTime        float64
	ConnectTimeout float64
	Silent         bool
	ShowError      bool
	Verbose        bool
	Include        bool
	Head           bool
	Fail           bool
	Location       bool
	Insecure       bool
}

// NewCommand returns the curl command.
func NewCommand(env cliutil.Env) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "curl [flags] URL",
		Short: "Send one HTTP request, like a small curl (used from inside the sleep pod)",
		Long: `Send one HTTP request and print the response body, like curl. A URL without a scheme is http://.
Exits 0 for any HTTP status (22 for >= 400 with --fail), 6 when the host does not resolve, 7 when the
connection fails, 28 on timeout.`,
		Example: `  meshlab curl -s http://productpage:9080/productpage
  meshlab curl -s -o /dev/null -w '%{http_code}\n' -H 'end-user: jason' reviews:9080/reviews/0`,
		Args: cliutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runE(cmd.Context(), env, flags, args[0])
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&flags.Headers, "header", "H", nil, `extra header "Name: value" (repeatable; "Name:" removes a default one)`)
	f.StringArrayVarP(&flags.Data, "data", "d", nil, "send DATA in a POST body (repeatable, joined with &; @FILE reads a file, @- stdin)")
	f.StringVarP(&flags.Method, "request", "X", "", "request method")
	f.StringVarP(&flags.Output, "output", "o", "", "write the body to FILE instead of stdout")
	f.StringVarP(&flags.WriteOut, "write-out", "w", "", "print FORMAT after the transfer: %{http_code}, %{time_total}, %{size_download}, %{local_port}, ...")
	f.Float64VarP(&flags.MaxTime, "max-time", "m", 0, "give up after SECONDS for the whole transfer")
	f.Float64Var(&flags.ConnectTimeout, "connect-timeout", 0, "give up connecting after SECONDS")
	f.BoolVarP(&flags.Silent, "silent", "s", false, "print no error messages")
	f.BoolVarP(&flags.ShowError, "show-error", "S", false, "print errors even with --silent")
	// Shadows the global -v: here it means curl's verbose, the request and response headers on stderr.
	f.BoolVarP(&flags.Verbose, "verbose", "v", false, "print the request and response headers to stderr")
	f.BoolVarP(&flags.Include, "include", "i", false, "include the response status line and headers in the output")
	f.BoolVarP(&flags.Head, "head", "I", false, "send HEAD and print only the response headers")
	f.BoolVarP(&flags.Fail, "fail", "f", false, "exit 22 without output when the status is 400 or more")
	f.BoolVarP(&flags.Location, "location", "L", false, "follow redirects")
	f.BoolVarP(&flags.Insecure, "insecure", "k", false, "do not verify the server's TLS certificate")
	return cmd
}

// transfer is what -w reports.
type transfer struct {
	url        *url.URL
	method     string
	status     int
	size       int64
	start      time.Time
	remote     string // ip:port the request was sent to
	local      string // ip:port it was sent from (the mesh's access logs name the source by it)
	redirects  int
	header     http.Header
	totalTaken time.Duration
}

func runE(ctx context.Context, env cliutil.Env, flags *flagpole, rawURL string) error {
	c := &run{env: env, flags: flags, tr: transfer{start: time.Now()}}
	code, err := c.do(ctx, rawURL)
	c.tr.totalTaken = time.Since(c.tr.start)
	if flags.WriteOut != "" {
		io.WriteString(env.Streams.Out, c.tr.expand(flags.WriteOut))
	}
	if code == 0 {
		return nil
	}
	if err != nil && (!flags.Silent || flags.ShowError) {
		fmt.Fprintf(env.Streams.ErrOut, "curl: (%d) %v\n", code, err)
	}
	return &cliutil.ExitError{Code: code}
}

type run struct {
	env        cliutil.Env
	flags      *flagpole
	tr         transfer
	req        *http.Request
	reqBodyLen int
}

// do performs the transfer; a non-zero code comes with the message curl would print.
func (c *run) do(ctx context.Context, rawURL string) (int, error) {
	u, code, err := parseURL(rawURL)
	if err != nil {
		return code, err
	}
	c.tr.url = u

	body, err := c.body()
	if err != nil {
		return exitReadFile, err
	}
	method := c.flags.Method
	switch {
	case method != "":
	case c.flags.Head:
		method = http.MethodHead
	case body != nil:
		method = http.MethodPost
	default:
		method = http.MethodGet
	}
	c.tr.method = method

	if c.flags.MaxTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, seconds(c.flags.MaxTime))
		defer cancel()
	}
	var reqBody io.Reader
	if body != nil {
		reqBody = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c.traced(ctx), method, u.String(), reqBody)
	if err != nil {
		return exitMalformedURL, fmt.Errorf("URL rejected: %v", err)
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "*/*")
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if err := setHeaders(req, c.flags.Headers); err != nil {
		return exitMalformedURL, err
	}
	// -v prints the request once the connection is up, as curl does (see traced).
	c.req, c.reqBodyLen = req, len(body)

	resp, err := c.client().Do(req)
	if err != nil {
		return c.classify(err)
	}
	defer resp.Body.Close()
	c.tr.status, c.tr.header = resp.StatusCode, resp.Header
	c.printResponse(resp)

	if c.flags.Fail && resp.StatusCode >= 400 {
		return exitHTTPError, fmt.Errorf("The requested URL returned error: %d", resp.StatusCode)
	}
	out := c.env.Streams.Out
	if c.flags.Output != "" {
		f, err := os.Create(c.flags.Output)
		if err != nil {
			return exitWrite, fmt.Errorf("Failure writing output to destination: %v", err)
		}
		defer f.Close()
		out = f
	}
	if c.flags.Include || c.flags.Head {
		if _, err := io.WriteString(out, statusLine(resp)+"\r\n"+headerBlock(resp.Header, "", "\r\n", resp.ProtoMajor == 2)+"\r\n"); err != nil {
			return exitWrite, fmt.Errorf("Failure writing output to destination: %v", err)
		}
	}
	n, err := io.Copy(writerOnly{out}, resp.Body)
	c.tr.size = n
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return exitWrite, fmt.Errorf("Failure writing output to destination: %v", we.err)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return exitPartialFile, errors.New("transfer closed with outstanding read data remaining")
		}
		return c.classify(err)
	}
	return 0, nil
}

// parseURL accepts what curl accepts: a missing scheme means http.
func parseURL(raw string) (*url.URL, int, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, exitMalformedURL, errors.New("URL rejected: Malformed input to a URL function")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, exitUnsupportedProtocol, fmt.Errorf("Protocol %q not supported", u.Scheme)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u, 0, nil
}

// body joins -d values with & as curl does; @FILE reads a file (@- stdin) without its newlines.
func (c *run) body() ([]byte, error) {
	if len(c.flags.Data) == 0 {
		return nil, nil
	}
	var parts []string
	for _, d := range c.flags.Data {
		name, ok := strings.CutPrefix(d, "@")
		if !ok {
			parts = append(parts, d)
			continue
		}
		var b []byte
		var err error
		if name == "-" {
			b, err = io.ReadAll(c.env.Streams.In)
		} else {
			b, err = os.ReadFile(name)
		}
		if err != nil {
			return nil, fmt.Errorf("Failed to open/read local data from file/application: %v", err)
		}
		parts = append(parts, strings.NewReplacer("\r", "", "\n", "").Replace(string(b)))
	}
	return []byte(strings.Join(parts, "&")), nil
}

// setHeaders applies -H values: "Name: value" replaces a default header of that name the first time and
// adds afterwards, "Name:" removes it, "Name;" sends it empty; Host sets the request's host.
func setHeaders(req *http.Request, headers []string) error {
	seen := map[string]bool{}
	for _, h := range headers {
		if name, ok := strings.CutSuffix(strings.TrimSpace(h), ";"); ok && !strings.Contains(name, ":") {
			req.Header[http.CanonicalHeaderKey(name)] = []string{""}
			continue
		}
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("malformed header %q, want \"Name: value\"", h)
		}
		key := http.CanonicalHeaderKey(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		switch {
		case key == "Host":
			req.Host = value
		case value == "":
			req.Header.Del(key)
		case seen[key]:
			req.Header.Add(key, value)
		default:
			req.Header.Set(key, value)
		}
		seen[key] = true
	}
	return nil
}

func (c *run) client() *http.Client {
	dialer := &net.Dialer{Timeout: seconds(c.flags.ConnectTimeout)}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:              nil,
			DialContext:        dialer.DialContext,
			DisableCompression: true, // curl asks for no encoding unless told to
			DisableKeepAlives:  true,
			TLSClientConfig:    &tls.Config{InsecureSkipVerify: c.flags.Insecure},
			ForceAttemptHTTP2:  true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if !c.flags.Location {
				return http.ErrUseLastResponse
			}
			if len(via) > 50 {
				return errTooManyRedirects
			}
			c.tr.redirects = len(via)
			return nil
		},
	}
}

var errTooManyRedirects = errors.New("Maximum (50) redirects followed")

// traced records where the request went and, with -v, says so on stderr.
func (c *run) traced(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		ConnectStart: func(_, addr string) { c.verbosef("*   Trying %s...", addr) },
		GotConn: func(info httptrace.GotConnInfo) {
			addr := info.Conn.RemoteAddr().String()
			c.tr.remote = addr
			c.tr.local = info.Conn.LocalAddr().String()
			host, port, _ := net.SplitHostPort(addr)
			c.verbosef("* Connected to %s (%s) port %s", c.tr.url.Hostname(), host, port)
			if c.req != nil {
				c.printRequest(c.req, c.reqBodyLen)
				c.req = nil // once: redirects are not shown
			}
		},
	})
}

func (c *run) verbosef(format string, args ...any) {
	if c.flags.Verbose {
		fmt.Fprintf(c.env.Streams.ErrOut, format+"\n", args...)
	}
}

func (c *run) printRequest(req *http.Request, bodyLen int) {
	if !c.flags.Verbose {
		return
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	h := req.Header.Clone()
	if bodyLen > 0 {
		h.Set("Content-Length", strconv.Itoa(bodyLen))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "> %s %s HTTP/1.1\n> Host: %s\n", req.Method, req.URL.RequestURI(), host)
	b.WriteString(headerBlock(h, "> ", "\n", false))
	b.WriteString(">\n")
	io.WriteString(c.env.Streams.ErrOut, b.String())
}

func (c *run) printResponse(resp *http.Response) {
	if c.flags.Verbose {
		io.WriteString(c.env.Streams.ErrOut, "< "+statusLine(resp)+"\n"+headerBlock(resp.Header, "< ", "\n", resp.ProtoMajor == 2)+"<\n")
	}
}

func statusLine(resp *http.Response) string {
	if resp.ProtoMajor == 2 {
		return fmt.Sprintf("HTTP/2 %d", resp.StatusCode)
	}
	return resp.Proto + " " + resp.Status
}

// headerBlock prints headers one per line, sorted, in Go's canonical spelling (HTTP/2 names are lower
// case on the wire and curl shows them so).
func headerBlock(h http.Header, prefix, eol string, lower bool) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range h[k] {
			name := k
			if lower {
				name = strings.ToLower(k)
			}
			b.WriteString(prefix + name + ": " + v + eol)
		}
	}
	return b.String()
}

// classify maps a transfer error to curl's exit code and message.
func (c *run) classify(err error) (int, error) {
	host, port := c.tr.url.Hostname(), c.tr.url.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[c.tr.url.Scheme]
	}
	ms := time.Since(c.tr.start).Milliseconds()
	return classify(err, host, port, ms)
}

func classify(err error, host, port string, ms int64) (int, error) {
	var (
		dnsErr  *net.DNSError
		opErr   *net.OpError
		certErr *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		hostErr x509.HostnameError
		recErr  tls.RecordHeaderError
		netErr  net.Error
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return exitTimeout, fmt.Errorf("Operation timed out after %d milliseconds", ms)
	case errors.As(err, &dnsErr):
		return exitResolve, fmt.Errorf("Could not resolve host: %s", host)
	case errors.Is(err, errTooManyRedirects):
		return exitTooManyRedirects, errTooManyRedirects
	case errors.As(err, &certErr), errors.As(err, &unknown), errors.As(err, &hostErr):
		return exitPeerCert, fmt.Errorf("SSL certificate problem: %v", err)
	case errors.As(err, &recErr):
		return exitTLSConnect, fmt.Errorf("SSL connect error: %v", err)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return exitConnect, fmt.Errorf("Failed to connect to %s port %s after %d ms: Couldn't connect to server", host, port, ms)
	case errors.Is(err, syscall.ECONNRESET):
		return exitRecv, errors.New("Recv failure: Connection reset by peer")
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return exitEmptyReply, errors.New("Empty reply from server")
	default:
		return exitRecv, fmt.Errorf("Failure when receiving data from the peer: %v", err)
	}
}

// writeError marks a failure to write the output, as opposed to reading the response.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		return n, &writeError{err}
	}
	return n, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// expand renders a -w format: %{variable}, %% and the backslash escapes curl knows.
func (t *transfer) expand(format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		ch := format[i]
		switch {
		case ch == '%' && strings.HasPrefix(format[i:], "%%"):
			b.WriteByte('%')
			i++
		case ch == '%' && strings.HasPrefix(format[i:], "%{"):
			end := strings.IndexByte(format[i:], '}')
			if end < 0 {
				b.WriteString(format[i:])
				return b.String()
			}
			b.WriteString(t.variable(format[i+2 : i+end]))
			i += end
		case ch == '\\' && i+1 < len(format):
			if r, ok := map[byte]string{'n': "\n", 't': "\t", 'r': "\r", '\\': "\\"}[format[i+1]]; ok {
				b.WriteString(r)
				i++
			} else {
				b.WriteByte(ch)
			}
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

func (t *transfer) variable(name string) string {
	switch name {
	case "http_code", "response_code":
		return fmt.Sprintf("%03d", t.status)
	case "time_total":
		return strconv.FormatFloat(t.totalTaken.Seconds(), 'f', 6, 64)
	case "size_download":
		return strconv.FormatInt(t.size, 10)
	case "url_effective", "url":
		if t.url == nil {
			return ""
		}
		return t.url.String()
	case "method":
		return t.method
	case "content_type":
		return t.header.Get("Content-Type")
	case "num_redirects":
		return strconv.Itoa(t.redirects)
	case "remote_ip", "remote_port", "local_ip", "local_port":
		addr := t.remote
		if strings.HasPrefix(name, "local_") {
			addr = t.local
		}
		host, port, _ := net.SplitHostPort(addr)
		if strings.HasSuffix(name, "_ip") {
			return host
		}
		return port
	default:
		// curl warns about unknown variables and prints nothing for them.
		return ""
	}
}
