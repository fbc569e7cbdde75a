package capture

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netns"
)

// PodListeners are ztunnel's three sockets inside one pod's network namespace.
type PodListeners struct {
	// Outbound (127.0.0.1:15001) accepts the pod's redirected outbound connections.
	Outbound net.Listener
	// InboundPlaintext (0.0.0.0:15006) accepts redirected inbound connections that are not HBONE.
	InboundPlaintext net.Listener
	// HBONE (0.0.0.0:15008) accepts tunnels addressed to the pod.
	HBONE net.Listener
}

// OpenPodListeners opens the three listeners inside ns. The sockets stay in the pod's namespace although
// ztunnel serves them from its own; they carry the proxy mark so that nothing they do is captured again.
func OpenPodListeners(ns netns.NsHandle, cfg Config) (*PodListeners, error) {
	cfg = withDefaults(cfg)
	opts := SocketOptions{Mark: cfg.ProxyMark}
	pl := &PodListeners{}
	var err error
	// REDIRECT in OUTPUT rewrites the destination to 127.0.0.1; in PREROUTING, to the pod's own address.
	if pl.Outbound, err = Listen(ns, "tcp4", fmt.Sprintf("127.0.0.1:%d", cfg.OutboundPort), opts); err != nil {
		return nil, err
	}
	if pl.InboundPlaintext, err = Listen(ns, "tcp4", fmt.Sprintf("0.0.0.0:%d", cfg.InboundPlaintextPort), opts); err != nil {
		pl.Close()
		return nil, err
	}
	if pl.HBONE, err = Listen(ns, "tcp4", fmt.Sprintf("0.0.0.0:%d", cfg.HBONEPort), opts); err != nil {
		pl.Close()
		return nil, err
	}
	return pl, nil
}

// Close closes whichever listeners are open.
func (pl *PodListeners) Close() error {
	var errs []error
	for _, l := range []net.Listener{pl.Outbound, pl.InboundPlaintext, pl.HBONE} {
		if l != nil {
			if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
