package xds

import (
	"context"
	"errors"
	"io"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// StreamAggregatedResources serves one state-of-the-world ADS stream, and Istio's debug requests on the
// side (debugxds.go).
func (s *Server) StreamAggregatedResources(stream grpc.BidiStreamingServer[discovery.DiscoveryRequest, discovery.DiscoveryResponse]) error {
	return serveStream(s, stream.Context(), stream.Recv, false, s.sotwDebug(stream.Context(), stream.Send),
		func(c *connection) { c.sendSotW = stream.Send },
		(*connection).handleSotW)
}

// DeltaAggregatedResources serves one incremental (delta) ADS stream, and Istio's debug requests on the side.
func (s *Server) DeltaAggregatedResources(stream grpc.BidiStreamingServer[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]) error {
	return serveStream(s, stream.Context(), stream.Recv, true, s.deltaDebug(stream.Context(), stream.Send),
		func(c *connection) { c.sendDelta = stream.Send },
		(*connection).handleDelta)
}

// serveStream is the loop both ADS flavours share: the first request's node makes the connection
// (attach gives it the stream's send function), then requests and pushes are handled as they come,
// until the client goes away. side, when set, sees every request first and may answer it itself
// (handled): such requests make no connection.
func serveStream[Req interface{ GetNode() *core.Node }](s *Server, ctx context.Context, recv func() (Req, error), delta bool,
	side func(Req) (handled bool, err error), attach func(*connection), handle func(*connection, Req) error) error {
	reqs, errs := receive(ctx, recv)
	var c *connection
	defer func() {
		if c != nil {
			s.disconnect(c)
		}
	}()
	for {
		var pushCh chan *pushEvent
		if c != nil {
			pushCh = c.pushCh
		}
		select {
		case req := <-reqs:
			if side != nil {
				if handled, err := side(req); handled {
					if err != nil {
						return err
					}
					continue
				}
			}
			if c == nil {
				var err error
				if c, err = s.connect(req.GetNode(), delta); err != nil {
					return status.Error(codes.InvalidArgument, err.Error())
				}
				attach(c)
			}
			if err := handle(c, req); err != nil {
				return err
			}
		case ev := <-pushCh:
			err := c.pushAll(ev.req)
			ev.done()
			if err != nil {
				return err
			}
		case err := <-errs:
			return streamEnd(err)
		}
	}
}

// receive reads a stream on its own goroutine so that the stream goroutine can wait for requests and
// pushes at once.
func receive[T any](ctx context.Context, recv func() (T, error)) (<-chan T, <-chan error) {
	reqs := make(chan T)
	errs := make(chan error, 1)
	go func() {
		for {
			r, err := recv()
			if err != nil {
				errs <- err
				return
			}
			select {
			case reqs <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	return reqs, errs
}

// streamEnd turns the client going away into a clean end of the stream.
func streamEnd(err error) error {
	if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// handleSotW handles one state-of-the-world request: a subscription, an ACK (possibly changing the
// subscribed names) or a NACK.
func (c *connection) handleSotW(req *discovery.DiscoveryRequest) error {
	t := req.GetTypeUrl()
	if t == "" {
		return nil
	}
	if req.GetErrorDetail() != nil {
		c.nack(t, req.GetResponseNonce(), req.GetErrorDetail().GetMessage())
		return nil
	}
	if req.GetResponseNonce() == "" { // a new subscription, or the first request after a reconnect
		c.proxy.setWatch(t, req.GetResourceNames())
		return c.pushInitial(t)
	}
	if !c.ack(t, req.GetResponseNonce()) {
		return nil // an answer to a superseded response; the answer to the latest one will follow
	}
	if c.proxy.setWatch(t, req.GetResourceNames()) {
		c.forgetUnwanted(t)
		return c.pushInitial(t) // e.g. Envoy asking for the endpoints of clusters it just received
	}
	return nil
}

// handleDelta handles one delta request: it may ACK or NACK a response and change the subscription.
func (c *connection) handleDelta(req *discovery.DeltaDiscoveryRequest) error {
	t := req.GetTypeUrl()
	if t == "" {
		return nil
	}
	if nonce := req.GetResponseNonce(); nonce != "" {
		if req.GetErrorDetail() != nil {
			c.nack(t, nonce, req.GetErrorDetail().GetMessage())
		} else {
			c.ack(t, nonce)
		}
	}
	added, first := c.proxy.updateWatch(t, req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe())
	if len(req.GetResourceNamesUnsubscribe()) > 0 {
		c.forgetUnwanted(t)
	}
	if first {
		c.seed(t, req.GetInitialResourceVersions())
		return c.pushInitial(t)
	}
	if len(added) > 0 {
		req, err := c.s.initialRequest()
		if err != nil {
			c.s.logf("xds: preparing config for %s: %v", c.proxy.ID, err)
			return nil
		}
		return c.pushType(t, req, false)
	}
	return nil
}

// pushInitial answers a subscription with the current config of that type.
func (c *connection) pushInitial(typeURL string) error {
	req, err := c.s.initialRequest()
	if err != nil {
		c.s.logf("xds: preparing config for %s: %v", c.proxy.ID, err)
		return nil
	}
	return c.pushType(typeURL, req, true)
}
