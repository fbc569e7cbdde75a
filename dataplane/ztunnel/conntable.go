package ztunnel

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Direction of a connection relative to the local pod.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// Connection is one proxied connection, as `ztunnel-config connections` shows it (WORKLOAD, DIRECTION,
// LOCAL, REMOTE, REMOTE TARGET, PROTOCOL) plus the identities and counters of the access log.
type Connection struct {
	ID        uint64
	Workload  string // "namespace/name" of the local pod
	Direction string
	// Local and Remote are the two ends of the proxy's leg towards the peer: for outbound HBONE the source
	// pod and the destination's 15008; for inbound HBONE the pod's 15008 and the tunnel's client.
	Local  string
	Remote string
	// RemoteTarget is the HBONE :authority (the final IP:port), empty for plain TCP.
	RemoteTarget string
	Protocol     string // "HBONE" or "TCP"

	SrcAddr     string
	SrcWorkload string
	SrcIdentity string
	DstAddr     string // the application's destination (pod or VIP, with port)
	DstWorkload string
	DstService  string
	DstIdentity string
	Start       time.Time
	// BytesSent counts bytes carried from source to destination, BytesRecv the way back (at snapshot time).
	BytesSent int64
	BytesRecv int64
}

// tracked is a Connection being carried, with live counters.
type tracked struct {
	Connection
	sent, recv atomic.Int64
}

func (c *tracked) snapshot() Connection {
	out := c.Connection
	out.BytesSent, out.BytesRecv = c.sent.Load(), c.recv.Load()
	return out
}

// connTable tracks open connections and writes access-log lines when they end.
type connTable struct {
	next atomic.Uint64
	mu   sync.Mutex
	open map[uint64]*tracked

	logMu sync.Mutex
	log   io.Writer
	now   func() time.Time
}

func newConnTable(log io.Writer) *connTable {
	if log == nil {
		log = io.Discard
	}
	return &connTable{open: map[uint64]*tracked{}, log: log, now: time.Now}
}

func (t *connTable) add(conn *Connection) *tracked {
	c := &tracked{Connection: *conn}
	c.ID = t.next.Add(1)
	c.Start = t.now()
	t.mu.Lock()
	t.open[c.ID] = c
	t.mu.Unlock()
	return c
}

// done removes c and logs it; errMsg explains a failed or refused connection.
func (t *connTable) done(c *tracked, errMsg string) {
	t.mu.Lock()
	delete(t.open, c.ID)
	t.mu.Unlock()
	t.access(c, errMsg)
}

func (t *connTable) list() []Connection {
	t.mu.Lock()
	out := make([]Connection, 0, len(t.open))
	for _, c := range t.open {
		out = append(out, c.snapshot())
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// access writes one line in the shape of Istio ztunnel's access log.
func (t *connTable) access(c *tracked, errMsg string) {
	var b strings.Builder
	level := "info" // ztunnel logs a connection that failed at error level
	if errMsg != "" {
		level = "error"
	}
	fmt.Fprintf(&b, "%s\t%s\taccess\tconnection complete", t.now().UTC().Format("2006-01-02T15:04:05.000000Z"), level)
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%q", k, v)
		}
	}
	kv("src.addr", c.SrcAddr)
	kv("src.workload", c.SrcWorkload)
	kv("src.identity", c.SrcIdentity)
	dstAddr := c.Remote // outbound: the peer we connected to
	if c.Direction == Inbound {
		dstAddr = c.Local // inbound: our listener
	}
	kv("dst.addr", dstAddr)
	kv("dst.hbone_addr", c.RemoteTarget)
	kv("dst.service", c.DstService)
	kv("dst.workload", c.DstWorkload)
	kv("dst.identity", c.DstIdentity)
	kv("direction", c.Direction)
	kv("protocol", c.Protocol)
	fmt.Fprintf(&b, " bytes_sent=%d bytes_recv=%d duration=%q", c.sent.Load(), c.recv.Load(),
		t.now().Sub(c.Start).Round(time.Microsecond).String())
	kv("error", errMsg)
	b.WriteByte('\n')
	t.logMu.Lock()
	io.WriteString(t.log, b.String())
	t.logMu.Unlock()
}
