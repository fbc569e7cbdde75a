package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/controlplane/inject"
)

// rawCodec sends and receives gRPC messages as bytes, so that a test can send what is not a proto.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" } // what the server expects on the wire

// closedWithin reads c until the server closes it, and reports whether that happened within d.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// stillServesADS checks that a new waypoint gets its listeners over a new connection.
func stillServesADS(t *testing.T, s *Server) {
	t.Helper()
	wp := newADSClient(t, dialPlain(t, s), "waypoint/default/reviews-waypoint", true, nil)
	wp.subscribe(xdstype.Listener)
	if p, _ := wp.next(xdstype.Listener, 5*time.Second); len(p.resources) == 0 {
		t.Fatal("a well-behaved waypoint got no listeners")
	}
}

// stillServesWebhook checks that the webhook port answers its readiness path over TLS.
func stillServesWebhook(t *testing.T, s *Server) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + s.Addr("webhook").String() + "/ready")
	if err != nil {
		t.Fatalf("the webhook port does not answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the webhook port's /ready: %s", resp.Status)
	}
}

// TestBadInputToControlPlanePorts sends the control plane's ports (xDS plain 15010 and TLS 15012, debug and
// readiness 15014, the webhooks' HTTPS 15017) what they cannot parse, and xDS streams that make no sense; after each,
// a well-behaved proxy still gets config, and the process has not stopped (Run would return).
func TestBadInputToControlPlanePorts(t *testing.T) {
	f := newFakeCluster(t, "", "bookinfo.yaml")
	s := startServer(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	webhookDone := make(chan error, 1)
	go func() {
		webhookDone <- s.ServeWebhook(ctx, WebhookOptions{Addr: "127.0.0.1:0", Values: inject.Values{ProxyImage: "meshlab:test"}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-webhookDone; err != nil {
			t.Errorf("ServeWebhook() = %v", err)
		}
	})
	waitFor(t, "the injection webhook", 10*time.Second, func() bool {
		_, err := f.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, inject.WebhookConfigurationName, metav1.GetOptions{})
		return err == nil
	})
	// A long-lived proxy connected before the bad input must keep its stream.
	before := newADSClient(t, dialTLS(t, s), "ztunnel~10.244.1.2~ztunnel-x.istio-system~istio-system.svc.cluster.local", true,
		map[string]any{"NODE_NAME": "meshlab-worker"})
	before.subscribe(xdstype.Address, xdstype.Authorization)
	before.next(xdstype.Address, 5*time.Second)

	rnd := rand.New(rand.NewPCG(3, 4))
	junk := func() []byte {
		b := make([]byte, 1+rnd.IntN(8192))
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}

	for _, port := range []string{"grpc-plain", "grpc", "http", "webhook"} {
		addr := s.Addr(port).String()
		t.Run(port+": junk, HTTP/1.1 and a broken HTTP/2 preface", func(t *testing.T) {
			for _, payload := range [][]byte{
				junk(), junk(),
				[]byte("GET /debug/syncz HTTP/1.1\r\nHost: istiod\r\nConnection: close\r\n\r\n"),
				append([]byte(http2.ClientPreface), junk()...),
			} {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				c.Write(payload)
				if !closedWithin(t, c, 5*time.Second) {
					t.Errorf("%s keeps a connection open after %d bytes it cannot parse", port, len(payload))
				}
				c.Close()
			}
			stillServesADS(t, s)
			stillServesWebhook(t, s)
		})
	}

	t.Run("an idle connection that never speaks does not block others", func(t *testing.T) {
		for _, port := range []string{"grpc-plain", "grpc", "http", "webhook"} {
			c, err := net.Dial("tcp", s.Addr(port).String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
		// And a TLS client that stops after the handshake, on the TLS xDS port.
		tc, err := tls.Dial("tcp", s.Addr("grpc").String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if err == nil {
			defer tc.Close()
		}
		start := time.Now()
		stillServesADS(t, s)
		stillServesWebhook(t, s)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("a well-behaved proxy waited %v behind idle connections", d)
		}
	})

	t.Run("xDS messages that are not protos", func(t *testing.T) {
		cc, err := grpc.NewClient(s.Addr("grpc-plain").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		for _, method := range []string{
			"/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources",
			"/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
		} {
			for range 5 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				stream, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, method, grpc.ForceCodec(rawCodec{}))
				if err != nil {
					cancel()
					t.Fatal(err)
				}
				msg := junk()
				stream.SendMsg(&msg)
				var reply []byte
				err = stream.RecvMsg(&reply)
				cancel()
				if err == nil {
					continue // the junk happened to decode as a request the server answered: fine
				}
				if status.Code(err) == codes.DeadlineExceeded {
					t.Errorf("%s: the server neither answered nor ended a stream carrying %d bytes of junk", method, len(msg))
				}
			}
		}
		stillServesADS(t, s)
	})

	t.Run("xDS requests that make no sense", func(t *testing.T) {
		cc := dialPlain(t, s)
		ads := discovery.NewAggregatedDiscoveryServiceClient(cc)
		for name, reqs := range map[string][]*discovery.DeltaDiscoveryRequest{
			"no node":      {{TypeUrl: xdstype.Listener}},
			"unknown type": {{Node: &core.Node{Id: "waypoint/default/reviews-waypoint"}, TypeUrl: "type.googleapis.com/garbage.Type"}},
			"malformed node id": {{Node: &core.Node{Id: "~~~sidecar~"}, TypeUrl: xdstype.Cluster},
				{Node: &core.Node{Id: strings.Repeat("x", 1<<20)}, TypeUrl: xdstype.Cluster}},
			"a proxy that does not exist": {{Node: &core.Node{Id: "sidecar/nowhere/ghost-pod"}, TypeUrl: xdstype.Listener}},
			"ACK and NACK of nonces never sent": {
				{Node: &core.Node{Id: "waypoint/default/reviews-waypoint"}, TypeUrl: xdstype.Listener, ResponseNonce: "never-sent"},
				{TypeUrl: xdstype.Listener, ResponseNonce: "nope", ErrorDetail: status.New(codes.InvalidArgument, "junk").Proto()},
			},
			"resources and initial versions of nonsense": {{Node: &core.Node{Id: "waypoint/default/reviews-waypoint"}, TypeUrl: xdstype.Route,
				ResourceNamesSubscribe: []string{"", "\x00", strings.Repeat("r", 100_000)}, ResourceNamesUnsubscribe: []string{"never"},
				InitialResourceVersions: map[string]string{"x": "\xff"}}},
			"a type URL one letter off": {{Node: &core.Node{Id: "waypoint/default/reviews-waypoint"}, TypeUrl: xdstype.Address + "x"}},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			stream, err := ads.DeltaAggregatedResources(ctx)
			if err != nil {
				cancel()
				t.Fatalf("%s: %v", name, err)
			}
			for _, r := range reqs {
				stream.Send(r)
			}
			// Whatever the server makes of it (an error, an empty answer, silence until the client goes),
			// it is confined to this stream.
			stream.Recv()
			cancel()
		}
		// A message above the server's 16 MiB limit.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stream, err := ads.StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		huge := &discovery.DiscoveryRequest{Node: &core.Node{Id: "waypoint/default/reviews-waypoint"}, TypeUrl: xdstype.Listener,
			ResourceNames: []string{strings.Repeat("x", 17<<20)}}
		stream.Send(huge)
		if _, err := stream.Recv(); err == nil {
			// The first request may be answered; the oversized one must end the stream.
			if _, err := stream.Recv(); status.Code(err) != codes.ResourceExhausted {
				t.Errorf("a 17 MiB request: %v, want ResourceExhausted", err)
			}
		} else if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("a 17 MiB request: %v, want ResourceExhausted", err)
		}
		stillServesADS(t, s)
	})

	// The proxy that was connected all along still has its stream: a change reaches it.
	if s.Addr("grpc") == nil {
		t.Fatal("the TLS xDS listener is gone")
	}
	for {
		select {
		case _, ok := <-before.pushes:
			if !ok {
				t.Fatal("the bad input closed another proxy's stream")
			}
		default:
			return
		}
	}
}
