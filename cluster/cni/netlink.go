package cni

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// NetlinkRoute installs r in the current network namespace, replacing any route for the same CIDR.
func NetlinkRoute(r Route) error {
	_, dst, err := net.ParseCIDR(r.CIDR)
	if err != nil {
		return err
	}
	gw := net.ParseIP(r.Via)
	if gw == nil {
		return fmt.Errorf("bad gateway %q", r.Via)
	}
	return netlink.RouteReplace(&netlink.Route{Dst: dst, Gw: gw})
}
