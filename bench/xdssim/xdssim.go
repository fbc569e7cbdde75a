// Package xdssim simulates xDS proxies for benchmarks: each Client is one proxy on its own gRPC connection
// holding one Delta ADS stream, subscribing to whole types (wildcard) and ACKing every response at once,
// as a proxy's main thread would, before reporting it. It decodes nothing, so the cost measured is the
// control plane's and the transport's, not a proxy's.
package xdssim

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

// Response is one response a Client received and ACKed.
type Response struct {
	Client *Client
	// Resp is the response as received.
	Resp *discovery.DeltaDiscoveryResponse
	// Acked is when the ACK had been handed to the stream.
	Acked time.Time
}

// Options configure a Client.
type Options struct {
	// ID is the xDS node ID, e.g. sidecar/NAMESPACE/POD (see xds.NewProxy).
	ID string
	// Metadata is added to the node's metadata.
	Metadata map[string]string
	// Types are subscribed to, in this order, each as a wildcard subscription.
	Types []string
	// OnResponse, if set, is called on the client's receive goroutine after each ACK. It must be quick.
	OnResponse func(Response)
}

// Client is one simulated proxy.
type Client struct {
	ID string

	cc       *grpc.ClientConn
	cancel   context.CancelFunc
	done     chan struct{}
	received atomic.Int64

	mu  sync.Mutex
	err error
}

// Dial connects a new simulated proxy to the ADS server at addr (plaintext, as over loopback) and
// subscribes to opts.Types.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connecting %s to %s: %w", opts.ID, addr, err)
	}
	md := map[string]any{"MESHLAB_VERSION": "xdssim"}
	for k, v := range opts.Metadata {
		md[k] = v
	}
	meta, err := structpb.NewStruct(md)
	if err != nil {
		cc.Close()
		return nil, fmt.Errorf("node metadata of %s: %w", opts.ID, err)
	}
	node := &core.Node{Id: opts.ID, Cluster: "Kubernetes", Metadata: meta}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(sctx)
	if err != nil {
		cancel()
		cc.Close()
		return nil, fmt.Errorf("opening the ADS stream of %s: %w", opts.ID, err)
	}
	c := &Client{ID: opts.ID, cc: cc, cancel: cancel, done: make(chan struct{})}
	for i, t := range opts.Types {
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: t}
		if i == 0 {
			req.Node = node // the node travels on the first request only, as Envoy sends it
		}
		if err := stream.Send(req); err != nil {
			cancel()
			cc.Close()
			return nil, fmt.Errorf("subscribing %s to %s: %w", opts.ID, t, err)
		}
	}
	go c.run(stream, opts.OnResponse)
	return c, nil
}

func (c *Client) run(stream grpc.BidiStreamingClient[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse], on func(Response)) {
	defer close(c.done)
	for {
		r, err := stream.Recv()
		if err == nil {
			err = stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()})
		}
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		c.received.Add(1)
		if on != nil {
			on(Response{Client: c, Resp: r, Acked: time.Now()})
		}
	}
}

// Received returns how many responses the client has ACKed.
func (c *Client) Received() int64 { return c.received.Load() }

// Err returns the error that ended the stream, if it ended.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the stream and the connection and waits for the receive goroutine.
func (c *Client) Close() error {
	c.cancel()
	err := c.cc.Close()
	<-c.done
	return err
}
