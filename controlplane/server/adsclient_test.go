package server

import (
	"context"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/meshlab/meshlab/api/xdstype"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// push is one response a test client received: which type, which resources (by name for delta, all of
// them for state of the world) and when.
type push struct {
	typeURL   string
	names     []string
	resources []*anypb.Any
	removed   []string
	at        time.Time
}

// adsClient is a real ADS client over a real gRPC connection, delta or state of the world, that ACKs every
// response (as Envoy and ztunnel do when they accept config) and queues what it received.
type adsClient struct {
	t      testing.TB
	id     string
	delta  bool
	mu     sync.Mutex // serializes Send: the receive goroutine ACKs while the test subscribes
	sendD  func(*discovery.DeltaDiscoveryRequest) error
	sendS  func(*discovery.DiscoveryRequest) error
	node   *core.Node
	pushes chan push
}

func newADSClient(t testing.TB, cc *grpc.ClientConn, id string, delta bool, meta map[string]any) *adsClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	md, _ := structpb.NewStruct(meta)
	c := &adsClient{t: t, id: id, delta: delta, node: &core.Node{Id: id, Cluster: "Kubernetes", Metadata: md}, pushes: make(chan push, 1000)}
	ads := discovery.NewAggregatedDiscoveryServiceClient(cc)
	if delta {
		stream, err := ads.DeltaAggregatedResources(ctx)
		if err != nil {
			t.Fatalf("DeltaAggregatedResources() = %v", err)
		}
		c.sendD = stream.Send
		go func() {
			for {
				r, err := stream.Recv()
				if err != nil {
					close(c.pushes)
					return
				}
				p := push{typeURL: r.TypeUrl, removed: r.RemovedResources, at: time.Now()}
				for _, res := range r.Resources {
					p.names = append(p.names, res.Name)
					p.resources = append(p.resources, res.Resource)
				}
				c.pushes <- p
				c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce})
			}
		}()
	} else {
		stream, err := ads.StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatalf("StreamAggregatedResources() = %v", err)
		}
		c.sendS = stream.Send
		go func() {
			for {
				r, err := stream.Recv()
				if err != nil {
					close(c.pushes)
					return
				}
				c.pushes <- push{typeURL: r.TypeUrl, resources: r.Resources, at: time.Now()}
				c.send(&discovery.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce})
			}
		}()
	}
	return c
}

func (c *adsClient) send(req any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	switch r := req.(type) {
	case *discovery.DeltaDiscoveryRequest:
		r.Node = c.node
		err = c.sendD(r)
	case *discovery.DiscoveryRequest:
		r.Node = c.node
		err = c.sendS(r)
	}
	if err != nil {
		c.t.Errorf("%s: Send() = %v", c.id, err)
	}
}

// subscribe asks for every resource of each type (wildcard).
func (c *adsClient) subscribe(types ...string) {
	for _, t := range types {
		if c.delta {
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: t})
		} else {
			c.send(&discovery.DiscoveryRequest{TypeUrl: t})
		}
	}
}

// next waits for the next push of typeURL, skipping (and returning) pushes of other types.
func (c *adsClient) next(typeURL string, within time.Duration) (push, []push) {
	c.t.Helper()
	var others []push
	deadline := time.After(within)
	for {
		select {
		case p, ok := <-c.pushes:
			if !ok {
				c.t.Fatalf("%s: stream closed", c.id)
			}
			if p.typeURL == typeURL {
				return p, others
			}
			others = append(others, p)
		case <-deadline:
			c.t.Fatalf("%s: no %s push within %s (got %d others)", c.id, xdstype.Short(typeURL), within, len(others))
		}
	}
}

// drain returns every push that arrives within wait.
func (c *adsClient) drain(wait time.Duration) []push {
	var out []push
	deadline := time.After(wait)
	for {
		select {
		case p, ok := <-c.pushes:
			if !ok {
				return out
			}
			out = append(out, p)
		case <-deadline:
			return out
		}
	}
}

func types(ps []push) []string {
	var out []string
	for _, p := range ps {
		out = append(out, xdstype.Short(p.typeURL))
	}
	return out
}
