package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread switched into ns and waits for it. Sockets created inside fn belong to ns for
// their whole life and may be used from any goroutine afterwards; this is how ztunnel serves a pod's
// listeners from its own process (Istio's in-pod mode). Processes started inside fn also start in ns.
func Do(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	// A fresh goroutine so that a thread we cannot switch back is thrown away rather than reused.
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("reading current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering network namespace %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime ends it with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("leaving network namespace %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// SocketOptions are applied to sockets ztunnel opens on a pod's behalf.
type SocketOptions struct {
	// Mark sets SO_MARK, so that capture rules let the proxy's own packets through (0 leaves it unset).
	Mark int
	// Transparent sets IP_TRANSPARENT, to bind a source address that is not local (delivering inbound
	// traffic with the original client's IP) or to accept connections for any address.
	Transparent bool
}

// Control returns a net.Dialer/ListenConfig Control function applying o.
func (o SocketOptions) Control() func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if o.Mark != 0 {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, o.Mark); serr != nil {
					serr = fmt.Errorf("setting SO_MARK: %w", serr)
					return
				}
			}
			if o.Transparent {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1); serr != nil {
					serr = fmt.Errorf("setting IP_TRANSPARENT: %w", serr)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// Listen opens a listener inside ns.
func Listen(ns netns.NsHandle, network, addr string, o SocketOptions) (net.Listener, error) {
	var l net.Listener
	err := Do(ns, func() error {
		var err error
		lc := net.ListenConfig{Control: o.Control()}
		l, err = lc.Listen(context.Background(), network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening on %s in %s: %w", addr, ns, err)
	}
	return l, nil
}

// Dialer opens connections from inside a network namespace.
type Dialer struct {
	NS      netns.NsHandle
	Options SocketOptions
	// Source, if valid, is bound as the local address (with Options.Transparent for a foreign address).
	Source netip.Addr
}

// DialContext connects from inside d.NS. It fits hbone.Client.DialContext and http.Transport.DialContext.
func (d Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := &net.Dialer{Control: d.Options.Control()}
	if d.Source.IsValid() {
		nd.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(d.Source, 0))
	}
	var c net.Conn
	err := Do(d.NS, func() error {
		var err error
		c, err = nd.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// OriginalDst returns the destination a REDIRECTed connection was addressed to before capture
// (SO_ORIGINAL_DST).
func OriginalDst(c net.Conn) (netip.AddrPort, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("reading original destination: %T has no socket", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("reading original destination: %w", err)
	}
	var ap netip.AddrPort
	var gerr error
	err = raw.Control(func(fd uintptr) {
		// sockaddr_in fits in the 16-byte multiaddr field of an ipv6_mreq: family, port, address.
		m, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
		if err != nil {
			gerr = err
			return
		}
		port := uint16(m.Multiaddr[2])<<8 | uint16(m.Multiaddr[3])
		ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m.Multiaddr[4:8])), port)
	})
	if err == nil {
		err = gerr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("reading original destination: %w", err)
	}
	return ap, nil
}
