package live

import (
	"strings"

	"github.com/meshlab/meshlab/explain"
	"github.com/meshlab/meshlab/scenarios"
)

// Observed reads an observation (the request sent from its pod and the access-log entries the scenarios'
// path check correlates with it) into explain's terms.
func Observed(obs scenarios.Observation) *explain.Observed {
	o := &explain.Observed{RequestID: obs.RequestID, Status: obs.Status, Local: obs.Local}
	if obs.Status == 0 {
		o.ClientError = strings.TrimSpace(obs.Stderr)
	}
	s := obs.Seen
	if e := s.Out; e != nil {
		f := e.Fields
		o.Ztunnel = &explain.ObservedZtunnel{Pod: e.Pod, Node: e.Node, Protocol: f["protocol"], Via: f["dst.addr"], Target: f["dst.hbone_addr"],
			Service: f["dst.service"], Workload: f["dst.workload"], Identity: f["dst.identity"], Error: f["error"]}
		o.Lines = append(o.Lines, "source:      "+e.String())
	}
	if s.Waypoint != "" {
		w := &explain.ObservedWaypoint{Waypoint: s.Waypoint}
		if l := s.WaypointLine; l != nil {
			w.Logged, w.Pod, w.Status, w.Flags = true, l.Pod, l.Status, l.Flags
			w.Route, w.Cluster, w.UpstreamHost = l.Fields["route"], l.Fields["upstream_cluster"], l.Fields["upstream_host"]
			w.SourceIdentity, w.DestinationIdentity = l.Fields["source_identity"], l.Fields["destination_identity"]
			o.Lines = append(o.Lines, "waypoint:    "+l.String())
		}
		o.Waypoint = w
	}
	if e := s.In; e != nil {
		o.Inbound = &explain.ObservedInbound{Pod: e.Pod, Workload: e.Fields["dst.workload"], SourceIdentity: e.Fields["src.identity"], Error: e.Fields["error"]}
		o.Lines = append(o.Lines, "destination: "+e.String())
	}
	for _, c := range s.Candidates {
		o.Lines = append(o.Lines, "not matched: "+c)
	}
	return o
}
