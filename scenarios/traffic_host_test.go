package scenarios

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A request from the host goes to Via over a real socket, with the URL's host as Host and the -H headers.
func TestSendFromHost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Host", r.Host)
		w.WriteHeader(http.StatusTeapot)
		w.Write([]byte("path=" + r.URL.Path + " user=" + r.Header.Get("End-User")))
	}))
	defer srv.Close()
	via := srv.Listener.Addr().String()
	res := sendFromHost(context.Background(), Request{URL: "http://bookinfo.example/productpage", Via: via, Args: []string{"-H", "end-user: jason"}})
	if res.Status != http.StatusTeapot || res.Header.Get("X-Seen-Host") != "bookinfo.example" || res.Body != "path=/productpage user=jason" {
		t.Errorf("response = %+v", res)
	}

	// Nothing listens: curl's exit 7, as from a pod.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if res := sendFromHost(context.Background(), Request{URL: "http://x/", Via: closed, MaxTime: time.Second}); res.ExitCode != 7 || res.Status != 0 {
		t.Errorf("refused: %+v, want exit 7", res)
	}
	if res := sendFromHost(context.Background(), Request{URL: "http://x/", Via: via, Args: []string{"-k"}}); res.ExitCode != 2 {
		t.Errorf("an unsupported flag: %+v, want exit 2", res)
	}
}
