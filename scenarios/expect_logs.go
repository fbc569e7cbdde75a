package scenarios

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/meshlab/meshlab/internal/kvfields"
)

// ZtunnelEntry is one ztunnel access-log line ("<time>\tinfo\taccess\tconnection complete k="v" ...",
// written when a connection closes) with the ztunnel that wrote it.
type ZtunnelEntry struct {
	Time   time.Time
	Pod    string // the ztunnel pod
	Node   string
	Fields map[string]string // src.addr, src.identity, dst.addr, dst.hbone_addr, dst.identity, direction, protocol, duration, error, ...
}

// String shows the entry the way failure messages quote it: the ztunnel, the time and the fields that
// identify the connection.
func (e ZtunnelEntry) String() string {
	parts := []string{fmt.Sprintf("ztunnel %s %s", e.Pod, e.Time.Format("15:04:05.000"))}
	for _, k := range []string{"direction", "protocol", "src.addr", "src.identity", "dst.addr", "dst.hbone_addr", "dst.service", "dst.workload", "dst.identity", "error"} {
		if v, ok := e.Fields[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

// start is when the connection opened: the log time less its duration.
func (e ZtunnelEntry) start() time.Time {
	d, err := time.ParseDuration(e.Fields["duration"])
	if err != nil {
		return e.Time
	}
	return e.Time.Add(-d)
}

// ParseZtunnelLog reads the access-log lines of one ztunnel's log and skips every other line.
func ParseZtunnelLog(log, pod, node string) []ZtunnelEntry {
	var out []ZtunnelEntry
	for _, line := range strings.Split(log, "\n") {
		head, rest, ok := strings.Cut(line, "connection complete")
		if !ok || !strings.Contains(head, "access") {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimSpace(head), "\t")
		when, err := time.Parse(time.RFC3339Nano, strings.Fields(ts + " ")[0])
		if err != nil {
			continue
		}
		out = append(out, ZtunnelEntry{Time: when, Pod: pod, Node: node, Fields: kvfields.Parse(rest)})
	}
	return out
}

// WaypointEntry is one request line of a waypoint's (or sidecar's) access log:
// `[<start>] "GET /path HTTP/1.1" 200 <flags> k=v ...` with request_id, source, source_identity,
// destination, destination_identity, upstream_cluster, upstream_host.
type WaypointEntry struct {
	Time    time.Time
	Pod     string // the proxy pod
	Request string // "GET /reviews/0 HTTP/1.1"
	Status  int
	Flags   string
	Fields  map[string]string
}

// String shows the entry for failure messages.
func (e WaypointEntry) String() string {
	parts := []string{fmt.Sprintf("waypoint %s %s %q %d %s", e.Pod, e.Time.Format("15:04:05.000"), e.Request, e.Status, e.Flags)}
	for _, k := range []string{"request_id", "source", "source_identity", "destination", "destination_identity", "upstream_cluster", "upstream_host"} {
		if v, ok := e.Fields[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

// ParseWaypointLog reads the HTTP request lines of a waypoint's log (TCP lines, `"- - TCP"`, and every
// other line are skipped).
func ParseWaypointLog(log, pod string) []WaypointEntry {
	var out []WaypointEntry
	for _, line := range strings.Split(log, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "[") {
			continue
		}
		ts, rest, ok := strings.Cut(line[1:], "] ")
		if !ok {
			continue
		}
		when, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || !strings.HasPrefix(rest, `"`) {
			continue
		}
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			continue
		}
		req, _ := strconv.Unquote(q)
		if strings.HasSuffix(req, " TCP") {
			continue
		}
		f := strings.Fields(rest[len(q):])
		if len(f) < 2 {
			continue
		}
		status, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		fields := kvfields.Parse(strings.Join(f[2:], " "))
		for k, v := range fields {
			if v == "-" {
				fields[k] = ""
			}
		}
		out = append(out, WaypointEntry{Time: when, Pod: pod, Request: req, Status: status, Flags: f[1], Fields: fields})
	}
	return out
}

// pathQuery is what identifies one request in the logs.
type pathQuery struct {
	// Local is curl's own address (pod IP:ephemeral port), which the source ztunnel logs as src.addr of
	// the captured connection: exact, since a port is not reused while the connection lives.
	Local string
	// RequestID is the x-request-id the request carried; a waypoint logs it.
	RequestID string
}

// PathSeen is the evidence the logs hold for one request.
type PathSeen struct {
	// Out is the source ztunnel's outbound entry for curl's connection; nil when none was logged (the
	// source is not captured).
	Out *ZtunnelEntry
	// Waypoint is "namespace/gateway" when Out went to a waypoint pod, else "".
	Waypoint string
	// WaypointLine is that waypoint's access-log line for the request id.
	WaypointLine *WaypointEntry
	// In is the destination ztunnel's inbound entry for the same stream, when one was logged.
	In *ZtunnelEntry
	// Candidates lists entries that were close but did not correlate, for failure messages.
	Candidates []string
}

// waypointPod is a waypoint pod, found by its HBONE address (pod IP:15008).
type waypointPod struct {
	Gateway string // namespace/name of its Gateway
	Pod     string
}

// correlate finds the request's entries. The source side is exact: the outbound entry whose src.addr
// is curl's own address. A waypoint is recognised by Out's dst.addr being a waypoint pod's HBONE
// address, and its line by the request id. Without a waypoint, the destination ztunnel's inbound entry
// cannot be matched exactly (the HBONE stream arrives from the source ztunnel's pooled connection, not
// from curl's port), so it is the inbound entry for the same target (the same dst.hbone_addr)
// from the same source pod IP whose lifetime overlaps Out's, the one closing nearest to Out; any other
// candidate is a connection between the same two pods to the same port at the same moment, which
// carries the same identities. With a waypoint, the destination side is read from the waypoint's line
// (the identity it verified on its upstream mTLS connection); the inbound entry at the destination is
// not awaited, since the waypoint keeps its upstream connections open.
func correlate(q pathQuery, zt []ZtunnelEntry, waypoints map[string]waypointPod, wpLines []WaypointEntry) PathSeen {
	var seen PathSeen
	seen.Out = findOut(zt, q.Local)
	srcIP, _, _ := net.SplitHostPort(q.Local)
	if seen.Out == nil {
		for _, e := range zt {
			if e.Fields["direction"] == "outbound" && hostOf(e.Fields["src.addr"]) == srcIP {
				seen.Candidates = append(seen.Candidates, e.String())
			}
		}
		return seen
	}
	if wp, ok := waypoints[seen.Out.Fields["dst.addr"]]; ok {
		seen.Waypoint = wp.Gateway
		for i := range wpLines {
			if wpLines[i].Fields["request_id"] == q.RequestID && q.RequestID != "" {
				seen.WaypointLine = &wpLines[i]
				break
			}
		}
		return seen
	}
	target := seen.Out.Fields["dst.hbone_addr"]
	if target == "" {
		return seen // plain TCP: no ztunnel on the other side
	}
	from, until := seen.Out.start().Add(-time.Second), seen.Out.Time.Add(2*time.Second)
	var best *ZtunnelEntry
	for i := range zt {
		e := &zt[i]
		if e.Fields["direction"] != "inbound" || e.Fields["dst.hbone_addr"] != target || hostOf(e.Fields["src.addr"]) != srcIP {
			continue
		}
		if e.Time.Before(from) || e.Time.After(until) {
			seen.Candidates = append(seen.Candidates, e.String()+" (outside the connection's lifetime)")
			continue
		}
		if best == nil || absDur(e.Time.Sub(seen.Out.Time)) < absDur(best.Time.Sub(seen.Out.Time)) {
			best = e
		}
	}
	seen.In = best
	return seen
}

// findOut is the source ztunnel's outbound entry for the connection from local.
func findOut(zt []ZtunnelEntry, local string) *ZtunnelEntry {
	for i := range zt {
		if zt[i].Fields["direction"] == "outbound" && zt[i].Fields["src.addr"] == local {
			return &zt[i]
		}
	}
	return nil
}

// complete says whether every entry the path needs has been logged (entries appear a moment after the
// connection closes).
func (s PathSeen) complete() bool {
	switch {
	case s.Out == nil:
		return false
	case s.Waypoint != "":
		return s.WaypointLine != nil
	case s.Out.Fields["dst.hbone_addr"] != "":
		return s.In != nil
	}
	return true
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// PathWant is what ExpectPath checks about how a request travelled.
type PathWant struct {
	// SrcIdentity and DstIdentity are SPIFFE URIs (spiffe://cluster.local/ns/default/sa/sleep) the hop
	// that terminated mutual TLS verified: the client's as the destination ztunnel (or the waypoint) saw
	// it, the server's as the source ztunnel (or the waypoint) verified it. "" accepts any.
	SrcIdentity, DstIdentity string
	// HBONE, when set, says whether the source ztunnel carried the connection over HBONE (mTLS to port
	// 15008). false also holds when no ztunnel captured the connection at all (a pod outside the mesh).
	HBONE *bool
	// Waypoint is "namespace/name" of the waypoint (Gateway) the request must cross, "none" for no
	// waypoint, "" for either.
	Waypoint string
}

// String says what is wanted.
func (w PathWant) String() string {
	var parts []string
	if w.SrcIdentity != "" {
		parts = append(parts, "source identity "+w.SrcIdentity)
	}
	if w.DstIdentity != "" {
		parts = append(parts, "destination identity "+w.DstIdentity)
	}
	if w.HBONE != nil {
		parts = append(parts, map[bool]string{true: "over HBONE (mTLS)", false: "not over HBONE"}[*w.HBONE])
	}
	switch w.Waypoint {
	case "":
	case "none":
		parts = append(parts, "no waypoint")
	default:
		parts = append(parts, "through waypoint "+w.Waypoint)
	}
	if len(parts) == 0 {
		return "a logged connection"
	}
	return strings.Join(parts, ", ")
}

// pathFacts is what the evidence says, in PathWant's terms.
type pathFacts struct {
	SrcIdentity, DstIdentity string
	HBONE                    bool
	Waypoint                 string // "none" or namespace/name
}

func (f pathFacts) String() string {
	return fmt.Sprintf("source identity %s, destination identity %s, %s, %s", dashIfEmpty(f.SrcIdentity), dashIfEmpty(f.DstIdentity),
		map[bool]string{true: "over HBONE (mTLS)", false: "not over HBONE"}[f.HBONE],
		map[bool]string{true: "no waypoint", false: "through waypoint " + f.Waypoint}[f.Waypoint == "none"])
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// facts reads the evidence: identities come from the side that verified them in a TLS handshake.
func (s PathSeen) facts() pathFacts {
	f := pathFacts{Waypoint: "none"}
	if s.Out == nil {
		return f
	}
	f.HBONE = s.Out.Fields["protocol"] == "HBONE" && strings.HasSuffix(s.Out.Fields["dst.addr"], ":15008")
	switch {
	case s.Waypoint != "":
		f.Waypoint = s.Waypoint
		if s.WaypointLine != nil {
			f.SrcIdentity, f.DstIdentity = s.WaypointLine.Fields["source_identity"], s.WaypointLine.Fields["destination_identity"]
		}
	case f.HBONE:
		// The source ztunnel verified the server's identity in its handshake (dst.identity is what it
		// demanded); the destination ztunnel logs the client identity it verified.
		f.DstIdentity = s.Out.Fields["dst.identity"]
		if s.In != nil {
			f.SrcIdentity = s.In.Fields["src.identity"]
			if s.In.Fields["dst.identity"] != f.DstIdentity {
				f.DstIdentity += " (destination ztunnel: " + s.In.Fields["dst.identity"] + ")"
			}
		}
	}
	return f
}

// CheckPath compares the evidence with want. seen lists the facts and then the log lines they were
// read from, so a failure shows exactly which lines matched.
func CheckPath(s PathSeen, want PathWant) (seen string, ok bool) {
	f := s.facts()
	// Without an outbound entry the source was not captured: that is the answer only to a check that
	// wants the request not carried over HBONE and no identities.
	ok = s.Out != nil || (want.HBONE != nil && !*want.HBONE && want.SrcIdentity == "" && want.DstIdentity == "")
	if want.SrcIdentity != "" && f.SrcIdentity != want.SrcIdentity {
		ok = false
	}
	if want.DstIdentity != "" && f.DstIdentity != want.DstIdentity {
		ok = false
	}
	if want.HBONE != nil && f.HBONE != *want.HBONE {
		ok = false
	}
	if want.Waypoint != "" && f.Waypoint != want.Waypoint {
		ok = false
	}
	if s.Out != nil && s.Out.Fields["error"] != "" {
		ok = false
	}
	lines := []string{f.String()}
	if s.Out == nil {
		lines = append(lines, "no ztunnel logged an outbound entry for the request's connection (the source pod is not captured)")
	} else {
		lines = append(lines, "source:      "+s.Out.String())
	}
	switch {
	case s.Waypoint != "" && s.WaypointLine == nil:
		lines = append(lines, "waypoint:    no line with the request id in "+s.Waypoint+"'s log")
	case s.WaypointLine != nil:
		lines = append(lines, "waypoint:    "+s.WaypointLine.String())
	case s.Out != nil && s.Out.Fields["dst.hbone_addr"] != "" && s.In == nil:
		lines = append(lines, "destination: no inbound entry for "+s.Out.Fields["dst.hbone_addr"]+" from the source pod in the connection's lifetime")
	case s.In != nil:
		lines = append(lines, "destination: "+s.In.String())
	}
	sort.Strings(s.Candidates)
	for _, c := range s.Candidates {
		lines = append(lines, "not matched: "+c)
	}
	return strings.Join(lines, "\n"), ok
}
