package proxystatus

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/cli/cliutil"
	"github.com/meshlab/meshlab/cli/ui"
	"github.com/meshlab/meshlab/controlplane/xds"
	"github.com/meshlab/meshlab/internal/golden"
)

// generator serves one cluster, one listener and one endpoint set to anyone.
var generator = xds.GeneratorFuncs{GenerateFunc: func(_ *xds.Proxy, typeURL string, _ *xds.PushRequest) (xds.Result, error) {
	var r *discovery.Resource
	var err error
	switch typeURL {
	case xdstype.Cluster:
		r, err = xds.Marshal("reviews", &cluster.Cluster{Name: "reviews"})
	case xdstype.Listener:
		r, err = xds.Marshal("main_internal", &listener.Listener{Name: "main_internal"})
	default:
		return xds.Result{}, nil
	}
	return xds.Result{Resources: []*discovery.Resource{r}}, err
}}

// startControlPlane runs a real xDS server on loopback and its debug endpoints on an httptest server.
func startControlPlane(t *testing.T) (grpcAddr, debugURL string, s *xds.Server) {
	t.Helper()
	s = xds.NewServer(generator, xds.WithDebounce(0, 0), xds.WithID("istiod-7d9f8-abcde"))
	ctx, cancel := context.WithCancel(context.Background())
	s.Start(ctx)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen() = %v", err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	mux := http.NewServeMux()
	s.RegisterHTTP(mux)
	web := httptest.NewServer(mux)
	t.Cleanup(func() {
		web.Close()
		g.Stop()
		cancel()
	})
	return lis.Addr().String(), web.URL, s
}

// proxy is a minimal delta ADS client.
type proxy struct {
	t      *testing.T
	node   *core.Node
	stream grpc.BidiStreamingClient[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]
}

func connect(t *testing.T, addr, id, version string) *proxy {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient() = %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(context.Background())
	if err != nil {
		t.Fatalf("DeltaAggregatedResources() = %v", err)
	}
	md, _ := structpb.NewStruct(map[string]any{xds.MetaVersion: version})
	return &proxy{t: t, node: &core.Node{Id: id, Cluster: "Kubernetes", Metadata: md}, stream: stream}
}

// subscribe subscribes to typeURL and answers the response with ACK, NACK or nothing.
func (p *proxy) subscribe(typeURL, answer string) {
	p.t.Helper()
	if err := p.stream.Send(&discovery.DeltaDiscoveryRequest{Node: p.node, TypeUrl: typeURL}); err != nil {
		p.t.Fatalf("Send() = %v", err)
	}
	r, err := p.stream.Recv()
	if err != nil {
		p.t.Fatalf("Recv() = %v", err)
	}
	req := &discovery.DeltaDiscoveryRequest{TypeUrl: typeURL, ResponseNonce: r.Nonce}
	switch answer {
	case "ack":
	case "nack":
		req.ErrorDetail = &status.Status{Message: "rejected"}
	default:
		return
	}
	if err := p.stream.Send(req); err != nil {
		p.t.Fatalf("Send() = %v", err)
	}
}

// age matches the ages of a test that ran in under ten seconds; replacing keeps the column widths.
var age = regexp.MustCompile(`(SYNCED|STALE|ERROR) \(\ds\)`)

func TestProxyStatusAgainstRealServer(t *testing.T) {
	addr, url, s := startControlPlane(t)

	// A waypoint replica names its pod in Istio's form; its metadata name the Gateway.
	w := connect(t, addr, "router~10.244.0.9~waypoint-7b9c-x2k4p.bookinfo~bookinfo.svc.cluster.local", "0.1.0")
	w.node.Metadata.Fields[xds.MetaKind] = structpb.NewStringValue("waypoint")
	w.node.Metadata.Fields[xds.MetaName] = structpb.NewStringValue("waypoint")
	w.subscribe(xdstype.Cluster, "ack")
	w.subscribe(xdstype.Listener, "nack")
	w.subscribe(xdstype.Endpoint, "none") // answered with an empty response, never acknowledged
	z := connect(t, addr, "ztunnel/meshlab-worker", "0.1.0")
	z.subscribe(xdstype.Address, "ack")
	sc := connect(t, addr, "sidecar/default/productpage-v1-abc", "0.1.0")
	sc.subscribe(xdstype.Cluster, "ack")
	sc.subscribe(xdstype.Listener, "ack")

	// Wait until the server has processed every answer.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := s.SyncStatus()
		n := 0
		for _, p := range st.Proxies {
			for _, ty := range p.Types {
				if ty.Synced() || ty.NackError != "" {
					n++
				}
			}
		}
		if n == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not record all answers: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}

	for _, c := range []struct {
		args   []string
		golden string
	}{
		{nil, "proxy-status.golden"},
		{[]string{"--verbosity", "1"}, "proxy-status-verbose.golden"},
	} {
		var out, errOut bytes.Buffer
		env := cliutil.Env{Logger: ui.NewLogger(&errOut, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &errOut}, Globals: &cliutil.Globals{}}
		cmd := NewCommand(env)
		cmd.SetArgs(append([]string{"--controlplane", url}, c.args...))
		if err := cmd.Execute(); err != nil {
			t.Fatalf("proxy-status: %v\n%s", err, errOut.String())
		}
		got := age.ReplaceAllString(out.String(), "$1 (Xs)")
		golden.Check(t, filepath.Join("testdata", c.golden), []byte(got))
	}
}

func TestCell(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	pushed := now.Add(-95 * time.Second)
	tests := []struct {
		name       string
		ts         xds.TypeStatus
		subscribed bool
		want       string
	}{
		{"not subscribed", xds.TypeStatus{}, false, "IGNORED"},
		{"subscribed, nothing sent", xds.TypeStatus{}, true, "NOT SENT"},
		{"acked", xds.TypeStatus{SentNonce: "a", AckedNonce: "a", LastPush: pushed}, true, "SYNCED (95s)"},
		{"acked long ago", xds.TypeStatus{SentNonce: "a", AckedNonce: "a", LastPush: now.Add(-3*time.Minute - 4*time.Second)}, true, "SYNCED (3m4s)"},
		{"sent, waiting", xds.TypeStatus{SentNonce: "b", AckedNonce: "a", LastPush: pushed}, true, "STALE (95s)"},
		{"rejected", xds.TypeStatus{SentNonce: "b", AckedNonce: "a", NackError: "bad", LastPush: pushed}, true, "ERROR (95s)"},
	}
	for _, tt := range tests {
		if got := Cell(tt.ts, tt.subscribed, now); got != tt.want {
			t.Errorf("%s: Cell() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestFetchErrors(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == xds.MeshlabSynczPath {
			w.Write([]byte("not json"))
			return
		}
		http.NotFound(w, r)
	}))
	defer bad.Close()
	if _, err := Fetch(context.Background(), http.DefaultClient, bad.URL); err == nil {
		t.Error("Fetch() of a non-JSON body succeeded")
	}
	if _, err := Fetch(context.Background(), http.DefaultClient, bad.URL+"/nothing-here"); err == nil {
		t.Error("Fetch() of a 404 succeeded")
	}
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + lis.Addr().String()
	lis.Close()
	if _, err := Fetch(context.Background(), http.DefaultClient, closed); err == nil {
		t.Error("Fetch() of a closed port succeeded")
	}

	var out bytes.Buffer
	env := cliutil.Env{Logger: ui.NewLogger(&out, 0, false), Streams: ui.Streams{Out: &out, ErrOut: &out}, Globals: &cliutil.Globals{}}
	cmd := NewCommand(env)
	cmd.SetArgs([]string{"--controlplane", "localhost:15014"})
	if err := cmd.Execute(); !cliutil.IsUsage(err) {
		t.Errorf("a URL without scheme: err = %v, want a usage error", err)
	}
}
