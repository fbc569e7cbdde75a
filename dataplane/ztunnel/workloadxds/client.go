// Package workloadxds is ztunnel's workload API client: it subscribes over Delta ADS to
// type.googleapis.com/istio.workload.Address and type.googleapis.com/istio.security.Authorization, keeps
// the resources it was sent, translates them into a ztunnel.Config and hands every new config to ztunnel.
//
// A response that cannot be translated or applied is NACKed with the error and ztunnel keeps its last good
// config. A broken stream is reopened with exponential backoff; the client then tells the server which
// resources (and versions) it still holds, so only the differences are sent again.
package workloadxds

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshlab/meshlab/api/workloadapi"
	"github.com/meshlab/meshlab/api/workloadapi/security"
	"github.com/meshlab/meshlab/api/xdstype"
	"github.com/meshlab/meshlab/dataplane/xdsclient"
	"github.com/meshlab/meshlab/dataplane/ztunnel"
)

// Types the client subscribes to, in the order it subscribes.
var Types = []string{xdstype.Address, xdstype.Authorization}

// Options configure a Client.
type Options struct {
	// Conn is the connection to the control plane (see caservice.Dial). Required.
	Conn grpc.ClientConnInterface
	// Node is this ztunnel's node name, sent as node metadata NODE_NAME (what the control plane keys
	// per-node config by). Required.
	Node string
	// ID is the xDS node ID. Default: ztunnel/<Node>. In a cluster it is Istio's form,
	// ztunnel~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local (see IstioNodeID), so that proxy-status lists the
	// ztunnel pod as istioctl does.
	ID string
	// Metadata is added to the xDS node's metadata (e.g. MESHLAB_VERSION).
	Metadata map[string]string
	// Apply receives every new config (ztunnel's SetConfig). An error NACKs the response. Required.
	Apply func(ztunnel.Config) error
	// OnApplied, when set, runs after each applied config (e.g. to retry pods waiting for their workload).
	OnApplied func(ztunnel.Config)
	// Logf reports stream errors, NACKs and translation warnings; nil discards.
	Logf func(format string, args ...any)
	// MinBackoff and MaxBackoff bound the wait before reopening a broken stream (default 100ms and 15s).
	MinBackoff, MaxBackoff time.Duration
}

// Client is a Delta ADS client for the workload API.
type Client struct {
	opts Options

	mu       sync.Mutex
	res      map[string]map[string]*discovery.Resource // type -> name -> resource as received
	received map[string]bool                           // types whose first response arrived
	cfg      ztunnel.Config
	addrs    map[string]*workloadapi.Address // the resources cfg was translated from
	authz    map[string]*security.Authorization
	applied  bool
	streams  int
	acks     int
	nacks    int
	lastNack string
}

// New returns a client; Run starts it.
func New(opts Options) (*Client, error) {
	if opts.Conn == nil || opts.Node == "" || opts.Apply == nil {
		return nil, errors.New("ztunnel xds: Conn, Node and Apply are required")
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(15*time.Second, opts.MinBackoff)
	}
	c := &Client{opts: opts, res: map[string]map[string]*discovery.Resource{}, received: map[string]bool{}}
	for _, t := range Types {
		c.res[t] = map[string]*discovery.Resource{}
	}
	return c, nil
}

// Status is what the client knows about its sync, for readiness and the admin dump.
type Status struct {
	// Synced: a first response of every type arrived and a config was applied.
	Synced   bool   `json:"synced"`
	Streams  int    `json:"streams"` // streams opened so far (1 + reconnects)
	Acks     int    `json:"acks"`
	Nacks    int    `json:"nacks"`
	LastNack string `json:"lastNack,omitempty"`
}

// Status returns the client's sync state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{Synced: c.applied, Streams: c.streams, Acks: c.acks, Nacks: c.nacks, LastNack: c.lastNack}
}

// Config returns the last applied config.
func (c *Client) Config() ztunnel.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg
}

// Resources returns the workload API resources (keyed by resource name) of the last applied config, as
// received: what ztunnel's config dump shows. The maps and messages are shared; callers must not modify
// them.
func (c *Client) Resources() (map[string]*workloadapi.Address, map[string]*security.Authorization) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs, c.authz
}

// Run keeps a stream open until ctx ends, reopening it with backoff. It returns ctx's error.
func (c *Client) Run(ctx context.Context) error {
	backoff := c.opts.MinBackoff
	for {
		start := time.Now()
		err := c.stream(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(start) > c.opts.MaxBackoff {
			backoff = c.opts.MinBackoff // the stream was healthy for a while: start over
		}
		c.opts.Logf("xds: stream to the control plane ended (reconnecting in %v): %v", backoff, err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, c.opts.MaxBackoff)
	}
}

func (c *Client) node() *core.Node {
	md := map[string]any{"KIND": "ztunnel", "NODE_NAME": c.opts.Node}
	id := c.opts.ID
	if id == "" {
		id = "ztunnel/" + c.opts.Node
		md["NAME"] = c.opts.Node
	}
	for k, v := range c.opts.Metadata {
		md[k] = v
	}
	s, _ := structpb.NewStruct(md)
	return &core.Node{Id: id, Metadata: s, UserAgentName: "meshlab-ztunnel"}
}

// IstioNodeID is the xDS node ID Istio's ztunnel sends: ztunnel~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local.
func IstioNodeID(ip, pod, namespace string) string {
	return xdsclient.IstioNodeID("ztunnel", ip, pod, namespace)
}

// stream runs one ADS stream: subscribe to every type (with what we hold), then apply responses.
func (c *Client) stream(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ads := discovery.NewAggregatedDiscoveryServiceClient(c.opts.Conn)
	st, err := ads.DeltaAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("opening delta ADS stream: %w", err)
	}
	c.mu.Lock()
	c.streams++
	// The first response of each type on this stream is the server's full view (given what we hold).
	c.received = map[string]bool{}
	c.mu.Unlock()
	for i, t := range Types {
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: t, InitialResourceVersions: c.versions(t)}
		if i == 0 {
			req.Node = c.node()
		}
		if err := st.Send(req); err != nil {
			return fmt.Errorf("subscribing to %s: %w", t, err)
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		ack := &discovery.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
		if err := c.handle(resp); err != nil {
			c.opts.Logf("xds: rejecting %s (nonce %s): %v", resp.GetTypeUrl(), resp.GetNonce(), err)
			ack.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		}
		if err := st.Send(ack); err != nil {
			return fmt.Errorf("acknowledging %s: %w", resp.GetTypeUrl(), err)
		}
	}
}

func (c *Client) versions(typeURL string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.res[typeURL]))
	for n, r := range c.res[typeURL] {
		out[n] = r.GetVersion()
	}
	return out
}

// handle applies one response to the held resources and, once every type has been received, pushes the
// translated config to ztunnel. On error the held resources are left as they were.
func (c *Client) handle(resp *discovery.DeltaDiscoveryResponse) error {
	t := resp.GetTypeUrl()
	c.mu.Lock()
	defer c.mu.Unlock()
	held, ok := c.res[t]
	if !ok {
		c.nacks++
		c.lastNack = "unexpected type " + t
		return fmt.Errorf("unexpected type %s", t)
	}
	next := maps.Clone(held)
	for _, n := range resp.GetRemovedResources() {
		delete(next, n)
	}
	for _, r := range resp.GetResources() {
		if r.GetResource().GetTypeUrl() != t {
			return c.nack(fmt.Errorf("resource %q has type %s in a %s response", r.GetName(), r.GetResource().GetTypeUrl(), t))
		}
		next[r.GetName()] = r
	}
	all := maps.Clone(c.res)
	all[t] = next
	received := maps.Clone(c.received)
	received[t] = true
	ready := len(received) == len(Types)
	var cfg ztunnel.Config
	var addrs map[string]*workloadapi.Address
	var authz map[string]*security.Authorization
	if ready {
		var err error
		addrs, authz, err = decode(all)
		if err != nil {
			return c.nack(err)
		}
		var warnings []string
		if cfg, warnings, err = Translate(addrs, authz); err != nil {
			return c.nack(err)
		}
		for _, w := range warnings {
			c.opts.Logf("xds: %s", w)
		}
		if err := c.opts.Apply(cfg); err != nil {
			return c.nack(fmt.Errorf("applying config: %w", err))
		}
	}
	c.res, c.received = all, received
	c.acks++
	if ready {
		c.cfg, c.addrs, c.authz, c.applied = cfg, addrs, authz, true
		if c.opts.OnApplied != nil {
			go c.opts.OnApplied(cfg)
		}
	}
	return nil
}

func (c *Client) nack(err error) error {
	c.nacks++
	c.lastNack = err.Error()
	return err
}

// decode unpacks the held resources.
func decode(res map[string]map[string]*discovery.Resource) (map[string]*workloadapi.Address, map[string]*security.Authorization, error) {
	addrs := map[string]*workloadapi.Address{}
	for n, r := range res[xdstype.Address] {
		a := &workloadapi.Address{}
		if err := proto.Unmarshal(r.GetResource().GetValue(), a); err != nil {
			return nil, nil, fmt.Errorf("decoding address %q: %w", n, err)
		}
		addrs[n] = a
	}
	authz := map[string]*security.Authorization{}
	for n, r := range res[xdstype.Authorization] {
		a := &security.Authorization{}
		if err := proto.Unmarshal(r.GetResource().GetValue(), a); err != nil {
			return nil, nil, fmt.Errorf("decoding authorization %q: %w", n, err)
		}
		authz[n] = a
	}
	return addrs, authz, nil
}
