package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"github.com/vishvananda/netns"

	"github.com/meshlab/meshlab/dataplane/capture"
)

// runForwarder runs the floor the ztunnel path is measured against. For each pod it installs ztunnel's
// capture rules and opens ztunnel's listeners, and for every captured connection (outbound on 15001,
// inbound on 15006) it dials the original destination in plaintext and copies bytes both ways through a
// user-space buffer. No TLS, no HTTP/2, no workload lookup, policy, metrics or logs: what any Go proxy in
// ztunnel's place pays on this machine, with this capture and topology, to carry the bytes.
func runForwarder(ctx context.Context, spec ProxySpec, ready io.Writer, logf func(string, ...any)) error {
	cfg := capture.DefaultConfig()
	var loop *epollLoop
	switch v := os.Getenv(ForwarderIOEnv); v {
	case "", "go":
	case "epoll":
		var err error
		if loop, err = newEpollLoop(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s=%q: want go or epoll", ForwarderIOEnv, v)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, p := range spec.Pods {
		h, err := netns.GetFromPath(p.Netns)
		if err != nil {
			return fmt.Errorf("opening the namespace of %s: %w", p.UID, err)
		}
		defer h.Close()
		if err := capture.Install(h, cfg); err != nil {
			return fmt.Errorf("capturing %s: %w", p.UID, err)
		}
		defer capture.Remove(h, cfg)
		ls, err := capture.OpenPodListeners(h, cfg)
		if err != nil {
			return fmt.Errorf("listening in %s: %w", p.UID, err)
		}
		defer ls.Close() // before wg.Wait: ends the accept loops
		dial := capture.Dialer{NS: h, Options: capture.SocketOptions{Mark: cfg.ProxyMark}}.DialContext
		for _, l := range []net.Listener{ls.Outbound, ls.InboundPlaintext} {
			wg.Go(func() { forwardAll(ctx, l, dial, loop, logf) })
		}
	}
	fmt.Fprintln(ready, ReadySignal)
	<-ctx.Done()
	return nil
}

// forwardAll accepts captured connections on l until it is closed and forwards each to its original
// destination: with two goroutines copying, or through loop when there is one.
func forwardAll(ctx context.Context, l net.Listener, dial func(ctx context.Context, network, addr string) (net.Conn, error), loop *epollLoop, logf func(string, ...any)) {
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				logf("forwarder: accept: %v", err)
			}
			return
		}
		go func() {
			dst, err := capture.OriginalDst(c)
			if err != nil {
				logf("forwarder: %v", err)
				c.Close()
				return
			}
			d, err := dial(ctx, "tcp4", dst.String())
			if err != nil {
				logf("forwarder: dialing %s: %v", dst, err)
				c.Close()
				return
			}
			if loop != nil {
				if err := loop.add(c, d); err != nil {
					logf("forwarder: %v", err)
				}
				return
			}
			defer c.Close()
			defer d.Close()
			go func() {
				copyThroughBuffer(d, c)
				d.(*net.TCPConn).CloseWrite()
			}()
			copyThroughBuffer(c, d)
		}()
	}
}

// copyThroughBuffer copies src to dst with read and write calls on a 32 KB buffer. io.Copy between two
// TCP connections would splice(2) in the kernel, which no proxy that encrypts can do: the floor must read
// the bytes into the process as ztunnel does.
func copyThroughBuffer(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
}
