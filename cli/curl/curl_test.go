package curl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
)

// curl executes `meshlab curl args...` under a root that has meshlab's global -v, and returns the exit
// code the way cli.Run computes it.
func curl(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	streams := ui.Streams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}
	env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: streams, Globals: &cliutil.Globals{}}
	root := &cobra.Command{Use: "meshlab", SilenceErrors: true, SilenceUsage: true}
	root.PersistentFlags().CountVarP(&env.Globals.Verbosity, "verbose", "v", "")
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.AddCommand(NewCommand(env))
	root.SetArgs(append([]string{"curl"}, args...))
	err := root.Execute()
	var exit *cliutil.ExitError
	switch {
	case err == nil:
		code = 0
	case errors.As(err, &exit):
		code = exit.Code
	case cliutil.IsUsage(err):
		code = 2
	default:
		code = 1
	}
	return code, out.String(), errOut.String()
}

// echo answers with the request's method, host, headers and body, one per line.
func echo() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var lines []string
		for k, v := range r.Header {
			lines = append(lines, k+"="+strings.Join(v, ","))
		}
		sort.Strings(lines)
		w.Header().Set("X-Test", "yes")
		if s := r.URL.Query().Get("status"); s != "" {
			var code int
			fmt.Sscan(s, &code)
			w.WriteHeader(code)
		}
		fmt.Fprintf(w, "method=%s\nhost=%s\npath=%s\nbody=%s\n%s\n", r.Method, r.Host, r.URL.RequestURI(), body, strings.Join(lines, "\n"))
	}))
}

func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRequests(t *testing.T) {
	srv := echo()
	defer srv.Close()
	hostPort := strings.TrimPrefix(srv.URL, "http://")

	tests := []struct {
		name      string
		args      []string
		stdin     string
		wantCode  int
		wantOut   []string // substrings of stdout
		notOut    []string
		wantErr   []string // substrings of stderr
		wantEmpty bool     // stdout must be empty
	}{
		{name: "get", args: []string{srv.URL + "/a?b=c"}, wantOut: []string{"method=GET\n", "path=/a?b=c\n", "User-Agent=curl/meshlab", "Accept=*/*"},
			notOut: []string{"Accept-Encoding"}},
		{name: "no scheme", args: []string{hostPort + "/x"}, wantOut: []string{"path=/x\n"}},
		{name: "headers", args: []string{"-H", "end-user: jason", "-H", "X-Multi: 1", "-H", "X-Multi: 2", "-H", "User-Agent: test/1", "-H", "Accept:", srv.URL},
			wantOut: []string{"End-User=jason", "X-Multi=1,2", "User-Agent=test/1"}, notOut: []string{"Accept="}},
		{name: "host header", args: []string{"-H", "Host: reviews.default.svc.cluster.local", srv.URL}, wantOut: []string{"host=reviews.default.svc.cluster.local\n"}},
		{name: "post data", args: []string{"-d", "a=1", "-d", "b=2", srv.URL}, wantOut: []string{"method=POST\n", "body=a=1&b=2\n", "Content-Type=application/x-www-form-urlencoded"}},
		{name: "data from stdin", args: []string{"-X", "PUT", "-H", "Content-Type: application/json", "-d", "@-", srv.URL}, stdin: "{\"Reviewer1\":1}\n",
			wantOut: []string{"method=PUT\n", `body={"Reviewer1":1}` + "\n", "Content-Type=application/json"}},
		{name: "include", args: []string{"-i", srv.URL}, wantOut: []string{"HTTP/1.1 200 OK\r\n", "X-Test: yes\r\n", "\r\n\r\nmethod=GET"}},
		{name: "head", args: []string{"-I", srv.URL}, wantOut: []string{"HTTP/1.1 200 OK\r\n", "X-Test: yes\r\n"}, notOut: []string{"method="}},
		{name: "write-out", args: []string{"-s", "-w", `%{http_code} %{method} %{size_download}\n`, srv.URL + "/?status=201"}, wantOut: []string{"\n201 GET "}},
		{name: "status 503 is success", args: []string{"-s", srv.URL + "/?status=503"}, wantOut: []string{"method=GET"}},
		{name: "fail on 503", args: []string{"-f", "-w", "%{http_code}", srv.URL + "/?status=503"}, wantCode: 22,
			wantOut: []string{"503"}, notOut: []string{"method="}, wantErr: []string{"curl: (22) The requested URL returned error: 503"}},
		{name: "fail silent", args: []string{"-sf", srv.URL + "/?status=404"}, wantCode: 22, wantEmpty: true},
		{name: "fail below 400", args: []string{"-f", srv.URL + "/?status=204"}, wantCode: 0},
		{name: "verbose", args: []string{"-v", "-H", "x-request-id: abc", srv.URL + "/v"},
			wantErr: []string{"*   Trying " + hostPort, "* Connected to 127.0.0.1 (127.0.0.1) port", "> GET /v HTTP/1.1\n", "> Host: " + hostPort + "\n",
				"> X-Request-Id: abc\n", "< HTTP/1.1 200 OK\n", "< X-Test: yes\n"}},
		{name: "unsupported scheme", args: []string{"ftp://example.com/"}, wantCode: 1, wantErr: []string{"curl: (1) Protocol"}},
		{name: "malformed", args: []string{"http://"}, wantCode: 3},
		{name: "no url", args: nil, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := curl(t, tt.stdin, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, errOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.notOut {
				if strings.Contains(out, w) {
					t.Errorf("stdout has %q:\n%s", w, out)
				}
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if tt.wantEmpty && out+errOut != "" {
				t.Errorf("output not empty: stdout %q stderr %q", out, errOut)
			}
		})
	}
}

func TestOutputFile(t *testing.T) {
	srv := echo()
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "body")
	code, out, _ := curl(t, "", "-s", "-o", path, "-w", "%{http_code}", srv.URL+"/file")
	if code != 0 || out != "200" {
		t.Errorf("exit %d stdout %q, want 0 and only the write-out", code, out)
	}
	body, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(body), "path=/file\n") {
		t.Errorf("output file = %q, %v", body, err)
	}
	code, _, _ = curl(t, "", "-s", "-o", filepath.Join(t.TempDir(), "no", "such", "dir"), srv.URL)
	if code != 23 {
		t.Errorf("unwritable -o: exit %d, want 23", code)
	}
}

func TestConnectionErrors(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	hangup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer hangup.Close()
	refused := "http://" + closedAddr(t) + "/"

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"refused", []string{refused}, 7, "", "curl: (7) Failed to connect to 127.0.0.1 port"},
		{"refused silent with write-out", []string{"-s", "-o", "/dev/null", "-w", "%{http_code}", refused}, 7, "000", ""},
		{"refused silent show-error", []string{"-sS", refused}, 7, "", "curl: (7) "},
		{"timeout", []string{"--max-time", "0.3", slow.URL}, 28, "", "curl: (28) Operation timed out after"},
		{"empty reply", []string{hangup.URL}, 52, "", "curl: (52) Empty reply from server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, out, errOut := curl(t, "", tt.args...)
			if code != tt.wantCode || out != tt.wantOut || !strings.Contains(errOut, tt.wantErr) || (tt.wantErr == "" && errOut != "") {
				t.Errorf("exit %d stdout %q stderr %q; want %d %q %q", code, out, errOut, tt.wantCode, tt.wantOut, tt.wantErr)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	urlErr := func(err error) error { return &url.Error{Op: "Get", URL: "http://x", Err: err} }
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"dns", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nosuch", IsNotFound: true}}), 6},
		{"dns timeout", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "i/o timeout", Name: "slow", IsTimeout: true}}), 28},
		{"refused", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), 7},
		{"unreachable", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}), 7},
		{"deadline", urlErr(context.DeadlineExceeded), 28},
		{"reset", urlErr(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), 56},
		{"eof", urlErr(io.EOF), 52},
	}
	for _, tt := range tests {
		if got, _ := classify(tt.err, "x", "80", 1); got != tt.want {
			t.Errorf("%s: classify(%v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestWriteOutExpand(t *testing.T) {
	u, _ := url.Parse("http://reviews:9080/reviews/0")
	tr := &transfer{url: u, method: "GET", status: 200, size: 42, remote: "10.96.0.7:9080", local: "10.244.1.5:41234", header: http.Header{"Content-Type": {"application/json"}}, totalTaken: 1500 * time.Millisecond}
	got := tr.expand(`%{http_code} %{response_code} %{size_download} %{remote_ip}:%{remote_port} %{local_ip}:%{local_port} %{content_type} %{url_effective} %{time_total} 100%% %{nope}\t\n`)
	want := "200 200 42 10.96.0.7:9080 10.244.1.5:41234 application/json http://reviews:9080/reviews/0 1.500000 100% \t\n"
	if got != want {
		t.Errorf("expand() = %q, want %q", got, want)
	}
	if got := (&transfer{}).expand("%{http_code}"); got != "000" {
		t.Errorf("expand() without an answer = %q, want 000", got)
	}
}
