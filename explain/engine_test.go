package explain_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/meshlab/meshlab/controlplane/model"
	"github.com/meshlab/meshlab/dataplane/l7"
	"github.com/meshlab/meshlab/explain"
)

// TestPredictionIsWhatTheEngineDoes serves each case's request with the L7 engine itself, on the config
// the proxy on the predicted path holds, and checks that what happens is what Explain predicted: the
// status the proxy answers, and that every upstream it dials is one of the predicted endpoints (each of
// them reached, for forwarded requests).
func TestPredictionIsWhatTheEngineDoes(t *testing.T) {
	// The upstream speaks HTTP/1.1 and h2c: a gRPC port's cluster dials HTTP/2 with prior knowledge.
	upstream := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	upstream.Config.Protocols = new(http.Protocols)
	upstream.Config.Protocols.SetHTTP1(true)
	upstream.Config.Protocols.SetUnencryptedHTTP2(true)
	upstream.Start()
	defer upstream.Close()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := load(t, tc.files...)
			src := explain.Offline{Snapshot: snap}
			r, err := explain.Explain(src, explain.Request{From: tc.from, Method: tc.method, URL: tc.url, Headers: tc.headers})
			if err != nil {
				t.Fatal(err)
			}
			if r.Proxy == nil {
				t.Skip("no L7 proxy on the path")
			}
			p, err := model.ProxyFromID(r.Proxy.Proxy)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := src.Envoy(p)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			dialled := map[string]int{}
			e, err := l7.NewEngine(l7.Options{Dial: func(ctx context.Context, ep *l7.Endpoint) (net.Conn, error) {
				mu.Lock()
				dialled[ep.Address]++
				mu.Unlock()
				return (&net.Dialer{}).DialContext(ctx, "tcp", upstream.Listener.Addr().String())
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if err := e.Apply(cfg); err != nil {
				t.Fatal(err)
			}
			peer := ""
			if r.Source.Capture == explain.CaptureAmbient {
				peer = r.Source.Identity // the source's ztunnel tunnels to the waypoint with the source's SVID
			}
			d := l7.Downstream{Listener: r.Proxy.Listener, Peer: peer, Source: netip.MustParseAddrPort(r.Source.IP + ":40000"),
				Destination: netip.MustParseAddrPort(r.Destination.Address)}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					go func() {
						if err := e.ServeConn(context.Background(), c, d); err != nil {
							c.Close()
						}
					}()
				}
			}()
			predicted := map[string]bool{}
			for _, b := range r.Backends {
				for _, ep := range b.Endpoints {
					predicted[strings.TrimPrefix(ep.Address, "envoy://"+l7.ConnectOriginate+"/")] = true
				}
			}
			wantStatus := r.Result.Status
			if r.Result.Outcome == explain.OutcomeForwarded {
				wantStatus = http.StatusOK
			}
			// A TCP proxy picks its backend per connection: one request per connection there.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: r.Proxy.TCP, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", l.Addr().String())
			}}}
			defer client.CloseIdleConnections()
			for i := range 200 {
				req, err := http.NewRequest(r.Request.Method, r.Request.URL, nil)
				if err != nil {
					t.Fatal(err)
				}
				for k, vs := range tc.headers {
					req.Header[k] = vs
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != wantStatus {
					t.Fatalf("request %d: the engine answers %d, explain predicted %d (%s)", i, resp.StatusCode, wantStatus, r.Result.Summary)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for addr := range dialled {
				if !predicted[addr] {
					t.Errorf("the engine dialled %s, which explain did not predict (%v)", addr, predicted)
				}
			}
			if wantStatus == http.StatusOK {
				for addr := range predicted {
					if dialled[addr] == 0 {
						t.Errorf("explain predicted %s, which 200 requests never reached (%v)", addr, dialled)
					}
				}
			} else if len(dialled) > 0 {
				t.Errorf("the engine dialled %v for a request explain says it answers itself", dialled)
			}
		})
	}
}
